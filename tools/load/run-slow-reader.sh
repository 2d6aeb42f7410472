#!/usr/bin/env bash
# The slowest rate at which a peer may consume a transfer and still be judged alive (README "The reaping
# deadline": a leg toward which bytes wait is alive while its kernel's acknowledged-bytes counter
# moves). For one policy (PingInterval/PongTimeout, Mode Enforce) and one receive buffer size on the
# slow peer, runs slow readers through the proxy in both directions:
#   download: a raw client reading the backend's /bulk at RATE (SO_RCVBUF on the client);
#   upload:   a fast client sending one big frame to `slow-backend` reading at RATE (SO_RCVBUF on its listener).
# Round 1 runs every rate of --rates at once (one connection each, in parallel: at these rates nothing
# is shared but the proxy's heartbeat tick); round 2 runs --refine rates spaced geometrically between the
# fastest reaped and the slowest kept alive of round 1. Each connection lasts --duration (default
# 3 x (ping + pong)); it survives if nothing ended it before then. Prints, per direction, the slowest
# rate kept alive and the fastest reaped, and writes every result as JSON lines.
#
#   tools/load/run-slow-reader.sh [--ping 2s] [--pong 2s] [--rcvbuf 4096|default] [--duration SECONDS]
#                                 [--rates 32,64,...] [--refine 6] [--directions download,upload]
#                                 [--frame BYTES] [--mtu 1500] [--backend-h2] [--no-build] [--out DIR]
#
# --frame: the backend sends its bulk message as frames of BYTES (default: one frame), so the proxy can
# ping the slow client between frames (download only; the upload sender always sends one frame).
# --mtu: run everything inside a private network namespace (reaperrate) whose loopback has that MTU (so
# the MSS is that of a real network, not loopback's ~64 KiB); the namespace is removed at the end.
# The host's interfaces are never touched. Needs root.
# --backend-h2: upload only; the slow peer is the LoadTest `backend --h2` (Kestrel, an h2c-only endpoint,
# /slow reading at the rate in the query) and the proxy's cluster for /up forces HTTP/2
# (Version 2, RequestVersionExact), so YARP sends the WebSocket as extended CONNECT (RFC 8441) and the
# proxy judges that leg by completed writes ("progress": "writes"), i.e. by HTTP/2 flow-control credit.
# Kestrel's stream window stays at its default (768 KiB); its connection window is raised to
# H2_CONN_WINDOW (env, default 64 MiB) so the concurrent connections of a round, all streams of one
# HTTP/2 connection, do not starve one another through the shared 1 MiB default. --rcvbuf does not apply. During round 1 the proxy's /connections is saved (connections-r1.json) and
# each backend leg's progress is printed.
set -euo pipefail
source "$(dirname "$0")/common.sh"

PING=2s PONG=2s RCVBUF=4096 DURATION="" RATES=32,64,128,256,512,1024,2048,4096,8192,16384,32768,65536 REFINE=6
DIRECTIONS=download,upload FRAME="" MTU="" BUILD=1 OUT="" BACKEND_H2=0
H2_CONN_WINDOW=${H2_CONN_WINDOW:-67108864}
BACKEND_PORT=15390 SLOW_PORT=15391 PROXY_PORT=18380 ADMIN_PORT=19764
ARGS=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --ping) PING=$2; shift 2 ;;
    --pong) PONG=$2; shift 2 ;;
    --rcvbuf) RCVBUF=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rates) RATES=$2; shift 2 ;;
    --refine) REFINE=$2; shift 2 ;;
    --directions) DIRECTIONS=$2; shift 2 ;;
    --frame) FRAME=$2; shift 2 ;;
    --mtu) MTU=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --backend-h2) BACKEND_H2=1; DIRECTIONS=upload; RCVBUF=default; shift ;;
    --out) OUT=$2; shift 2 ;;
    *) die "unknown option $1 (see the header of $0)" ;;
  esac
done

