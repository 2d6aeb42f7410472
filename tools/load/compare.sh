#!/usr/bin/env bash
# ReaperProxy against the proxies users would pick instead, in one run on one machine: the backend
# directly (direct), nginx, HAProxy, ReaperProxy Mode Off (plain YARP: off) and ReaperProxy Mode Enforce
# (PingInterval 15s, PongTimeout 10s: enforce). The same LoadTest clients and backend for every subject;
# subjects interleaved (the order rotates with each repetition) and every measurement repeated; one
# report of medians with ratios to direct and to Off, and the issue-11 targets marked met or short.
#
#   tools/load/compare.sh [--repeat 3] [--only throughput,latency,churn,idle,heartbeat]
#       [--subjects direct,nginx,haproxy,off,enforce]
#       [--sizes 64,1024,65536] [--connections 1,16,256] [--duration 5] [--warmup 1]
#       [--rates 1000,5000] [--rate-connections 16] [--rate-size 64] [--rate-duration 10] [--rate-warmup 2]
#       [--churn-concurrency 16] [--churn-duration 5] [--abort-fraction 0.1]
#       [--idle-count 3000] [--idle-settle 20]
#       [--heartbeat-count 9000] [--heartbeat-window 45] [--heartbeat-settle 20] [--short-ping 2s]
#       [--sources 4] [--port-base 26000] [--no-build] [--out DIR] [--smoke] [--estimate]
#
# Parts:
#   throughput  closed-loop echo (LoadTest echo), msg/s and the proxy's CPU µs per message (all of its
#               processes: nginx master + workers), every size x connection count
#   latency     open-loop echo at fixed rates (LoadTest rate): p50/p99/p99.9 from the intended send time
#   churn       connect + upgrade + one echo + close (a share aborted) in a loop (LoadTest churn)
#   idle        RSS per idle live WebSocket: each subject started fresh, N idle connections, the RSS
#               delta over the idle process / N (nginx: all of its processes)
#   heartbeat   9,000 idle connections: proxy CPU over a window for Off, Enforce (15 s pings) and a
#               short-interval Enforce (--short-ping); µs per ping from reaper_pings_sent_total
# --estimate: print how long the run would take (the estimate the watchdog is set from) and exit.
# --smoke: every subject and part, one size and connection count, tiny durations, a few hundred idle
#   connections: checks that the harness works (well under 90 s once built); exits non-zero when a
#   subject errored or a table is missing. The figures it prints mean nothing.
# PROXY_DLL / PROXY_LABEL select another build of ReaperProxy (common.sh). Writes compare-*.jsonl (raw)
# and compare-*.md (the tables, as printed) into --out DIR. Everything is on loopback.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
COMMAND_LINE="$0 $*"

ALL_PARTS=throughput,latency,churn,idle,heartbeat
PARTS=$ALL_PARTS SUBJECTS=direct,nginx,haproxy,off,enforce
SIZES=64,1024,65536 CONNS=1,16,256 DURATION=5 WARMUP=1
RATES=1000,5000 RATE_CONNS=16 RATE_SIZE=64 RATE_DURATION=10 RATE_WARMUP=2
CHURN_CONC=16 CHURN_DURATION=5 ABORT_FRACTION=0.1
IDLE_COUNT=3000 IDLE_SETTLE=20
HB_COUNT=9000 HB_WINDOW=45 HB_SETTLE=20 SHORT_PING=2s HB_BASE=5
REPEAT=3 NSRC=4 PORT_BASE=26000 BUILD=1 OUT="" SMOKE=0 SUBJECT_WARMUP=2 ESTIMATE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --only) PARTS=$2; shift 2 ;;
    --subjects) SUBJECTS=$2; shift 2 ;;
    --sizes) SIZES=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --rates) RATES=$2; shift 2 ;;
    --rate-connections) RATE_CONNS=$2; shift 2 ;;
    --rate-size) RATE_SIZE=$2; shift 2 ;;
    --rate-duration) RATE_DURATION=$2; shift 2 ;;
    --rate-warmup) RATE_WARMUP=$2; shift 2 ;;
    --churn-concurrency) CHURN_CONC=$2; shift 2 ;;
    --churn-duration) CHURN_DURATION=$2; shift 2 ;;
    --abort-fraction) ABORT_FRACTION=$2; shift 2 ;;
    --idle-count) IDLE_COUNT=$2; shift 2 ;;
    --idle-settle) IDLE_SETTLE=$2; shift 2 ;;
    --heartbeat-count) HB_COUNT=$2; shift 2 ;;
    --heartbeat-window) HB_WINDOW=$2; shift 2 ;;
    --heartbeat-settle) HB_SETTLE=$2; shift 2 ;;
    --short-ping) SHORT_PING=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --sources) NSRC=$2; shift 2 ;;
    --port-base) PORT_BASE=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --out) OUT=$2; shift 2 ;;
    --smoke) SMOKE=1; shift ;;
    --estimate) ESTIMATE=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "compare.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
