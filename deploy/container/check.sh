#!/usr/bin/env bash
# Checks the container image (deploy/Dockerfile) and the compose file (deploy/compose.yaml):
#   1. base images: builds local stand-ins for mcr.microsoft.com/dotnet/{sdk,aspnet}:10.0 if absent
#      (stand-in-images.sh: no registry here), kept in podman storage for the next run;
#   2. lint: dockerfile-utils (npm, installed into a cache directory) on both Dockerfiles;
#      docker-compose config -q on deploy/compose.yaml; promtool on its Prometheus config (if present);
#   3. builds deploy/Dockerfile UNCHANGED (and the demo echo backend's) with buildah bud --pull=never;
#   4. the image: runs as uid 1654, exposes 8080 and 9464, no HEALTHCHECK, the shipped config is valid;
#   5. runs it with a read-only root filesystem (no tmpfs either) in a pod beside the echo backend, ports
#      published on 127.0.0.1 only, and asserts: /healthz /readyz /metrics answer on the admin port and not
#      on the public one; the process runs as uid 1654; no warning is logged; a WebSocket echo goes through
#      the container; reaperproxy-probe, run from the image by name, passes ping-answer and idle-live through
#      it; SIGTERM (podman stop) makes a connected client get Close 1001 and the container exit 0 well within
#      the stop timeout.
# Installs nothing (.ci/run does): a missing tool fails the check naming its Debian package. Needs root,
# podman with runc and the nofile ulimits in /etc/containers/containers.conf (see deploy/README.md), and
# npm. Every wait is bounded; containers and the pod are removed on exit. Prints how long each step took.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

image=localhost/reaperproxy:check
echo_image=localhost/reaperproxy-echo:check
dockerfile_utils_version=0.16.3
build_within=900      # seconds for one image build (the first restore downloads packages)
ready_within=60       # seconds for the proxy to answer /readyz
stop_timeout=30       # podman stop -t: SIGTERM, then SIGKILL after this many seconds
stopped_within=20     # seconds the proxy may take to exit after SIGTERM (demo.json: Drain:Period 10 s default,
                      # CloseTimeout 5 s: its own bound is 15 s plus a margin)

need() { # tool, Debian package
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "check.sh: $1 not found on PATH (install the Debian package '$2'; .ci/run does)" >&2
        exit 2
    fi
}
need podman podman
need buildah buildah
need runc runc
need curl curl
need docker-compose docker-compose
need npm npm
need node nodejs
if ! podman image exists mcr.microsoft.com/dotnet/aspnet:10.0 || ! podman image exists mcr.microsoft.com/dotnet/sdk:10.0; then
    need debootstrap debootstrap
fi
runtime="$(podman info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null || true)"
if [[ "$runtime" != "runc" ]]; then
    echo "check.sh: note: podman's OCI runtime is '${runtime:-unknown}', not runc; on machines with a low" \
         "open-file hard limit crun fails (see deploy/README.md, ## Container image, for containers.conf)" >&2
fi

run() {
    echo "+ $*"
    "$@"
}
fail() {
    echo "  FAILED: $*" >&2
    exit 1
}
ok() { echo "  ok: $*"; }

timings=()
step_name=""
step_start=0
step() {
    end_step
    step_name="$1"
    step_start=$SECONDS
    echo "== $1"
}
end_step() {
    if [[ -n "$step_name" ]]; then
        timings+=("$(printf '%4ds  %s' $((SECONDS - step_start)) "$step_name")")
    fi
    step_name=""
}