seconds() { # 2s, 500ms, 1m -> seconds (float)
  case "$1" in
    *ms) awk -v v="${1%ms}" 'BEGIN {print v / 1000}' ;;
    *s) echo "${1%s}" ;;
    *m) awk -v v="${1%m}" 'BEGIN {print v * 60}' ;;
    *) die "not a duration: $1" ;;
  esac
}
WINDOW=$(awk -v a="$(seconds "$PING")" -v b="$(seconds "$PONG")" 'BEGIN {print a + b}')
[ -n "$DURATION" ] || DURATION=$(awk -v w="$WINDOW" 'BEGIN {printf "%d", w * 3 + 1}')
awk -v d="$DURATION" -v w="$WINDOW" 'BEGIN {exit !(d >= 3 * w)}' || die "--duration $DURATION is under 3 x (ping + pong) = $(awk -v w="$WINDOW" 'BEGIN {print 3 * w}') s"
[ "$REFINE" -ge 0 ] && [ "$REFINE" -le 12 ] || die "--refine must be 0..12"
IFS=, read -r -a RATE_LIST <<<"$RATES"
IFS=, read -r -a DIR_LIST <<<"$DIRECTIONS"
[ "${#RATE_LIST[@]}" -le 16 ] || die "at most 16 rates per round"
rounds=$([ "$REFINE" -gt 0 ] && echo 2 || echo 1)
budget=$(( rounds * (DURATION + 15) + 60 ))
[ "$budget" -le 540 ] || die "that is $rounds rounds of ${DURATION}s, about ${budget}s: keep one invocation under ~9 minutes"

# --mtu: build outside, then run this same script inside a private namespace with a loopback of that MTU.
if [ -n "$MTU" ] && [ -z "${REAPER_NETNS:-}" ]; then
  [ "$(id -u)" = 0 ] || die "--mtu needs root (ip netns)"
  [[ "$MTU" =~ ^[0-9]+$ ]] && [ "$MTU" -ge 576 ] && [ "$MTU" -le 65536 ] || die "--mtu must be 576..65536"
  NS=reaperrate
  ip netns list | grep -qw "$NS" && die "network namespace $NS exists already (ip netns delete $NS if it is a leftover)"
  WORK=$(mktemp -d /tmp/reaper-slow-netns.XXXXXX)
  [ "$BUILD" = 1 ] && build_release
  ip netns add "$NS"
  trap 'ip netns delete "$NS" 2>/dev/null || true' EXIT
  trap 'exit 130' INT TERM
  ip netns exec "$NS" ip link set lo mtu "$MTU" up
  log "namespace $NS: $(ip netns exec "$NS" ip -o link show lo | sed 's/ link\/.*//')"
  set +e
  ip netns exec "$NS" env REAPER_NETNS="$NS" timeout -k 10 580 bash "$0" "${ARGS[@]}" --no-build
  status=$?
  set -e
  exit "$status"
fi

begin_run slow
NETINFO="mtu $(cat /sys/class/net/lo/mtu) (${REAPER_NETNS:-host} loopback), tcp_rmem $(tr '\t' ' ' </proc/sys/net/ipv4/tcp_rmem), tcp_wmem $(tr '\t' ' ' </proc/sys/net/ipv4/tcp_wmem)"
log "proxy build $PROXY_LABEL; policy $PING/$PONG (window ${WINDOW}s), rcvbuf $RCVBUF, duration ${DURATION}s; $NETINFO; work dir $WORK"

if [ "$BACKEND_H2" = 1 ]; then
  port_free "$BACKEND_PORT" || die "port $BACKEND_PORT is in use"
  port_free "$SLOW_PORT" || die "port $SLOW_PORT is in use"
  : >"$WORK/slow-backend.jsonl"
  dotnet "$LOADTEST_DLL" backend --urls "http://127.0.0.1:$BACKEND_PORT" --h2 "$SLOW_PORT" --h2-connection-window "$H2_CONN_WINDOW" --results "$WORK/slow-backend.jsonl" >"$WORK/backend-$BACKEND_PORT.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$BACKEND_PORT/stats" 60
  log "$(grep -m1 'backend listening' "$WORK/backend-$BACKEND_PORT.log")"
  SLOW_HTTP='"Version": "2", "VersionPolicy": "RequestVersionExact", '
  SLOW_TRANSFORMS=', "Transforms": [ { "PathSet": "/slow" } ]'
