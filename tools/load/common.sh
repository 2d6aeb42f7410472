# Shared by run-idle.sh, run-echo.sh, run-slow-reader.sh and compare.sh: build, start/stop the
# backend and the proxy, open idle clients, sample /proc and /metrics. Everything listens on and talks to loopback only. Source it; do not run it.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# PROXY_DLL may point at another build of the proxy (e.g. a baseline commit built elsewhere, with
# --no-build) for A/B runs; PROXY_LABEL then names it in the results.
PROXY_DLL=${PROXY_DLL:-"$ROOT/src/ReaperProxy/bin/Release/net10.0/ReaperProxy.dll"}
PROXY_LABEL=${PROXY_LABEL:-"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src/ReaperProxy 2>/dev/null || echo +dirty)"}
LOADTEST_DLL="$ROOT/src/ReaperProxy.LoadTest/bin/Release/net10.0/ReaperProxy.LoadTest.dll"
CLK_TCK=$(getconf CLK_TCK)
PIDS=()

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

# One proxied WebSocket costs the proxy two descriptors: use all the hard limit allows.
ulimit -n "$(ulimit -Hn)"

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

build_release() {
  log "building Release (proxy + load harness)"
  dotnet build -c Release "$ROOT/src/ReaperProxy/ReaperProxy.csproj" -nologo -v q >"$WORK/build-proxy.log" 2>&1 || { cat "$WORK/build-proxy.log"; die "proxy build failed"; }
  dotnet build -c Release "$ROOT/src/ReaperProxy.LoadTest/ReaperProxy.LoadTest.csproj" -nologo -v q >"$WORK/build-loadtest.log" 2>&1 || { cat "$WORK/build-loadtest.log"; die "harness build failed"; }
}

# Stops every process this script started (by pid), then waits for them; bounded.
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

# A hard stop for the whole script: TERM to the script after SECONDS (the watchdog is in PIDS, so
# cleanup ends it, and it ends its own sleep).
start_watchdog() { # SECONDS
  local me=$$
  bash -c 'sleep "$1" & s=$!; trap "kill $s 2>/dev/null; exit 0" TERM; wait $s; echo "time limit of $1 s reached" >&2; kill -TERM "$2"' watchdog "$1" "$me" &
  PIDS+=($!)
}

begin_run() { # NAME ; sets WORK (and OUT if unset), installs cleanup, a watchdog, builds
  WORK=$(mktemp -d "/tmp/reaper-$1.XXXXXX")
  OUT=${OUT:-$WORK}
  mkdir -p "$OUT"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  # A hard stop for the whole run, whatever happens: ten minutes unless the script sets
  # WATCHDOG_SECONDS from its own estimate (compare.sh runs for up to an hour).
  start_watchdog "${WATCHDOG_SECONDS:-600}"
  [ "$BUILD" = 1 ] && build_release
  [ -f "$PROXY_DLL" ] && [ -f "$LOADTEST_DLL" ] || die "build first (or drop --no-build)"
}

# Drops a pid from PIDS once its process is stopped and reaped, so the final cleanup never signals a
# pid that the system may have given to someone else's process since.
forget_pid() { # PID
  local kept=() pid
  for pid in "${PIDS[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
  PIDS=("${kept[@]}")
}

# stop_pid PID: SIGTERM, up to 10 s to exit, then SIGKILL; reaps it and forgets it.
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget_pid "$1"
}

# start_idle_clients TARGET COUNT CLIENTS HOLD_SECONDS DIR: COUNT idle, live WebSockets (a receive
# pending on each, so they answer pings) from CLIENTS processes, client i bound to 127.0.0.(i+1): each
# source address has its own ephemeral ports. Client i writes DIR/ready-i once all of its connections
# are open and DIR/client-i.json (its result) when it ends. Sets IDLE_CLIENT_PIDS.
start_idle_clients() {
  local target=$1 count=$2 clients=$3 hold=$4 dir=$5 i n per extra
  per=$((count / clients)); extra=$((count % clients))
  IDLE_CLIENT_PIDS=()
  for i in $(seq 1 "$clients"); do
    n=$per; [ "$i" -le "$extra" ] && n=$((n + 1))
    dotnet "$LOADTEST_DLL" idle --target "$target" --count "$n" --source "127.0.0.$((i + 1))" --duration "${hold}s" \
      --connect-timeout 180s --ready-file "$dir/ready-$i" >"$dir/client-$i.json" 2>"$dir/client-$i.log" &
    PIDS+=($!); IDLE_CLIENT_PIDS+=($!)
  done
}

