#!/usr/bin/env bash
# End-to-end echo throughput and latency: the same closed-loop echo client against the backend directly,
# through ReaperProxy with Mode Off (plain YARP relay) and with Mode Enforce (frame-aware relay,
# PingInterval 15s, PongTimeout 10s). For each message size and connection count, the three targets
# run back to back (so they share the machine's conditions); the whole set is repeated --repeat times.
# Reports messages/s, p50/p99 round trip, and the proxy's and backend's CPU per message. ~3 min/repeat.
#
#   tools/load/run-echo.sh [--sizes 64,65536] [--connections 1,50] [--duration 10] [--warmup 2]
#                          [--repeat 2] [--sources 4] [--no-build] [--out DIR]
set -euo pipefail
source "$(dirname "$0")/common.sh"

SIZES=64,65536 CONNS=1,50 DURATION=10 WARMUP=2 REPEAT=2 NSRC=4 BUILD=1 OUT=""
BACKEND_PORT=15190 ENFORCE_PORT=18180 ENFORCE_ADMIN=19564 OFF_PORT=18280 OFF_ADMIN=19664
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) SIZES=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --sources) NSRC=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --out) OUT=$2; shift 2 ;;
    *) die "unknown option $1 (see the header of $0)" ;;
  esac
done
IFS=, read -r -a SIZE_LIST <<<"$SIZES"
IFS=, read -r -a CONN_LIST <<<"$CONNS"
runs=$(( ${#SIZE_LIST[@]} * ${#CONN_LIST[@]} * 3 * REPEAT ))
budget=$(( runs * (DURATION + WARMUP + 4) ))
[ "$budget" -le 540 ] || die "that is $runs echo runs, about ${budget}s: keep one invocation under ~9 minutes (fewer --repeat, sizes or connection counts, or a shorter --duration)"
[ "$NSRC" -ge 1 ] && [ "$NSRC" -le 50 ] || die "--sources must be 1..50"
SRC=$(seq -s, 2 $((NSRC + 1)) | sed 's/\([0-9]*\)/127.0.0.\1/g')

begin_run echo

start_backend "$BACKEND_PORT"
BACKEND=$BACKEND_PID
write_proxy_config "$WORK/enforce.json" Enforce 15s 10s "$BACKEND_PORT"
start_proxy "$WORK/enforce.json" "$ENFORCE_PORT" "$ENFORCE_ADMIN"
ENFORCE_PID=$PROXY_PID
write_proxy_config "$WORK/off.json" Off 15s 10s "$BACKEND_PORT"
start_proxy "$WORK/off.json" "$OFF_PORT" "$OFF_ADMIN"
OFF_PID=$PROXY_PID
log "proxy build $PROXY_LABEL; backend pid $BACKEND, proxy Enforce pid $ENFORCE_PID (:$ENFORCE_PORT), proxy Off pid $OFF_PID (:$OFF_PORT); $runs runs of ${DURATION}s; sources $SRC; work dir $WORK"

RESULTS="$OUT/echo-$(date +%Y%m%dT%H%M%S).jsonl"
for rep in $(seq "$REPEAT"); do
  for size in "${SIZE_LIST[@]}"; do
    for k in "${CONN_LIST[@]}"; do
      for target in direct off enforce; do
        case $target in
          direct) url="ws://127.0.0.1:$BACKEND_PORT/ws" watch="$BACKEND" ;;
          off) url="ws://127.0.0.1:$OFF_PORT/ws" watch="$BACKEND,$OFF_PID" ;;
          enforce) url="ws://127.0.0.1:$ENFORCE_PORT/ws" watch="$BACKEND,$ENFORCE_PID" ;;
        esac
        read -r mb0 mt0 < <(machine_jiffies)
        json=$(dotnet "$LOADTEST_DLL" echo --target "$url" --connections "$k" --size "$size" \
          --duration "${DURATION}s" --warmup "${WARMUP}s" --source "$SRC" --watch-pid "$watch" 2>>"$WORK/echo.log") || log "echo $target size $size K $k reported errors"
        read -r mb1 mt1 < <(machine_jiffies)
        busy=$(awk -v a="$mb0" -v b="$mb1" -v c="$mt0" -v d="$mt1" 'BEGIN {printf "%.1f", (b - a) / (d - c) * 100}')
        printf '{"proxy":"%s","repeat":%d,"target":"%s","machineBusyPct":%s,"loadavg":"%s","result":%s}\n' "$PROXY_LABEL" "$rep" "$target" "$busy" "$(loadavg)" "${json:-null}" >>"$RESULTS"
        log "rep $rep size $size K $k $target: $(echo "$json" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["messagesPerSec"], "msg/s, p50", d["p50Us"], "us, p99", d["p99Us"], "us")' 2>/dev/null || echo failed)"
      done
    done
  done
done

python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print()
print(f'{"rep":>3} {"size":>6} {"K":>3} {"target":>8} {"msg/s":>9} {"x direct":>8} {"p50 us":>8} {"p99 us":>9} {"proxy CPU %":>11} {"proxy us/msg":>12} {"backend us/msg":>14} {"busy %":>6} errors')
direct = {}
for r in rows:
    d = r["result"]
    if d is None:
        print(f'{r["repeat"]:>3} {"?":>6} {"?":>3} {r["target"]:>8}  failed'); continue
    key = (r["repeat"], d["size"], d["connections"])
    if r["target"] == "direct": direct[key] = d["messagesPerSec"]
    rel = d["messagesPerSec"] / direct[key] if direct.get(key) else float("nan")
    w = d.get("watched") or []
    backend = w[0] if w else None
    proxy = w[1] if len(w) > 1 else None
    print(f'{r["repeat"]:>3} {d["size"]:>6} {d["connections"]:>3} {r["target"]:>8} {d["messagesPerSec"]:>9.0f} {rel:>8.2f} {d["p50Us"]:>8.0f} {d["p99Us"]:>9.0f} '
          f'{(proxy["cpuPctOfCore"] if proxy else 0):>11.1f} {(proxy["cpuUsPerMessage"] if proxy else 0):>12.1f} {(backend["cpuUsPerMessage"] if backend else 0):>14.1f} {r["machineBusyPct"]:>6} {d["errors"]}')
print(f"\nresults: {sys.argv[1]}")
PY