else
start_backend "$BACKEND_PORT"
SLOW_HTTP="" SLOW_TRANSFORMS=""
SLOW_ARGS=(--listen "127.0.0.1:$SLOW_PORT")
[ "$RCVBUF" = default ] || SLOW_ARGS+=(--rcvbuf "$RCVBUF")
port_free "$SLOW_PORT" || die "port $SLOW_PORT is in use"
dotnet "$LOADTEST_DLL" slow-backend "${SLOW_ARGS[@]}" >"$WORK/slow-backend.jsonl" 2>"$WORK/slow-backend.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q listening "$WORK/slow-backend.log" 2>/dev/null && break; sleep 0.2; done
grep -q listening "$WORK/slow-backend.log" || die "slow-backend did not start: $(cat "$WORK/slow-backend.log")"
fi

cat >"$WORK/proxy.json" <<JSON
{
  "Logging": { "LogLevel": { "Default": "Warning", "ReaperProxy": "Information" } },
  "Reaper": {
    "Heartbeat": { "Mode": "Enforce", "Legs": "Both", "PingInterval": "$PING", "PongTimeout": "$PONG", "CloseTimeout": "5s", "IdleTimeout": null }
  },
  "ReverseProxy": {
    "Routes": {
      "bulk": { "ClusterId": "bulk", "Match": { "Path": "/bulk" } },
      "up": { "ClusterId": "slow", "Match": { "Path": "/up" }$SLOW_TRANSFORMS }
    },
    "Clusters": {
      "bulk": { "HttpRequest": { "ActivityTimeout": "01:00:00" }, "Destinations": { "d1": { "Address": "http://127.0.0.1:$BACKEND_PORT/" } } },
      "slow": { "HttpRequest": { ${SLOW_HTTP}"ActivityTimeout": "01:00:00" }, "Destinations": { "d1": { "Address": "http://127.0.0.1:$SLOW_PORT/" } } }
    }
  }
}
JSON
start_proxy "$WORK/proxy.json" "$PROXY_PORT" "$ADMIN_PORT"
if [ "$BACKEND_H2" = 1 ]; then
  # The WebSocket that opens the shared HTTP/2 connection is the one whose flow the connection's
  # write loop runs on, so the proxy attributes that socket to it ("progress": "kernel"): an idle
  # anchor opens it first and holds it, and every measured connection is a later stream ("writes").
  dotnet "$LOADTEST_DLL" idle --target "ws://127.0.0.1:$PROXY_PORT/up?duration=900&id=anchor" --count 1 --duration 540s \
    --ready-file "$WORK/anchor.ready" >"$WORK/anchor.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do [ -f "$WORK/anchor.ready" ] && break; sleep 0.2; done
  [ -f "$WORK/anchor.ready" ] || die "anchor WebSocket did not open: $(tail -3 "$WORK/anchor.log")"
fi

RESULTS="$OUT/slow-$(date +%Y%m%dT%H%M%S)-${PING}-${PONG}-$([ "$BACKEND_H2" = 1 ] && echo backend-h2 || echo "rcvbuf${RCVBUF}")-mtu$(cat /sys/class/net/lo/mtu).jsonl"
TRIAL=0

