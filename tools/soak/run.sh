#!/usr/bin/env bash
# The soak (docs/reliability.md §3): a real ReaperProxy process and a real backend on loopback under mixed
# load for MINUTES — healthy echo connections with sequence-numbered messages, idle live ones, clients that go
# silent or freeze at a recorded instant, churn of every kind (closes, aborts, resets mid-message, backend
# aborts, HTTP/2 stream resets), a config reload every few seconds (every fourth one invalid). It prints a
# summary, writes the figures to OUT/soak-result.json, and exits non-zero on any violation.
#
#   tools/soak/run.sh [--minutes 10] [--no-build] [--out DIR] [any other `ReaperProxy.LoadTest soak` option]
#
# Builds Release first (unless --no-build). Ports 27300..27303 on 127.0.0.1 unless --port-base says otherwise.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
BUILD=1
OUT=
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) BUILD=0; shift ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
OUT=${OUT:-$(mktemp -d /tmp/reaper-soak.XXXXXX)}
mkdir -p "$OUT"
PROXY_DLL="$ROOT/src/ReaperProxy/bin/Release/net10.0/ReaperProxy.dll"
LOADTEST_DLL="$ROOT/src/ReaperProxy.LoadTest/bin/Release/net10.0/ReaperProxy.LoadTest.dll"

if [ "$BUILD" = 1 ]; then
  echo "building Release (proxy + load harness)" >&2
  for project in ReaperProxy ReaperProxy.LoadTest; do
    dotnet build -c Release "$ROOT/src/$project/$project.csproj" -nologo -v q >"$OUT/build-$project.log" 2>&1 \
      || { cat "$OUT/build-$project.log" >&2; echo "error: $project build failed" >&2; exit 2; }
  done
fi
[ -f "$PROXY_DLL" ] && [ -f "$LOADTEST_DLL" ] || { echo "error: build first (or drop --no-build)" >&2; exit 2; }

# One proxied WebSocket costs the proxy two descriptors: use all the hard limit allows.
ulimit -n "$(ulimit -Hn)"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start; $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" >&2

# The soak stops its own children (the proxy and the backend) however it ends; SIGINT/SIGTERM reach it.
set +e
dotnet "$LOADTEST_DLL" soak --proxy-dll "$PROXY_DLL" --out "$OUT" "${ARGS[@]}" >"$OUT/soak-result.json"
status=$?
set -e
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; figures: $OUT/soak-result.json; logs: $OUT/proxy.log, $OUT/backend.log" >&2
exit "$status"
