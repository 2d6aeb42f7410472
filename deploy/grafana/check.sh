#!/usr/bin/env bash
# Checks deploy/grafana/reaperproxy-dashboard.json:
#   1. it is valid JSON (python3 -m json.tool);
#   2. it is importable as is: a ${DS_PROMETHEUS} datasource input used everywhere, the job/instance/route
#      variables, unique panel ids, heatmaps in heatmap format (check_dashboard.py lint);
#   3. every PromQL expression in it parses and evaluates on a real Prometheus: a throwaway server on a
#      free loopback port, over synthetic series backfilled with promtool (check_dashboard.py synth/query).
# Needs prometheus, promtool (Debian package `prometheus`) and python3 on PATH. Starts and stops its own
# Prometheus (bounded by `timeout`, killed by a trap), listens only on 127.0.0.1, scrapes nothing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

dashboard=deploy/grafana/reaperproxy-dashboard.json
helper=deploy/grafana/check_dashboard.py
prometheus_lifetime=180   # seconds: the most this throwaway Prometheus may live
ready_within=60           # seconds to wait for it to answer /-/ready

for tool in prometheus promtool python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "check.sh: $tool not found on PATH (prometheus and promtool: Debian package 'prometheus')" >&2
        exit 2
    fi
done

run() {
    echo "+ $*"
    "$@"
}

tmp="$(mktemp -d)"
prom_pid=""
cleanup() {
    if [[ -n "$prom_pid" ]] && kill -0 "$prom_pid" 2>/dev/null; then
        echo "stopping Prometheus (pid $prom_pid)"
        kill "$prom_pid" 2>/dev/null || true
        wait "$prom_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

run python3 -m json.tool "$dashboard" > /dev/null
echo "  SUCCESS: $dashboard is valid JSON"
run python3 "$helper" lint "$dashboard" "$tmp/exprs.json"

# Synthetic series ending two minutes ago, backfilled into a fresh TSDB.
end=$(( $(date +%s) / 60 * 60 - 120 ))
run python3 "$helper" synth "$tmp/series.om" "$end"
mkdir -p "$tmp/data"
run promtool tsdb create-blocks-from openmetrics "$tmp/series.om" "$tmp/data" > "$tmp/backfill.log" 2>&1 \
    || { cat "$tmp/backfill.log"; exit 1; }

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
cat > "$tmp/prometheus.yml" <<'YAML'
# Throwaway server for deploy/grafana/check.sh: no scrape targets, no rules, no alerting.
global:
  scrape_interval: 15s
scrape_configs: []
YAML

echo "+ prometheus --config.file=$tmp/prometheus.yml --storage.tsdb.path=$tmp/data --web.listen-address=127.0.0.1:$port (at most ${prometheus_lifetime}s)"
timeout "$prometheus_lifetime" prometheus \
    --config.file="$tmp/prometheus.yml" \
    --storage.tsdb.path="$tmp/data" \
    --storage.tsdb.retention.time=1d \
    --web.listen-address="127.0.0.1:$port" \
    --log.level=warn \
    > "$tmp/prometheus.log" 2>&1 &
prom_pid=$!

base="http://127.0.0.1:$port"
deadline=$(( SECONDS + ready_within ))
until curl --noproxy '*' -fsS -o /dev/null --max-time 2 "$base/-/ready" 2>/dev/null; do
    if ! kill -0 "$prom_pid" 2>/dev/null; then
        echo "check.sh: Prometheus exited before it was ready:" >&2
        cat "$tmp/prometheus.log" >&2
        exit 1
    fi
    if (( SECONDS >= deadline )); then
        echo "check.sh: Prometheus not ready after ${ready_within}s:" >&2
        cat "$tmp/prometheus.log" >&2
        exit 1
    fi
    sleep 0.5
done
echo "  Prometheus $(prometheus --version 2>&1 | head -n 1 | awk '{print $3}') ready on $base"

run python3 "$helper" query "$base" "$tmp/exprs.json" "$end"

echo "deploy/grafana: all checks passed"