# wait_idle_clients DIR CLIENTS SECONDS: until every client wrote its ready file (dies after SECONDS).
# Sets IDLE_CONNECTED (connections open) and IDLE_CONNECT_SECONDS.
wait_idle_clients() {
  local start=$SECONDS ready f
  while :; do
    ready=0; for f in "$1"/ready-*; do [ -e "$f" ] && ready=$((ready + 1)); done
    [ "$ready" -ge "$2" ] && break
    [ $((SECONDS - start)) -lt "$3" ] || die "idle clients not connected within $3 s"
    sleep 0.5
  done
  IDLE_CONNECT_SECONDS=$((SECONDS - start))
  IDLE_CONNECTED=$(cat "$1"/ready-* | awk '{s += $1} END {print s + 0}')
}

# stop_idle_clients: SIGTERM ends their hold early; each then closes every connection with a closing
# handshake and prints its result. Up to 60 s per client.
stop_idle_clients() {
  local pid
  for pid in "${IDLE_CLIENT_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${IDLE_CLIENT_PIDS[@]}"; do
    for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
  done
  IDLE_CLIENT_PIDS=()
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_http() { # URL SECONDS
  local deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.2
  done
  die "$1 did not answer within $2 s"
}

start_backend() { # PORT
  port_free "$1" || die "port $1 is in use"
  dotnet "$LOADTEST_DLL" backend --urls "http://127.0.0.1:$1" >"$WORK/backend-$1.log" 2>&1 &
  PIDS+=($!)
  BACKEND_PID=$!
  wait_http "http://127.0.0.1:$1/stats" 60
}

# write_proxy_config FILE MODE PING PONG BACKEND_PORT [LEGS]
write_proxy_config() {
  cat >"$1" <<JSON
{
  "Logging": { "LogLevel": { "Default": "Warning", "ReaperProxy": "Information" } },
  "Reaper": {
    "Heartbeat": { "Mode": "$2", "Legs": "${6:-Both}", "PingInterval": "$3", "PongTimeout": "$4", "CloseTimeout": "5s", "IdleTimeout": null }
  },
  "ReverseProxy": {
    "Routes": { "ws": { "ClusterId": "backend", "Match": { "Path": "{**catch-all}" } } },
    "Clusters": {
      "backend": {
        "HttpRequest": { "ActivityTimeout": "01:00:00" },
        "Destinations": { "d1": { "Address": "http://127.0.0.1:$5/" } }
      }
    }
  }
}
JSON
}

start_proxy() { # CONFIG PORT ADMIN_PORT ; sets PROXY_PID
  port_free "$2" || die "port $2 is in use"
  port_free "$3" || die "port $3 is in use"
  dotnet "$PROXY_DLL" --config "$1" --urls "http://127.0.0.1:$2" --admin-urls "http://127.0.0.1:$3" >"$WORK/proxy-$2.log" 2>&1 &
  PIDS+=($!)
  PROXY_PID=$!
  wait_http "http://127.0.0.1:$3/readyz" 60
}

# CPU time (utime+stime) of a process in clock ticks.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# kB fields of /proc/PID/status.
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
fd_count() { ls "/proc/$1/fd" | wc -l; }
thread_count() { awk '$1 == "Threads:" {print $2}' "/proc/$1/status"; }
# Machine-wide busy and total jiffies (all cores), for the conditions line.
machine_jiffies() { awk '/^cpu / {idle=$5+$6; t=0; for (i=2; i<=NF; i++) t+=$i; print t-idle, t}' /proc/stat; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# Kernel TCP memory (pages, machine-wide) from /proc/net/sockstat.
tcp_mem_pages() { awk '$1 == "TCP:" {for (i=2; i<NF; i++) if ($i == "mem") print $(i+1)}' /proc/net/sockstat; }

# metric_sum ADMIN_PORT REGEX: the sum of every series whose line matches REGEX (0 when absent).
metric_sum() {
  curl -sf "http://127.0.0.1:$1/metrics" | awk -v re="$2" '$0 ~ re && $0 !~ /^#/ {s += $NF} END {printf "%.0f\n", s + 0}'
}

# runtime_stats PID: JSON from the harness (System.Runtime counters + heap after an induced full GC).
runtime_stats() { dotnet "$LOADTEST_DLL" runtime-stats --pid "$1" --seconds 3 --induce-gc 2>>"$WORK/runtime-stats.log"; }