if [ "$SMOKE" = 1 ]; then
  # Every subject and every part, as small as still exercises each path. Only the subject/part
  # selection and the output directory may still be chosen.
  SIZES=64 CONNS=16 DURATION=1 WARMUP=0.5
  RATES=500 RATE_CONNS=16 RATE_DURATION=1 RATE_WARMUP=0.5
  CHURN_CONC=8 CHURN_DURATION=0.5
  IDLE_COUNT=200 IDLE_SETTLE=0.5
  HB_COUNT=300 HB_WINDOW=2 HB_SETTLE=1 SHORT_PING=1s HB_BASE=0.5
  REPEAT=1 SUBJECT_WARMUP=0
fi

die_early() { echo "compare.sh: $*" >&2; exit 2; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
is_num() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
has() { [[ ",$1," == *",$2,"* ]]; }
IFS=, read -r -a PART_LIST <<<"$PARTS"
IFS=, read -r -a SUBJECT_LIST <<<"$SUBJECTS"
IFS=, read -r -a SIZE_LIST <<<"$SIZES"
IFS=, read -r -a CONN_LIST <<<"$CONNS"
IFS=, read -r -a RATE_LIST <<<"$RATES"
for p in "${PART_LIST[@]}"; do has "$ALL_PARTS" "$p" || die_early "--only: '$p' is not one of $ALL_PARTS"; done
for s in "${SUBJECT_LIST[@]}"; do has direct,nginx,haproxy,off,enforce "$s" || die_early "--subjects: '$s' is not one of direct,nginx,haproxy,off,enforce"; done
for v in "${SIZE_LIST[@]}"; do is_uint "$v" && [ "$v" -ge 1 ] && [ "$v" -le 1048576 ] || die_early "--sizes: '$v' must be 1..1048576 bytes"; done
for v in "${CONN_LIST[@]}"; do is_uint "$v" && [ "$v" -ge 1 ] && [ "$v" -le 1000 ] || die_early "--connections: '$v' must be 1..1000"; done
for v in "${RATE_LIST[@]}"; do is_uint "$v" && [ "$v" -ge 1 ] && [ "$v" -le 200000 ] || die_early "--rates: '$v' must be 1..200000 msg/s"; done
for v in "$DURATION" "$WARMUP" "$RATE_DURATION" "$RATE_WARMUP" "$CHURN_DURATION" "$IDLE_SETTLE" "$HB_SETTLE" "$HB_WINDOW"; do
  is_num "$v" && awk -v x="$v" 'BEGIN {exit !(x > 0 && x <= 600)}' || die_early "durations are seconds in (0, 600]: '$v'"
done
is_uint "$REPEAT" && [ "$REPEAT" -ge 1 ] && [ "$REPEAT" -le 10 ] || die_early "--repeat must be 1..10"
is_uint "$NSRC" && [ "$NSRC" -ge 1 ] && [ "$NSRC" -le 50 ] || die_early "--sources must be 1..50"
is_uint "$RATE_CONNS" && [ "$RATE_CONNS" -ge 1 ] && [ "$RATE_CONNS" -le 1000 ] || die_early "--rate-connections must be 1..1000"
is_uint "$CHURN_CONC" && [ "$CHURN_CONC" -ge 1 ] && [ "$CHURN_CONC" -le 256 ] || die_early "--churn-concurrency must be 1..256"
# Two descriptors per proxied connection and 20,000 per process: 9,900 at most (run-idle.sh's bound).
is_uint "$IDLE_COUNT" && [ "$IDLE_COUNT" -ge 1 ] && [ "$IDLE_COUNT" -le 9900 ] || die_early "--idle-count must be 1..9900"
is_uint "$HB_COUNT" && [ "$HB_COUNT" -ge 1 ] && [ "$HB_COUNT" -le 9900 ] || die_early "--heartbeat-count must be 1..9900"
[[ $SHORT_PING =~ ^[0-9]+(ms|s)$ ]] || die_early "--short-ping: '$SHORT_PING' must be like 2s or 500ms"
is_uint "$PORT_BASE" && [ "$PORT_BASE" -ge 1024 ] && [ "$PORT_BASE" -le 32700 ] || die_early "--port-base must be 1024..32700 (below the ephemeral range)"

# The budget, estimated up front from the same formulas the parts use, with each process's start-up.
n_subj=${#SUBJECT_LIST[@]} n_proxy=0 n_rp=0
for s in "${SUBJECT_LIST[@]}"; do [ "$s" != direct ] && n_proxy=$((n_proxy + 1)); case $s in off|enforce) n_rp=$((n_rp + 1)) ;; esac; done
n_hb=0; has "$SUBJECTS" off && n_hb=$((n_hb + 1)); has "$SUBJECTS" enforce && n_hb=$((n_hb + 2))
BUDGET=$(awk -v R="$REPEAT" -v S="$n_subj" -v P="$n_proxy" -v H="$n_hb" -v sizes="${#SIZE_LIST[@]}" -v conns="${#CONN_LIST[@]}" \
  -v rates="${#RATE_LIST[@]}" -v d="$DURATION" -v w="$WARMUP" -v rd="$RATE_DURATION" -v rw="$RATE_WARMUP" -v cd="$CHURN_DURATION" \
  -v ic="$IDLE_COUNT" -v is="$IDLE_SETTLE" -v hc="$HB_COUNT" -v hs="$HB_SETTLE" -v hw="$HB_WINDOW" -v hb="$HB_BASE" -v sw="$SUBJECT_WARMUP" \
  -v tp="$(has "$PARTS" throughput && echo 1 || echo 0)" -v lat="$(has "$PARTS" latency && echo 1 || echo 0)" \
  -v ch="$(has "$PARTS" churn && echo 1 || echo 0)" -v id="$(has "$PARTS" idle && echo 1 || echo 0)" -v hbp="$(has "$PARTS" heartbeat && echo 1 || echo 0)" \
  'BEGIN {
     t = 20 + (tp || lat || ch) * S * (sw + 2)
     t += tp * R * S * sizes * conns * (d + w + 2)
     t += lat * R * S * rates * (rd + rw + 3)
     t += ch * R * S * (cd + 2)
     t += id * R * P * (8 + ic / 1000 + is + 3)
     t += hbp * R * H * (8 + hb + hc / 600 + hs + hw + 6)
     printf "%d\n", t }')
[ "$BUDGET" -le 3600 ] || die_early "that is about ${BUDGET}s of measurements: keep one invocation under an hour (fewer --repeat, sizes, connection counts or rates, shorter durations, or --only some parts)"
# The watchdog: half again the estimate, plus the build, and never more than 75 minutes.
WATCHDOG_SECONDS=$(( BUDGET * 3 / 2 + 300 )); [ "$WATCHDOG_SECONDS" -le 4500 ] || WATCHDOG_SECONDS=4500
if [ "$ESTIMATE" = 1 ]; then
  echo "about $BUDGET s ($((BUDGET / 60)) min) of measurements plus the build; watchdog ${WATCHDOG_SECONDS} s"
  exit 0
fi

# shellcheck source=common.sh
source "$HERE/common.sh"

needs_tool() { # NAME DEBIAN_PACKAGE
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || die "$1 not found: install Debian's $2 (apt-get install $2); .ci/run does"
}
has "$SUBJECTS" nginx && needs_tool nginx nginx-light
has "$SUBJECTS" haproxy && needs_tool haproxy haproxy
NGINX=$(command -v nginx || echo /usr/sbin/nginx) HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

# Ports: PORT_BASE + 0 backend; + 1..4 the long-lived subjects (throughput, latency, churn);
# + 21..25 the fresh ones (idle, heartbeat); ReaperProxy admin listeners at + 10.
BACKEND_PORT=$PORT_BASE
declare -A LONG_PORT=([nginx]=$((PORT_BASE + 1)) [haproxy]=$((PORT_BASE + 2)) [off]=$((PORT_BASE + 3)) [enforce]=$((PORT_BASE + 4)))
declare -A FRESH_PORT=([nginx]=$((PORT_BASE + 21)) [haproxy]=$((PORT_BASE + 22)) [off]=$((PORT_BASE + 23)) [enforce]=$((PORT_BASE + 24)) [short]=$((PORT_BASE + 25)))
SRC=$(seq -s, 2 $((NSRC + 1)) | sed 's/\([0-9]*\)/127.0.0.\1/g')

begin_run compare
START_SECONDS=$SECONDS
STAMP=$(date +%Y%m%dT%H%M%S)
RESULTS="$OUT/compare-$STAMP.jsonl"
REPORT="$OUT/compare-$STAMP.md"
ERRORS=0
log "subjects $SUBJECTS; parts $PARTS; repeat $REPEAT; estimated ${BUDGET}s (watchdog ${WATCHDOG_SECONDS}s); work dir $WORK; results $RESULTS"

# ---- the subjects --------------------------------------------------------------------------------

wait_port() { # PORT SECONDS
  local deadline=$((SECONDS + $2))
  while [ $SECONDS -lt "$deadline" ]; do
    port_free "$1" || return 0
    sleep 0.1
  done
  die "nothing listens on 127.0.0.1:$1 after $2 s"
}

# start_subject NAME PORT [PING]: sets SUBJECT_PID (the process to stop), SUBJECT_PIDS (comma-separated:
# every process whose CPU and memory are the proxy's) and SUBJECT_ADMIN (ReaperProxy's admin port).
start_subject() {
  local name=$1 port=$2 ping=${3:-15s} dir
  SUBJECT_ADMIN=""
  port_free "$port" || die "port $port is in use"
  case $name in
    nginx)
      dir="$WORK/nginx-$port"; mkdir -p "$dir"
      sed -e "s|@PREFIX@|$dir|g; s|@USER@|$(id -un)|; s|@GROUP@|$(id -gn)|; s|@LISTEN_PORT@|$port|; s|@BACKEND_PORT@|$BACKEND_PORT|" \
        "$HERE/peers/nginx.conf" >"$dir/nginx.conf"
      "$NGINX" -p "$dir" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
      SUBJECT_PID=$!; PIDS+=("$SUBJECT_PID")
      wait_port "$port" 20
      # worker_processes auto: one worker per core; wait until all of them exist.
      local workers=""
      for _ in $(seq 100); do
        workers=$(pgrep -P "$SUBJECT_PID" | paste -sd, -)
        [ "$(echo "$workers" | tr , '\n' | grep -c .)" -ge "$(nproc)" ] && break
        sleep 0.1
      done
      [ -n "$workers" ] || { cat "$dir"/*.log >&2; die "nginx started no worker"; }
      SUBJECT_PIDS="$SUBJECT_PID,$workers"
      ;;
    haproxy)
      dir="$WORK/haproxy-$port"; mkdir -p "$dir"
      sed -e "s|@LISTEN_PORT@|$port|; s|@BACKEND_PORT@|$BACKEND_PORT|" "$HERE/peers/haproxy.cfg" >"$dir/haproxy.cfg"
      "$HAPROXY" -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
      SUBJECT_PID=$!; PIDS+=("$SUBJECT_PID")
      wait_port "$port" 20
      SUBJECT_PIDS=$SUBJECT_PID
      ;;
    off|enforce|short)
      local mode=Enforce; [ "$name" = off ] && mode=Off
      write_proxy_config "$WORK/proxy-$name-$port.json" "$mode" "$ping" 10s "$BACKEND_PORT"
      start_proxy "$WORK/proxy-$name-$port.json" "$port" $((port + 10))
      SUBJECT_PID=$PROXY_PID SUBJECT_PIDS=$PROXY_PID SUBJECT_ADMIN=$((port + 10))
      ;;
    *) die "unknown subject $name" ;;
  esac
}

url_of() { # SUBJECT
  if [ "$1" = direct ]; then echo "ws://127.0.0.1:$BACKEND_PORT/ws"; else echo "ws://127.0.0.1:${LONG_PORT[$1]}/ws"; fi
}

sum_ticks() { local p t=0; for p in ${1//,/ }; do t=$((t + $(cpu_ticks "$p"))); done; echo "$t"; }
sum_rss() { local p t=0; for p in ${1//,/ }; do t=$((t + $(status_kb "$p" VmRSS))); done; echo "$t"; }
sum_fds() { local p t=0; for p in ${1//,/ }; do t=$((t + $(fd_count "$p"))); done; echo "$t"; }

# The order of the subjects for repetition REP: rotated by REP - 1, so none is always first or last.
rotated() { # REP NAME...
  local rep=$1; shift
  local list=("$@") n=$# i
  for ((i = 0; i < n; i++)); do echo "${list[$(((i + rep - 1) % n))]}"; done
}

busy_since() { # MB0 MT0: the whole machine's busy % since those /proc/stat jiffies
  local mb1 mt1; read -r mb1 mt1 < <(machine_jiffies)
  awk -v a="$1" -v b="$mb1" -v c="$2" -v d="$mt1" 'BEGIN {printf "%.1f", (b - a) / ((d - c) > 0 ? d - c : 1) * 100}'
}

record() { echo "$1" >>"$RESULTS"; }

# measure PART SUBJECT REP EXTRA_JSON -- COMMAND...: runs one LoadTest measurement, records its JSON with
# the machine's busy % over it; a failed or erroring measurement is recorded as such and counted.
measure() {
  local part=$1 subject=$2 rep=$3 extra=$4; shift 5
  local mb0 mt0 json status=0
  read -r mb0 mt0 < <(machine_jiffies)
  json=$("$@" 2>>"$WORK/$part.log") || status=$?
  local busy; busy=$(busy_since "$mb0" "$mt0")
  [ -n "$json" ] || json=null
  [ "$status" = 0 ] || { ERRORS=$((ERRORS + 1)); log "  $part $subject $extra: exit $status (see $WORK/$part.log)"; }
  record "{\"part\":\"$part\",\"subject\":\"$subject\",\"repeat\":$rep,$extra,\"exitCode\":$status,\"machineBusyPct\":$busy,\"loadavg\":\"$(loadavg)\",\"result\":$json}"
  LAST_JSON=$json
}

# Backend first in --watch-pid, then the subject's processes (the report sums those).
watch_of() { # SUBJECT
  if [ "$1" = direct ]; then echo "$BACKEND_PID"; else echo "$BACKEND_PID,${LONG_PIDS[$1]}"; fi
}

summary() { # JSON FIELDS...: a short log line
  python3 -c 'import json,sys
d=json.loads(sys.argv[1])
print(", ".join(f"{k} {d.get(k)}" for k in sys.argv[2:]) if d else "failed")' "$@" 2>/dev/null || echo failed
}

# ---- the header ------------------------------------------------------------------------------------
mem_kb=$(awk '$1 == "MemTotal:" {print $2}' /proc/meminfo)
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
runtime=$(dotnet --list-runtimes 2>/dev/null | awk '$1 == "Microsoft.NETCore.App" {v=$2} END {print v}')
# A peer's version only when it is installed (a run with --subjects off,enforce needs neither).
nginx_version=$([ -x "$NGINX" ] && "$NGINX" -v 2>&1 | sed 's/^nginx version: //' || echo "not installed")
haproxy_version=$([ -x "$HAPROXY" ] && "$HAPROXY" -v 2>/dev/null | head -1 | awk '{print $3}' || echo "not installed")
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo +dirty)
python3 - "$RESULTS" <<PY
import json, sys
header = {
  "part": "header", "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "command": $(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$COMMAND_LINE"),
  "commit": "$commit", "proxyBuild": "$PROXY_LABEL", "proxyDll": "$PROXY_DLL",
  "machine": {"nproc": $(nproc), "memTotalKB": $mem_kb, "kernel": "$(uname -r)", "cpu": $(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$cpu_model")},
  "dotnetRuntime": "$runtime", "nginx": "$nginx_version", "haproxy": "$haproxy_version",
  "smoke": $SMOKE, "repeat": $REPEAT, "parts": "$PARTS", "subjects": "$SUBJECTS",
  "sizes": "$SIZES", "connections": "$CONNS", "duration": $DURATION, "warmup": $WARMUP,
  "rates": "$RATES", "rateConnections": $RATE_CONNS, "rateSize": $RATE_SIZE, "rateDuration": $RATE_DURATION,
  "churnConcurrency": $CHURN_CONC, "churnDuration": $CHURN_DURATION, "abortFraction": $ABORT_FRACTION,
  "idleCount": $IDLE_COUNT, "idleSettle": $IDLE_SETTLE,
  "heartbeatCount": $HB_COUNT, "heartbeatWindow": $HB_WINDOW, "heartbeatSettle": $HB_SETTLE, "shortPing": "$SHORT_PING",
  "sources": "$SRC", "estimatedSeconds": $BUDGET,
}
open(sys.argv[1], "a").write(json.dumps(header) + "\n")
PY

start_backend "$BACKEND_PORT"

# ---- throughput, latency, churn: long-lived subjects, interleaved -----------------------------------
declare -A LONG_PIDS=() LONG_MAIN=()
if has "$PARTS" throughput || has "$PARTS" latency || has "$PARTS" churn; then
  for s in "${SUBJECT_LIST[@]}"; do
    [ "$s" = direct ] && continue
    start_subject "$s" "${LONG_PORT[$s]}"
    LONG_PIDS[$s]=$SUBJECT_PIDS
    LONG_MAIN[$s]=$SUBJECT_PID
  done
  log "subjects up: $(for s in "${!LONG_PIDS[@]}"; do printf '%s pids %s; ' "$s" "${LONG_PIDS[$s]}"; done)"
  # JIT, pools and the first connections out of the way before anything is measured (--smoke relies
  # on each measurement's own warm-up).
  [ "$SMOKE" = 1 ] || for s in "${SUBJECT_LIST[@]}"; do
    dotnet "$LOADTEST_DLL" echo --target "$(url_of "$s")" --connections 16 --size 1024 --duration "${SUBJECT_WARMUP}s" \
      --warmup 0.5s --source "$SRC" >>"$WORK/warmup.log" 2>&1 || log "warm-up of $s reported errors"
  done
fi

if has "$PARTS" throughput; then
  for rep in $(seq "$REPEAT"); do
    mapfile -t order < <(rotated "$rep" "${SUBJECT_LIST[@]}")
    for size in "${SIZE_LIST[@]}"; do
      for k in "${CONN_LIST[@]}"; do
        for s in "${order[@]}"; do
          measure throughput "$s" "$rep" "\"size\":$size,\"connections\":$k" -- \
            dotnet "$LOADTEST_DLL" echo --target "$(url_of "$s")" --connections "$k" --size "$size" \
            --duration "${DURATION}s" --warmup "${WARMUP}s" --source "$SRC" --watch-pid "$(watch_of "$s")"
          log "throughput rep $rep size $size K $k $s: $(summary "$LAST_JSON" messagesPerSec p99Us errors)"
        done
      done
    done
  done
fi

if has "$PARTS" latency; then
  for rep in $(seq "$REPEAT"); do
    mapfile -t order < <(rotated "$rep" "${SUBJECT_LIST[@]}")
    for r in "${RATE_LIST[@]}"; do
      for s in "${order[@]}"; do
        measure latency "$s" "$rep" "\"rate\":$r,\"connections\":$RATE_CONNS,\"size\":$RATE_SIZE" -- \
          dotnet "$LOADTEST_DLL" rate --target "$(url_of "$s")" --connections "$RATE_CONNS" --rate "$r" --size "$RATE_SIZE" \
          --duration "${RATE_DURATION}s" --warmup "${RATE_WARMUP}s" --drain 2s --source "$SRC" --watch-pid "$(watch_of "$s")"
        log "latency rep $rep rate $r $s: $(summary "$LAST_JSON" achievedRate p50Us p99Us p999Us keptUp)"
      done
    done
  done
fi

if has "$PARTS" churn; then
  for rep in $(seq "$REPEAT"); do
    mapfile -t order < <(rotated "$rep" "${SUBJECT_LIST[@]}")
    for s in "${order[@]}"; do
      measure churn "$s" "$rep" "\"concurrency\":$CHURN_CONC" -- \
        dotnet "$LOADTEST_DLL" churn --target "$(url_of "$s")" --concurrency "$CHURN_CONC" --duration "${CHURN_DURATION}s" \
        --abort-fraction "$ABORT_FRACTION" --source "$SRC" --watch-pid "$(watch_of "$s")"
      log "churn rep $rep $s: $(summary "$LAST_JSON" upgradesPerSec connectP50Us connectP99Us errors)"
    done
  done
fi

# The long-lived subjects go before anything is measured on fresh processes.
for s in "${!LONG_MAIN[@]}"; do stop_pid "${LONG_MAIN[$s]}"; done

# ---- idle memory and heartbeat CPU: a fresh process per measurement ---------------------------------

# idle_measure PART SUBJECT REP COUNT SETTLE WINDOW [PING]: starts SUBJECT fresh, warms it up, takes its
# idle RSS (and CPU over HB_BASE s when WINDOW > 0), opens COUNT idle WebSockets from
# ceil(COUNT / 3000) client processes, waits SETTLE s, then measures CPU and pings over WINDOW s (when
# WINDOW > 0), RSS, and for ReaperProxy the managed heap after a full GC before and after the
# connections (idle part only, not in --smoke). Records one line.
idle_measure() {
  local part=$1 subject=$2 rep=$3 count=$4 settle=$5 window=$6 ping=${7:-15s}
  local port=${FRESH_PORT[$subject]} dir="$WORK/$part-$subject-$rep"
  mkdir -p "$dir"
  start_subject "$subject" "$port" "$ping"
  local pids=$SUBJECT_PIDS main=$SUBJECT_PID admin=$SUBJECT_ADMIN target="ws://127.0.0.1:$port/ws"
  # Warm up as run-idle.sh does (JIT, pools, the first upgrades), then let the process go quiet.
  # (Not in --smoke: its figures mean nothing, and it must stay short.)
  if [ "$SMOKE" = 0 ]; then
    dotnet "$LOADTEST_DLL" echo --target "$target" --connections 4 --size 64 --duration 1s --warmup 0.5s --source 127.0.0.2 >>"$dir/warmup.log" 2>&1 || true
    dotnet "$LOADTEST_DLL" idle --target "$target" --count 100 --source 127.0.0.2 --duration 0.5s >>"$dir/warmup.log" 2>&1 || true
    sleep 3
  fi
  local base_rss base_cpu="null" t0 t1 heap="null" base_heap="null"
  local heap_of='import json,sys; print(((json.load(sys.stdin).get("heapAfterFullGc") or {}).get("totalHeapSize")) or "null")'
  if [ "$part" = idle ] && [ -n "$admin" ] && [ "$SMOKE" = 0 ]; then
    base_heap=$(runtime_stats "$main" | python3 -c "$heap_of" 2>/dev/null || echo null)
  fi
  base_rss=$(sum_rss "$pids")
  if awk -v w="$window" 'BEGIN {exit !(w > 0)}'; then
    t0=$(sum_ticks "$pids"); sleep "$HB_BASE"; t1=$(sum_ticks "$pids")
    base_cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" -v s="$HB_BASE" 'BEGIN {printf "%.2f", (b - a) / hz / s * 100}')
  fi
  local clients=$(((count + 2999) / 3000))
  local hold; hold=$(awk -v s="$settle" -v w="$window" 'BEGIN {printf "%d", s + w + 120}')
  start_idle_clients "$target" "$count" "$clients" "$hold" "$dir"
  wait_idle_clients "$dir" "$clients" 200
  # The machine's busy %: over the CPU window when there is one, else over the settle time.
  local mb0 mt0 c0=0 c1=0 w0 w1 p0=0 p1=0 reaped=0 rss_max=0 r
  read -r mb0 mt0 < <(machine_jiffies)
  sleep "$settle"
  if awk -v w="$window" 'BEGIN {exit !(w > 0)}'; then read -r mb0 mt0 < <(machine_jiffies); fi
  if awk -v w="$window" 'BEGIN {exit !(w > 0)}'; then
    [ -n "$admin" ] && p0=$(metric_sum "$admin" '^reaper_pings_sent_total')
    c0=$(sum_ticks "$pids"); w0=$(date +%s.%N)
    local steps; steps=$(awk -v w="$window" 'BEGIN {printf "%d", w}')
    for _ in $(seq "$steps"); do
      sleep 1; r=$(sum_rss "$pids"); [ "$r" -gt "$rss_max" ] && rss_max=$r
    done
    awk -v w="$window" -v s="$steps" 'BEGIN {exit !(w > s)}' && sleep "$(awk -v w="$window" -v s="$steps" 'BEGIN {print w - s}')"
    c1=$(sum_ticks "$pids"); w1=$(date +%s.%N)
    [ -n "$admin" ] && p1=$(metric_sum "$admin" '^reaper_pings_sent_total')
  else
    w0=0 w1=0
  fi
  local rss fds busy
  rss=$(sum_rss "$pids"); fds=$(sum_fds "$pids")
  busy=$(busy_since "$mb0" "$mt0")
  [ -n "$admin" ] && reaped=$(metric_sum "$admin" '^reaper_connections_reaped_total')
  if [ "$part" = idle ] && [ -n "$admin" ] && [ "$SMOKE" = 0 ]; then
    heap=$(runtime_stats "$main" | python3 -c "$heap_of" 2>/dev/null || echo null)
  fi
  stop_idle_clients
  stop_pid "$main"
  python3 - "$dir" "$RESULTS" <<PY
import glob, json, os, sys
null = None  # the shell writes null for a figure it did not take
clients = []
for f in sorted(glob.glob(os.path.join(sys.argv[1], "client-*.json"))):
    try: clients.append(json.loads(open(f).read().strip().splitlines()[-1]))
    except Exception as e: clients.append({"error": f"{f}: {e}", "failed": 0, "closedEarly": 1})
n = $IDLE_CONNECTED
heap, base_heap = $heap, $base_heap
window = $w1 - $w0
r = {
  "part": "$part", "subject": "$subject", "repeat": $rep, "count": $count, "ping": "$ping" if "$subject" != "off" else None,
  "connected": n, "connectSeconds": $IDLE_CONNECT_SECONDS, "processes": len("$pids".split(",")),
  "baselineRssKB": $base_rss, "rssKB": $rss, "rssMaxKB": $rss_max, "rssPerConnKB": round(($rss - $base_rss) / n, 2) if n else None,
  "heapBytes": $heap, "baselineHeapBytes": $base_heap,
  "heapPerConnKB": round((heap - base_heap) / 1024 / n, 2) if n and heap is not None and base_heap is not None else None,
  "fds": $fds,
  "windowSeconds": round(window, 2) if window > 0 else None,
  "baselineCpuPctOfCore": $base_cpu,
  "cpuPctOfCore": round(($c1 - $c0) / $CLK_TCK / window * 100, 3) if window > 0 else None,
  "pingsSent": $p1 - $p0, "pingsPerSec": round(($p1 - $p0) / window, 1) if window > 0 else None,
  "reapedTotal": $reaped,
  "clientsFailed": sum(c.get("failed", 0) for c in clients),
  "clientsClosedEarly": sum(c.get("closedEarly", 0) for c in clients),
  "earlyCloseReasons": [c.get("earlyCloseReasons") for c in clients if c.get("closedEarly")],
  "machineBusyPct": $busy, "loadavg": "$(loadavg)",
}
open(sys.argv[2], "a").write(json.dumps(r) + "\n")
open(os.path.join(sys.argv[1], "summary"), "w").write(f'{r["connected"]}/{r["count"]} connected, RSS {r["rssPerConnKB"]} KiB/conn, CPU {r["cpuPctOfCore"]} % (idle {r["baselineCpuPctOfCore"]}), pings/s {r["pingsPerSec"]}, failed {r["clientsFailed"]}, cut {r["clientsClosedEarly"]}, reaped {r["reapedTotal"]}')
if r["clientsFailed"] or r["clientsClosedEarly"] or n < $count: sys.exit(1)
PY
}

if has "$PARTS" idle; then
  idle_subjects=(); for s in "${SUBJECT_LIST[@]}"; do [ "$s" != direct ] && idle_subjects+=("$s"); done
  for rep in $(seq "$REPEAT"); do
    mapfile -t order < <(rotated "$rep" "${idle_subjects[@]}")
    for s in "${order[@]}"; do
      idle_measure idle "$s" "$rep" "$IDLE_COUNT" "$IDLE_SETTLE" 0 || ERRORS=$((ERRORS + 1))
      log "idle rep $rep $s: $(cat "$WORK/idle-$s-$rep/summary" 2>/dev/null || echo failed)"
    done
  done
fi

if has "$PARTS" heartbeat; then
  hb_subjects=(); has "$SUBJECTS" off && hb_subjects+=(off); has "$SUBJECTS" enforce && hb_subjects+=(enforce short)
  for rep in $(seq "$REPEAT"); do
    mapfile -t order < <(rotated "$rep" "${hb_subjects[@]}")
    for s in "${order[@]}"; do
      ping=15s; [ "$s" = short ] && ping=$SHORT_PING
      idle_measure heartbeat "$s" "$rep" "$HB_COUNT" "$HB_SETTLE" "$HB_WINDOW" "$ping" || ERRORS=$((ERRORS + 1))
      log "heartbeat rep $rep $s ($ping): $(cat "$WORK/heartbeat-$s-$rep/summary" 2>/dev/null || echo failed)"
    done
  done
fi

stop_pid "$BACKEND_PID"
record "{\"part\":\"end\",\"seconds\":$((SECONDS - START_SECONDS)),\"errors\":$ERRORS}"
log "measurements took $((SECONDS - START_SECONDS)) s; $ERRORS measurement(s) failed or reported errors"

status=0
python3 "$HERE/compare-table.py" "$RESULTS" --markdown "$REPORT" --check || status=$?
log "raw results: $RESULTS"
log "report:      $REPORT"
# Exit 3 when a measurement failed or reported errors although every table is there.
[ "$ERRORS" = 0 ] || [ "$status" != 0 ] || status=3
exit "$status"
