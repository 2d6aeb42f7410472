#!/usr/bin/env bash
# Manual check of deploy/compose.yaml with a live scrape: builds and starts proxy + echo + Prometheus
# (not Grafana) with docker-compose, then asserts the proxy serves HTTP and a WebSocket echo on
# 127.0.0.1:8080, Prometheus (127.0.0.1:9090) scrapes proxy:9464 (up == 1) with the alert rules loaded,
# and a WebSocket shows up in Prometheus as reaper_connections_opened_total; then takes it all down.
#
# Not part of CI: it needs a Docker daemon and the fixed host ports 8080, 9464 and 9090 free. On the CI
# machines (no registry) a daemon can be started by hand, e.g.
#   dockerd --data-root /tmp/d/data --exec-root /tmp/d/exec -H unix:///tmp/d/docker.sock &
#   DOCKER_HOST=unix:///tmp/d/docker.sock deploy/container/compose-up.sh
# and the base images come from podman storage (deploy/container/stand-in-images.sh); without a registry,
# prom/prometheus is stood in for by Debian's prometheus binary on the stand-in Debian image.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0   # the classic builder: no BuildKit here
project=reaperproxy-compose-check
prometheus_image=prom/prometheus:v2.53.0              # as in deploy/compose.yaml
compose=(docker-compose -p "$project" -f deploy/compose.yaml)

for tool in docker docker-compose curl; do
    command -v "$tool" >/dev/null 2>&1 || { echo "compose-up.sh: $tool not found on PATH" >&2; exit 2; }
done
docker info >/dev/null 2>&1 || { echo "compose-up.sh: no Docker daemon at ${DOCKER_HOST:-the default socket}" >&2; exit 2; }

fail() { echo "  FAILED: $*" >&2; exit 1; }
ok() { echo "  ok: $*"; }
curl_() { curl --noproxy '*' -sS --max-time 5 "$@"; }

cleanup() {
    status=$?
    (( status == 0 )) || "${compose[@]}" logs --tail 30 proxy echo prometheus >&2 || true
    "${compose[@]}" down -v -t 30 >/dev/null 2>&1 || true
}
trap cleanup EXIT

SECONDS=0
echo "== images"
for base in mcr.microsoft.com/dotnet/sdk:10.0 mcr.microsoft.com/dotnet/aspnet:10.0; do
    if ! docker image inspect "$base" >/dev/null 2>&1 && ! docker pull -q "$base" >/dev/null 2>&1; then
        command -v podman >/dev/null 2>&1 && podman image exists "$base" \
            || fail "$base: not in the daemon, not pullable, not in podman storage (run deploy/container/stand-in-images.sh)"
        echo "+ podman save $base | docker load"
        podman save --format docker-archive "$base" | docker load -q
    fi
done
if ! docker image inspect "$prometheus_image" >/dev/null 2>&1 && ! docker pull -q "$prometheus_image" >/dev/null 2>&1; then
    command -v prometheus >/dev/null 2>&1 && command -v buildah >/dev/null 2>&1 \
        && podman image exists localhost/reaperproxy-stand-in/debian:bookworm-slim \
        || fail "$prometheus_image: not pullable, and no stand-in possible (needs prometheus, buildah, the stand-in Debian image)"
    echo "+ stand-in $prometheus_image from $(command -v prometheus)"
    c="$(buildah from --pull=never localhost/reaperproxy-stand-in/debian:bookworm-slim)"
    buildah copy -q "$c" "$(command -v prometheus)" /bin/prometheus >/dev/null
    buildah run "$c" -- sh -c 'mkdir -p /prometheus /etc/prometheus && chown 65534:65534 /prometheus'
    buildah config --user 65534 --workingdir /prometheus --entrypoint '["/bin/prometheus"]' --cmd '[]' \
        --label org.reaperproxy.stand-in=true "$c"
    buildah commit -q --rm "$c" "docker.io/$prometheus_image" >/dev/null
    podman save --format docker-archive "docker.io/$prometheus_image" | docker load -q
fi
echo "+ ${compose[*]} build proxy echo"
timeout 900 "${compose[@]}" build -q proxy echo
echo "   (${SECONDS}s)"

echo "== up: proxy echo prometheus"
timeout 180 "${compose[@]}" up -d --no-build proxy echo prometheus
deadline=$(( SECONDS + 60 ))
until [[ "$(curl_ -o /dev/null -w '%{http_code}' http://127.0.0.1:9464/readyz 2>/dev/null)" == 200 ]]; do
    (( SECONDS < deadline )) || fail "the proxy did not answer http://127.0.0.1:9464/readyz within 60s"
    sleep 1
done
ok "proxy ready"
[[ "$(curl_ -f http://127.0.0.1:8080/hello)" == "hello from the echo backend"* ]] || fail "GET /hello through the proxy"
ok "HTTP through the proxy to the echo service"
out="$(timeout 60 docker run --rm --network=host reaperproxy-echo:local client ws://127.0.0.1:8080/echo "hello through compose" 2>&1)" \
    || fail "WebSocket echo: $out"
ok "$out"

query() { curl_ -f --get --data-urlencode "query=$1" http://127.0.0.1:9090/api/v1/query; }
deadline=$(( SECONDS + 90 ))   # two 15 s scrape intervals and then some
until query 'sum(reaper_connections_opened_total{job="reaperproxy"})' 2>/dev/null | grep -q '"value":\[[0-9.]*,"[1-9]'; do
    (( SECONDS < deadline )) || fail "Prometheus has no reaper_connections_opened_total >= 1 after 90s: $(query 'up' 2>&1)"
    sleep 3
done
query 'up{job="reaperproxy",instance="proxy:9464"}' | grep -q '"value":\[[0-9.]*,"1"\]' || fail "up{instance=\"proxy:9464\"} is not 1"
ok "Prometheus scrapes proxy:9464 (up 1) and counts the WebSocket"
curl_ -f http://127.0.0.1:9090/api/v1/rules | grep -q '"name":"reaperproxy.alerts"' || fail "the alert rules are not loaded"
ok "alert rules loaded"
echo "compose-up.sh: passed in ${SECONDS}s"