tag="reaperproxy-check-$$"
pod="$tag-pod"
proxy="$tag-proxy"
echo_ctr="$tag-echo"
client="$tag-client"
tmp="$(mktemp -d)"
cleanup() {
    status=$?
    if (( status != 0 )); then
        for c in "$proxy" "$echo_ctr" "$client"; do
            if podman container exists "$c" 2>/dev/null; then
                echo "--- logs of $c ---" >&2
                podman logs "$c" 2>&1 | tail -n 40 >&2 || true
            fi
        done
    fi
    podman rm -f -t 0 "$client" >/dev/null 2>&1 || true
    podman pod rm -f -t 0 "$pod" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$SECONDS

# ---- 1. base images --------------------------------------------------------------------------------
step "stand-in base images (built only if absent)"
run timeout 900 bash deploy/container/stand-in-images.sh

# ---- 2. lint ---------------------------------------------------------------------------------------
step "lint: dockerfile-utils, docker-compose config, promtool"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/reaperproxy/dockerfile-utils-$dockerfile_utils_version"
lint="$cache/node_modules/.bin/dockerfile-utils"
if [[ ! -x "$lint" ]]; then
    mkdir -p "$cache"
    run timeout 300 npm install --no-audit --no-fund --silent --prefix "$cache" "dockerfile-utils@$dockerfile_utils_version" \
        || fail "npm could not install dockerfile-utils@$dockerfile_utils_version"
fi
for file in deploy/Dockerfile deploy/container/echo-backend.Dockerfile; do
    echo "+ dockerfile-utils lint $file"
    out="$("$lint" lint "$file" 2>&1)" || fail "dockerfile-utils lint $file:"$'\n'"$out"
    [[ -z "$out" ]] || fail "dockerfile-utils lint $file reported:"$'\n'"$out"
    ok "$file: no problems"
done
run docker-compose -f deploy/compose.yaml config -q
ok "deploy/compose.yaml is valid for docker-compose $(docker-compose version --short 2>/dev/null)"
if command -v promtool >/dev/null 2>&1; then
    # The compose Prometheus config beside the rules, laid out as compose.yaml mounts them.
    mkdir -p "$tmp/prometheus/reaperproxy"
    cp deploy/compose/prometheus.yml "$tmp/prometheus/"
    cp deploy/prometheus/reaperproxy.rules.yml "$tmp/prometheus/reaperproxy/"
    run promtool check config "$tmp/prometheus/prometheus.yml" >/dev/null
    ok "deploy/compose/prometheus.yml is valid (promtool)"
else
    echo "  skipped: promtool not found (Debian package 'prometheus'); deploy/compose/prometheus.yml not checked"
fi

# ---- 3. build --------------------------------------------------------------------------------------
step "build deploy/Dockerfile"
run timeout "$build_within" buildah bud --layers --pull=never --network=host -q -f deploy/Dockerfile -t "$image" . >/dev/null
step "build deploy/container/echo-backend.Dockerfile"
run timeout "$build_within" buildah bud --layers --pull=never --network=host -q -f deploy/container/echo-backend.Dockerfile -t "$echo_image" . >/dev/null

# ---- 4. the image ----------------------------------------------------------------------------------
step "image metadata and shipped configuration"
inspect() { podman image inspect --format "$1" "$image"; }
[[ "$(inspect '{{.Config.User}}')" == "1654" ]] || fail "image user is '$(inspect '{{.Config.User}}')', want 1654"
ok "user 1654"
ports="$(inspect '{{range $p, $_ := .Config.ExposedPorts}}{{$p}} {{end}}')"
[[ "$ports" == *"8080/tcp"* && "$ports" == *"9464/tcp"* ]] || fail "exposed ports are '$ports', want 8080/tcp and 9464/tcp"
ok "exposes $ports"
entry="$(inspect '{{json .Config.Entrypoint}} {{json .Config.Cmd}}')"
[[ "$entry" == '["dotnet","ReaperProxy.dll"] ["--config","/etc/reaperproxy/reaper.json"]' ]] || fail "entrypoint/cmd are $entry"
ok "entrypoint/cmd $entry"
[[ "$(inspect '{{if .Config.Healthcheck}}yes{{end}}')" == "" ]] || fail "the image has a HEALTHCHECK"
env="$(inspect '{{range .Config.Env}}{{println .}}{{end}}')"
grep -qx 'ASPNETCORE_URLS=http://0.0.0.0:8080' <<<"$env" || fail "ASPNETCORE_URLS is not http://0.0.0.0:8080"
grep -qx 'Reaper__AdminUrls=http://0.0.0.0:9464' <<<"$env" || fail "Reaper__AdminUrls is not http://0.0.0.0:9464"
ok "no HEALTHCHECK; ASPNETCORE_URLS and Reaper__AdminUrls on 0.0.0.0"
run timeout 60 podman run --rm --read-only --read-only-tmpfs=false "$image" --check-config /etc/reaperproxy/reaper.json \
    > "$tmp/check-config.txt" 2>&1 || { cat "$tmp/check-config.txt"; fail "--check-config on the shipped configuration"; }
grep -q 'configuration is valid' "$tmp/check-config.txt" || fail "--check-config did not report the shipped configuration valid"
ok "shipped /etc/reaperproxy/reaper.json is valid"

# ---- 5. run ----------------------------------------------------------------------------------------
step "run: pod (echo backend + proxy), read-only root filesystem"
run_start=$SECONDS
# Random free host ports, on 127.0.0.1 only. Inside the pod the proxy reaches the echo backend on
# 127.0.0.1:5080, which is what config/demo.json routes to.
run podman pod create --name "$pod" -p 127.0.0.1::8080 -p 127.0.0.1::9464 >/dev/null
hardening=(--read-only --read-only-tmpfs=false --cap-drop=all --security-opt=no-new-privileges)
run podman run -d --pod "$pod" --name "$echo_ctr" "${hardening[@]}" -e ASPNETCORE_URLS=http://127.0.0.1:5080 "$echo_image" >/dev/null
# The image binds the admin listener on all interfaces: run it as it should be deployed, with a token
# (without one the proxy warns at start, and this check allows no warning).
admin_token="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
run podman run -d --pod "$pod" --name "$proxy" "${hardening[@]}" -e Reaper__AdminToken="$admin_token" \
    -v "$PWD/config/demo.json:/etc/reaperproxy/reaper.json:ro" "$image" >/dev/null
infra="$(podman pod inspect --format '{{.InfraContainerID}}' "$pod")"
public_port="$(podman port "$infra" 8080/tcp | head -n 1)"; public_port="${public_port##*:}"
admin_port="$(podman port "$infra" 9464/tcp | head -n 1)"; admin_port="${admin_port##*:}"
[[ -n "$public_port" && -n "$admin_port" ]] || fail "no published ports ($(podman port "$infra" 2>&1))"
for binding in $(podman port "$infra" | awk '{print $3}'); do
    [[ "$binding" == 127.0.0.1:* ]] || fail "a port is published on $binding, not 127.0.0.1"
done
public="http://127.0.0.1:$public_port"
admin="http://127.0.0.1:$admin_port"
echo "  public $public, admin $admin"

curl_() { curl --noproxy '*' -sS --max-time 5 "$@"; }
admin_curl_() { curl_ -H "Authorization: Bearer $admin_token" "$@"; }
deadline=$(( SECONDS + ready_within ))
until [[ "$(curl_ -o /dev/null -w '%{http_code}' "$admin/readyz" 2>/dev/null)" == 200 ]]; do
    [[ "$(podman inspect --format '{{.State.Running}}' "$proxy")" == true ]] || fail "the proxy container exited before it was ready"
    (( SECONDS < deadline )) || fail "the proxy did not answer $admin/readyz within ${ready_within}s"
    sleep 0.5
done
ok "ready after $((SECONDS - run_start))s"

step "run: admin and public endpoints, user, logs"
[[ "$(curl_ -f "$admin/healthz")" == ok ]] || fail "admin /healthz did not answer ok"
[[ "$(curl_ -f "$admin/readyz")" == ready ]] || fail "admin /readyz did not answer ready"
admin_curl_ -f "$admin/metrics" > "$tmp/metrics.txt" || fail "admin /metrics did not answer"
grep -q '^# TYPE ' "$tmp/metrics.txt" || fail "admin /metrics is not in the Prometheus text format"
[[ "$(curl_ -o /dev/null -w '%{http_code}' "$admin/metrics")" == 401 ]] || fail "admin /metrics answered without the token"
ok "admin port: /metrics wants the bearer token (401 without it)"
ok "admin port: /healthz ok, /readyz ready, /metrics with $(grep -c '^# TYPE ' "$tmp/metrics.txt") metric families"
for path in /healthz /readyz /metrics /connections; do
    # On the public port these are proxied to the echo backend, which has none of them (404).
    code="$(curl_ -o "$tmp/public.txt" -w '%{http_code}' "$public$path")"
    [[ "$code" != 200 ]] || fail "public port answered $path with 200"
    ! grep -qE '^# TYPE |^ok$|^ready$|"connections"' "$tmp/public.txt" || fail "public port served admin content on $path"
done
ok "public port: /healthz /readyz /metrics /connections not served (proxied to the backend: 404)"
hello="$(curl_ -f "$public/hello")" || fail "GET $public/hello through the proxy failed"
[[ "$hello" == "hello from the echo backend"* ]] || fail "GET /hello through the proxy answered '$hello'"
ok "HTTP through the proxy: $hello"
pid="$(podman inspect --format '{{.State.Pid}}' "$proxy")"
uids="$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")"
[[ "$uids" == "1654 1654 1654 1654" ]] || fail "the proxy process (host pid $pid) runs with uids '$uids', want 1654"
ok "process $(tr '\0' ' ' < "/proc/$pid/cmdline")runs as uid 1654 (real, effective, saved, fs)"
[[ "$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$proxy")" == true ]] || fail "root filesystem is not read-only"

step "run: WebSocket echo through the container"
out="$(timeout 60 podman run --rm --network=host "$echo_image" client "ws://127.0.0.1:$public_port/echo" "hello through the container" 2>&1)" \
    || fail "WebSocket echo through the container failed: $out"
[[ "$out" == *"got 'hello through the container' back"* ]] || fail "unexpected client output: $out"
ok "$out"
admin_curl_ -f "$admin/metrics" > "$tmp/metrics.txt" || fail "admin /metrics did not answer"
grep -qE '^reaper_connections_opened(_total)?[{ ].* 1$' "$tmp/metrics.txt" \
    || fail "admin /metrics does not count the WebSocket: $(grep '^reaper_' "$tmp/metrics.txt")"
ok "admin /metrics counts it: $(grep -E '^reaper_connections_opened' "$tmp/metrics.txt" | head -n 1)"

step "run: reaperproxy-probe from the image, against the proxy in the container"
out="$(timeout 60 podman run --rm --network=host --read-only --read-only-tmpfs=false --entrypoint reaperproxy-probe "$image" \
    "ws://127.0.0.1:$public_port/echo" --check ping-answer --check idle-live --limit 2s 2>&1)" \
    || fail "reaperproxy-probe in the image did not pass ping-answer and idle-live through the proxy:"$'\n'"$out"
grep -qE '^[│|] ping-answer +[│|] pass' <<<"$out" && grep -qE '^[│|] idle-live +[│|] pass' <<<"$out" || fail "unexpected probe output:"$'\n'"$out"
ok "reaperproxy-probe (on PATH in the image): $(tail -n 1 <<<"$out")"
# Its connections end with it; the next step counts exactly one open WebSocket.
deadline=$(( SECONDS + 10 ))
until [[ "$(admin_curl_ -f "$admin/metrics" | awk '/^reaper_connections_active[{ ]/ {s += $NF} END {print s + 0}')" == 0 ]]; do
    (( SECONDS < deadline )) || fail "the probe's WebSockets were still open 10 s after it exited"
    sleep 0.2
done

step "run: SIGTERM with a WebSocket open"
run podman run -d --name "$client" --network=host "$echo_image" \
    client "ws://127.0.0.1:$public_port/echo" "held open" --wait-close 60 >/dev/null
deadline=$(( SECONDS + 30 ))
until podman logs "$client" 2>/dev/null | grep -q "waiting up to"; do
    [[ "$(podman inspect --format '{{.State.Running}}' "$client")" == true ]] || fail "the client exited: $(podman logs "$client" 2>&1)"
    (( SECONDS < deadline )) || fail "the client did not connect within 30s"
    sleep 0.2
done
active="$(admin_curl_ -f "$admin/metrics" | awk '/^reaper_connections_active[{ ]/ {s += $NF} END {print s + 0}')"
[[ "$active" == 1 ]] || fail "reaper_connections_active is $active with one client connected"
ok "client connected (reaper_connections_active 1)"
stop_start=$(date +%s.%N)
run timeout $((stop_timeout + 30)) podman stop -t "$stop_timeout" "$proxy" >/dev/null
stop_took="$(awk -v a="$stop_start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')"
exit_code="$(podman inspect --format '{{.State.ExitCode}}' "$proxy")"
[[ "$exit_code" == 0 ]] || fail "the proxy container exited with $exit_code after SIGTERM (137: killed at the stop timeout)"
awk -v t="$stop_took" -v m="$stopped_within" 'BEGIN {exit !(t < m)}' || fail "the proxy took ${stop_took}s to exit after SIGTERM (limit ${stopped_within}s)"
ok "container exited 0, ${stop_took}s after SIGTERM"
client_code="$(timeout 30 podman wait "$client" || echo timeout)"
client_out="$(podman logs "$client" 2>&1)"
[[ "$client_code" == 0 ]] || fail "the client exited $client_code: $client_out"
grep -q "server closed: 1001 proxy shutting down" <<<"$client_out" || fail "the client did not get Close 1001: $client_out"
ok "client: $(grep 'server closed' <<<"$client_out")"

podman logs "$proxy" > "$tmp/proxy.log" 2>&1
if grep -E ' (warn|fail|crit): ' "$tmp/proxy.log"; then
    fail "the proxy logged warnings or errors (above)"
fi
grep -q 'ReaperProxy is running' "$tmp/proxy.log" || fail "no start banner in the proxy log"
ok "proxy log: no warnings or errors, start to stop"
end_step

echo "== timings"
printf '%s\n' "${timings[@]}"
echo "total $((SECONDS - started))s"
echo "deploy/container: all checks passed"
