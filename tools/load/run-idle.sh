#!/usr/bin/env bash
# Idle WebSockets under the heartbeat: N live, idle connections through one Release-build ReaperProxy.
# Measures the proxy's CPU (utime+stime over a fixed window), RSS and managed heap (after an induced
# full GC), total and per connection over the idle proxy's baseline, the pings/s it sends, and checks
# that no connection was reaped or cut. One run per invocation; bounded to about 5 minutes.
#
#   tools/load/run-idle.sh --policy enforce|off|short [--count 9000] [--clients 3] [--window 60]
#                          [--settle 20] [--legs Both|Client|Backend] [--ping 15s] [--pong 10s]
#                          [--no-build] [--out DIR] [--ports BACKEND,PROXY,ADMIN] [--heap-dump]
# --heap-dump: after the measurements, dump the loaded proxy's heap and list what it holds by type.
# HEAP_TOP=N in the environment: list the N largest types (default 80).
#
# policies: enforce = Mode Enforce, PingInterval 15s, PongTimeout 10s (the defaults)
#           short   = Mode Enforce, PingInterval 2s,  PongTimeout 10s (to show the cost of each ping)
#           off     = Mode Off (plain YARP relay, no frame parsing)
# The connections come from --clients processes, each on its own source address 127.0.0.2, .3, ...
# A proxied WebSocket costs the proxy two descriptors, so with the 20,000-descriptor limit per process
# --count stays below 10,000 (the default 9,000 leaves room for the proxy's own files).
set -euo pipefail
source "$(dirname "$0")/common.sh"

POLICY=enforce LEGS=Both PING_OVERRIDE="" PONG_OVERRIDE="" COUNT=9000 HEAPDUMP=0 CLIENTS=3 WINDOW=60 SETTLE=20 BUILD=1 OUT=""
BACKEND_PORT=15090 PROXY_PORT=18080 ADMIN_PORT=19464
while [ $# -gt 0 ]; do
  case "$1" in
    --policy) POLICY=$2; shift 2 ;;
    --count) COUNT=$2; shift 2 ;;
    --legs) LEGS=$2; shift 2 ;;
    --ping) PING_OVERRIDE=$2; shift 2 ;;
    --pong) PONG_OVERRIDE=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --window) WINDOW=$2; shift 2 ;;
    --settle) SETTLE=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --heap-dump) HEAPDUMP=1; shift ;;
    --out) OUT=$2; shift 2 ;;
    --ports) IFS=, read -r BACKEND_PORT PROXY_PORT ADMIN_PORT <<<"$2"; shift 2 ;;
    *) die "unknown option $1 (see the header of $0)" ;;
  esac
done
case "$POLICY" in
  enforce) MODE=Enforce PING=15s PONG=10s ;;
  short) MODE=Enforce PING=2s PONG=10s ;;
  off) MODE=Off PING=15s PONG=10s ;;
  *) die "--policy must be enforce, short or off" ;;
esac
PING=${PING_OVERRIDE:-$PING} PONG=${PONG_OVERRIDE:-$PONG}
case "$LEGS" in Both|Client|Backend) ;; *) die "--legs must be Both, Client or Backend" ;; esac
[ "$COUNT" -ge 1 ] && [ "$COUNT" -le 9900 ] || die "--count must be 1..9900 (two descriptors per connection, 20,000 per process)"
[ "$WINDOW" -ge 5 ] && [ "$WINDOW" -le 180 ] || die "--window must be 5..180 seconds"
[ "$CLIENTS" -ge 1 ] && [ "$CLIENTS" -le 20 ] || die "--clients must be 1..20"

begin_run idle

log "policy $POLICY (Mode $MODE, Legs $LEGS, PingInterval $PING, PongTimeout $PONG), $COUNT connections from $CLIENTS client processes, window ${WINDOW}s; work dir $WORK"
start_backend "$BACKEND_PORT"
write_proxy_config "$WORK/proxy.json" "$MODE" "$PING" "$PONG" "$BACKEND_PORT" "$LEGS"
start_proxy "$WORK/proxy.json" "$PROXY_PORT" "$ADMIN_PORT"
TARGET="ws://127.0.0.1:$PROXY_PORT/ws"