# run_round ROUND DIRECTION:RATE... : one slow-reader per entry, all at once; waits for all (bounded).
run_round() {
  local round=$1; shift
  local pids=() entry dir rate id url args
  local reaped0; reaped0=$(metric_sum "$ADMIN_PORT" '^reaper_connections_reaped_total')
  for entry in "$@"; do
    dir=${entry%%:*} rate=${entry#*:}
    TRIAL=$((TRIAL + 1)); id="r${round}-${dir}-${rate}-${TRIAL}"
    if [ "$dir" = download ]; then
      url="ws://127.0.0.1:$PROXY_PORT/bulk"; [ -n "$FRAME" ] && url="$url?frame=$FRAME"
      args=(--direction download --url "$url")
      [ "$RCVBUF" = default ] || args+=(--rcvbuf "$RCVBUF")
    else
      args=(--direction upload --url "ws://127.0.0.1:$PROXY_PORT/up")
    fi
    timeout -k 5 $((DURATION + 40)) dotnet "$LOADTEST_DLL" slow-reader "${args[@]}" --rate "$rate" --duration "${DURATION}s" --id "$id" \
      >"$WORK/$id.json" 2>"$WORK/$id.log" &
    pids+=($!)
  done
  log "round $round: ${#pids[@]} connections for ${DURATION}s: $*"
  if [ "$BACKEND_H2" = 1 ] && [ "$round" = 1 ]; then
    sleep 2
    curl -sf "http://127.0.0.1:$ADMIN_PORT/connections" >"$WORK/connections-r1.json" || true
    python3 - "$WORK/connections-r1.json" <<'PY' >&2 || true
import json, sys
c = json.load(open(sys.argv[1]))["connections"]
seen = {}
for x in c:
    k = (x.get("route"), x.get("destination"), (x.get("client") or {}).get("progress"), (x.get("backend") or {}).get("progress"))
    seen[k] = seen.get(k, 0) + 1
for (route, dest, cp, bp), n in sorted(seen.items(), key=str):
    print(f"  /connections: {n} on route {route} -> {dest}: client progress {cp}, backend progress {bp}")
PY
  fi
  for pid in "${pids[@]}"; do wait "$pid" || true; done
  # The slow backend writes its line for a connection when it ends (at the latest its own duration,
  # 2 s longer than the client's): wait for every upload's line, bounded.
  for _ in $(seq 60); do
    local missing=0
    for entry in "$@"; do
      case $entry in upload:*) grep -q "\"id\":\"r${round}-upload-${entry#upload:}-" "$WORK/slow-backend.jsonl" || missing=1 ;; esac
    done
    [ "$missing" = 0 ] && break
    sleep 0.25
  done
  local reaped1; reaped1=$(metric_sum "$ADMIN_PORT" '^reaper_connections_reaped_total')
  python3 - "$WORK" "$round" "$RESULTS" "$((reaped1 - reaped0))" <<'PY'
import glob, json, os, sys
work, rnd, results, reaped = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
backend = {}
for line in open(os.path.join(work, "slow-backend.jsonl")):
    if line.strip():
        d = json.loads(line); backend[d["id"]] = d
n_dead = 0
with open(results, "a") as out:
    for path in sorted(glob.glob(os.path.join(work, f"r{rnd}-*.json"))):
        id = os.path.basename(path)[:-5]
        text = open(path).read().strip()
        client = json.loads(text) if text else None
        peer = client if client and client["direction"] == "download" else backend.get(id)
        if client is None:
            err = open(os.path.join(work, id + ".log")).read().strip().splitlines()
            row = {"id": id, "round": int(rnd), "error": err[-1] if err else "no output"}
        else:
            survived = client["survived"] and (peer is None or peer["survived"])
            n_dead += not survived
            row = {"id": id, "round": int(rnd), "direction": client["direction"], "rate": client["rate"], "survived": survived,
                   "client": client, "slowPeer": peer}
        out.write(json.dumps(row) + "\n")
print(f"round {rnd}: {n_dead} connections ended early; proxy reaped_total +{reaped}", file=sys.stderr)
PY
}

# bounds DIRECTION: "fastest_reaped slowest_alive" over every result so far (0 when none).
bounds() {
  python3 - "$RESULTS" "$1" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rows = [r for r in rows if r.get("direction") == sys.argv[2]]
dead = [r["rate"] for r in rows if not r["survived"]]
alive = [r["rate"] for r in rows if r["survived"]]
print(max(dead, default=0), min(alive, default=0))
PY
}