# Warm up the proxy's WebSocket path (JIT, pools), then let it go quiet and take the baseline.
dotnet "$LOADTEST_DLL" echo --target "$TARGET" --connections 4 --size 64 --duration 2s --warmup 1s --source 127.0.0.2 >"$WORK/warmup.json"
dotnet "$LOADTEST_DLL" idle --target "$TARGET" --count 100 --source 127.0.0.2 --duration 1s >>"$WORK/warmup.json" 2>/dev/null
sleep 5
BASE_STATS=$(runtime_stats "$PROXY_PID")
sleep 2
BASE_RSS=$(status_kb "$PROXY_PID" VmRSS)
BASE_ANON=$(status_kb "$PROXY_PID" RssAnon)
BASE_FDS=$(fd_count "$PROXY_PID")
BASE_TCP=$(tcp_mem_pages)
t0=$(cpu_ticks "$PROXY_PID"); sleep 10; t1=$(cpu_ticks "$PROXY_PID")
BASE_CPU=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", (b - a) / hz / 10 * 100}')
log "baseline: RSS ${BASE_RSS} kB, CPU ${BASE_CPU}% of a core, $BASE_FDS descriptors"

# Open the connections: COUNT spread over CLIENTS processes and source addresses 127.0.0.2, .3, ...
HOLD=$((SETTLE + WINDOW + 120))
start_idle_clients "$TARGET" "$COUNT" "$CLIENTS" "$HOLD" "$WORK"
wait_idle_clients "$WORK" "$CLIENTS" 200
CONNECT_SECONDS=$IDLE_CONNECT_SECONDS CONNECTED=$IDLE_CONNECTED
log "$CONNECTED/$COUNT connected in ~${CONNECT_SECONDS}s; settling ${SETTLE}s"
sleep "$SETTLE"

# The measured window.
REAPED0=$(metric_sum "$ADMIN_PORT" '^reaper_connections_reaped_total')
CLOSED0=$(metric_sum "$ADMIN_PORT" '^reaper_connections_closed_total')
PC0=$(metric_sum "$ADMIN_PORT" '^reaper_pings_sent_total\{.*leg="client"')
PB0=$(metric_sum "$ADMIN_PORT" '^reaper_pings_sent_total\{.*leg="backend"')
read -r mb0 mt0 < <(machine_jiffies)
L0=$(loadavg)
c0=$(cpu_ticks "$PROXY_PID"); w0=$(date +%s.%N)
RSS_MAX=0
for _ in $(seq "$WINDOW"); do
  sleep 1
  r=$(status_kb "$PROXY_PID" VmRSS); [ "$r" -gt "$RSS_MAX" ] && RSS_MAX=$r
done
c1=$(cpu_ticks "$PROXY_PID"); w1=$(date +%s.%N)
read -r mb1 mt1 < <(machine_jiffies)
L1=$(loadavg)
PC1=$(metric_sum "$ADMIN_PORT" '^reaper_pings_sent_total\{.*leg="client"')
PB1=$(metric_sum "$ADMIN_PORT" '^reaper_pings_sent_total\{.*leg="backend"')
REAPED1=$(metric_sum "$ADMIN_PORT" '^reaper_connections_reaped_total')
CLOSED1=$(metric_sum "$ADMIN_PORT" '^reaper_connections_closed_total')
ACTIVE=$(metric_sum "$ADMIN_PORT" '^reaper_connections_active')
KESTREL_UPGRADED=$(metric_sum "$ADMIN_PORT" '^kestrel_upgraded_connections')
RSS=$(status_kb "$PROXY_PID" VmRSS)
ANON=$(status_kb "$PROXY_PID" RssAnon)
FDS=$(fd_count "$PROXY_PID")
THREADS=$(thread_count "$PROXY_PID")
TCP=$(tcp_mem_pages)
BACKEND_OPEN=$(curl -sf "http://127.0.0.1:$BACKEND_PORT/stats")
LOAD_STATS=$(runtime_stats "$PROXY_PID")
REAPED_END=$(metric_sum "$ADMIN_PORT" '^reaper_connections_reaped_total')
if [ "$HEAPDUMP" = 1 ]; then
  log "heap dump of the loaded proxy (pid $PROXY_PID) -> $OUT/heap-$POLICY-$LEGS-$PING-$COUNT.txt"
  dotnet "$LOADTEST_DLL" heap-dump --pid "$PROXY_PID" --top "${HEAP_TOP:-80}" --dump "$WORK/proxy.dmp" >"$OUT/heap-$POLICY-$LEGS-$PING-$COUNT.txt" 2>&1 || log "heap dump failed"
  rm -f "$WORK/proxy.dmp"
fi

# Close: the clients end their hold early on SIGTERM and close every connection with a handshake.
stop_idle_clients

python3 - "$WORK" "$OUT/idle-$POLICY-$LEGS-$PING-$COUNT-$(date +%Y%m%dT%H%M%S).json" <<PY
import json, glob, sys, os
work, out = sys.argv[1], sys.argv[2]
clients = []
for f in sorted(glob.glob(os.path.join(work, "client-*.json"))):
    try: clients.append(json.loads(open(f).read().strip().splitlines()[-1]))
    except Exception as e: clients.append({"error": f"{f}: {e}"})
base = json.loads('''$BASE_STATS''' or "{}"); load = json.loads('''$LOAD_STATS''' or "{}")
def heap(s): return ((s.get("heapAfterFullGc") or {}).get("totalHeapSize") or 0)
window = $w1 - $w0
hz = $CLK_TCK
n = $CONNECTED
r = {
  "proxy": "$PROXY_LABEL", "policy": "$POLICY", "mode": "$MODE", "legs": "$LEGS", "pingInterval": "$PING", "pongTimeout": "$PONG",
  "requested": $COUNT, "connected": n, "connectSeconds": $CONNECT_SECONDS, "windowSeconds": round(window, 1),
  "proxyCpuPctOfCore": round(($c1 - $c0) / hz / window * 100, 2), "baselineCpuPctOfCore": $BASE_CPU,
  "rssKB": $RSS, "rssMaxKB": $RSS_MAX, "baselineRssKB": $BASE_RSS, "rssAnonKB": $ANON, "baselineRssAnonKB": $BASE_ANON,
  "rssPerConnKB": round(($RSS - $BASE_RSS) / n, 2) if n else None,
  "heapAfterGcKB": round(heap(load) / 1024), "baselineHeapAfterGcKB": round(heap(base) / 1024),
  "heapPerConnKB": round((heap(load) - heap(base)) / 1024 / n, 2) if n else None,
  "gcCommittedMB": (load.get("counters") or {}).get("gc-committed"),
  "pingsPerSecClientLeg": round(($PC1 - $PC0) / window, 1), "pingsPerSecBackendLeg": round(($PB1 - $PB0) / window, 1),
  "reapedInWindow": $REAPED1 - $REAPED0, "closedInWindow": $CLOSED1 - $CLOSED0, "reapedTotalAtEnd": $REAPED_END,
  "reaperConnectionsActive": $ACTIVE, "kestrelUpgradedConnections": $KESTREL_UPGRADED,
  "proxyFds": $FDS, "baselineFds": $BASE_FDS, "proxyThreads": $THREADS,
  "kernelTcpMemKB": ($TCP - $BASE_TCP) * 4, "backend": json.loads('''$BACKEND_OPEN''' or "{}"),
  "machineBusyPct": round(($mb1 - $mb0) / max(1, $mt1 - $mt0) * 100, 1), "loadavgBefore": "$L0", "loadavgAfter": "$L1",
  "clientsClosedEarly": sum(c.get("closedEarly", 0) for c in clients),
  "clientsFailed": sum(c.get("failed", 0) for c in clients),
  "clients": clients,
}
json.dump(r, open(out, "w"), indent=1)
print(json.dumps({k: v for k, v in r.items() if k != "clients"}))
rows = [
  ("proxy build", r["proxy"]),
  ("policy", f'{r["policy"]} (Mode {r["mode"]}, legs {r["legs"]}, ping {r["pingInterval"]}, pong {r["pongTimeout"]})'),
  ("connections", f'{r["connected"]}/{r["requested"]} (connect ~{r["connectSeconds"]} s), window {r["windowSeconds"]} s'),
  ("proxy CPU", f'{r["proxyCpuPctOfCore"]} % of one core (idle proxy: {r["baselineCpuPctOfCore"]} %)'),
  ("proxy RSS", f'{r["rssKB"]/1024:.1f} MiB (idle proxy {r["baselineRssKB"]/1024:.1f} MiB) -> {r["rssPerConnKB"]} KB/conn'),
  ("managed heap after full GC", f'{r["heapAfterGcKB"]/1024:.1f} MiB (idle proxy {r["baselineHeapAfterGcKB"]/1024:.1f} MiB) -> {r["heapPerConnKB"]} KB/conn'),
  ("pings/s sent", f'client leg {r["pingsPerSecClientLeg"]}, backend leg {r["pingsPerSecBackendLeg"]}'),
  ("reaped / closed in window", f'{r["reapedInWindow"]} / {r["closedInWindow"]} (reaped total at end {r["reapedTotalAtEnd"]}); clients saw {r["clientsClosedEarly"]} early closes, {r["clientsFailed"]} failed connects'),
  ("descriptors / threads", f'{r["proxyFds"]} / {r["proxyThreads"]}'),
  ("conditions", f'machine busy {r["machineBusyPct"]} % of 2 cores during the window; loadavg {r["loadavgBefore"]} -> {r["loadavgAfter"]}'),
]
print()
for k, v in rows: print(f"  {k:<28} {v}", file=sys.stdout)
print(f"  result file                  {out}")
PY