entries=()
for dir in "${DIR_LIST[@]}"; do for rate in "${RATE_LIST[@]}"; do entries+=("$dir:$rate"); done; done
run_round 1 "${entries[@]}"

if [ "$REFINE" -gt 0 ]; then
  entries=()
  for dir in "${DIR_LIST[@]}"; do
    read -r lo hi < <(bounds "$dir")
    if [ "$lo" -gt 0 ] && [ "$hi" -gt "$lo" ]; then
      for rate in $(awk -v lo="$lo" -v hi="$hi" -v n="$REFINE" 'BEGIN {for (i = 1; i <= n; i++) printf "%d ", lo * exp(log(hi / lo) * i / (n + 1))}' | tr ' ' '\n' | sort -un); do
        [ "$rate" -gt "$lo" ] && [ "$rate" -lt "$hi" ] && entries+=("$dir:$rate")
      done
    else
      log "$dir: no bracket to refine (fastest reaped $lo, slowest alive $hi): widen --rates"
    fi
  done
  [ "${#entries[@]}" -gt 0 ] && run_round 2 "${entries[@]}"
fi

grep -ho 'route [a-z]*, .*leg dead ([a-z_]*) after [0-9.]*s' "$WORK/proxy-$PROXY_PORT.log" | sed 's/, cluster.*: / /' | sed 's/^/  proxy reaped: /' >&2 || true

python3 - "$RESULTS" "$PING" "$PONG" "$RCVBUF" "$DURATION" "$NETINFO" <<'PY'
import json, sys
results, ping, pong, rcvbuf, duration, netinfo = sys.argv[1:]
rows = [json.loads(l) for l in open(results) if l.strip()]
errors = [r for r in rows if "error" in r]
rows = [r for r in rows if "error" not in r]
print(f"\npolicy {ping}/{pong}, rcvbuf {rcvbuf}, duration {duration}s; {netinfo}")
print(f'{"direction":>9} {"rate B/s":>9} {"step":>5} {"kept":>5} {"ended":>24} {"at s":>6} {"peer read":>10} {"moves":>5} {"median move B":>13} {"max gap s":>9} {"rcv_mss":>7} {"rcvbuf eff":>10}')
for r in sorted(rows, key=lambda r: (r["direction"], r["rate"], r["round"])):
    c, p = r["client"], r["slowPeer"] or {}
    t = p.get("tcp") or {}
    ended = "-" if r["survived"] else (c["end"] if not c["survived"] else p.get("end", "?")) + (f' {c["closeCode"]} {c["closeReason"]}' if c.get("closeCode") else "")
    at = "" if r["survived"] else (c["endedAtSeconds"] if not c["survived"] else p.get("endedAtSeconds", ""))
    print(f'{r["direction"]:>9} {r["rate"]:>9} {p.get("step", c["step"]):>5} {"yes" if r["survived"] else "NO":>5} {ended:>24} {at:>6} {p.get("bytesRead", 0):>10} '
          f'{t.get("moves", 0):>5} {t.get("medianMoveBytes", 0):>13} {max(t.get("maxGapSeconds", 0), t.get("openGapAtEndSeconds", 0) if not r["survived"] else 0):>9} {t.get("rcvMss", 0):>7} {p.get("rcvbufEffective", 0):>10}')
for e in errors:
    print(f'  {e["id"]}: failed: {e["error"]}')
print()
for d in sorted({r["direction"] for r in rows}):
    dead = [r["rate"] for r in rows if r["direction"] == d and not r["survived"]]
    alive = [r["rate"] for r in rows if r["direction"] == d and r["survived"]]
    lo, hi = max(dead, default=None), min(alive, default=None)
    note = " (NOT monotonic: a faster rate was reaped than the slowest kept alive)" if lo and hi and lo > hi else ""
    print(f"SUMMARY {d}: policy {ping}/{pong} rcvbuf {rcvbuf}: slowest kept alive {hi} B/s, fastest reaped {lo} B/s{note}")
print(f"results: {results}")
PY
