#!/usr/bin/env bash
# Manual verification over a REAL slow network link with third-party WebSocket peers (node's `ws` as
# both the client and the backend): slow readers and writers that keep consuming are never reaped,
# a frozen reader is. Two network namespaces (rp-client, rp-proxy) joined by a veth pair
# (169.254.77.2/30 <-> 169.254.77.1/30, link-local, MTU 1500, GSO off); the proxy and the backend run
# in rp-proxy (backend on that namespace's 127.0.0.1), the client in rp-client. A tbf qdisc
# rate-limits one direction of the veth: the proxy->client downlink, or the client->proxy uplink.
#   1. default policy (15s/10s): one 1 MiB binary message over a 160 kbit/s downlink (~52 s) arrives
#      whole (length + sha256), no close from the proxy, nothing reaped in /metrics
#   2. policy 2s/2s: the same message over a 64 kbit/s downlink; the client reads for 20 s, then
#      closes normally; nothing reaped while it read. (What follows is reported, not judged: the
#      backend's answering Close waits behind the rest of the frame toward the slow client, so the
#      proxy ends the connection at CloseTimeout, counted as close_timeout.)
#   3. policy 2s/2s, 160 kbit/s: the client process is frozen with SIGSTOP after ~100 KB; the backend
#      must get Close 1001 "client unresponsive" within PingInterval + PongTimeout + 25% (4.5 s) after
#      the frozen client's kernel stopped acknowledging (its receive buffer filled), plus slack; after
#      SIGCONT the client sees its connection closed
#   4. policy 2s/2s: the client uploads one 1 MiB message over a 64 kbit/s uplink (~130 s); the
#      backend receives it whole, nothing reaped
# Needs root, iproute2 (ip netns, tc with sch_tbf), curl, node/npm (installs `ws` into a temp dir
# from the npm registry) and the .NET SDK. Every wait is bounded; a trap tears everything down
# (SIGCONT, then kill, then the namespaces are deleted). Runtime about 5 minutes. KEEP_LOGS=1 keeps
# the logs (proxy console, backend, clients) in the temp dir.
# Usage: tools/verify/slow-link.sh [CASE...]   (default: 1 2 3 4)
set -euo pipefail
cd "$(dirname "$0")/../.."
cases=("${@:-1 2 3 4}"); cases=(${cases[*]})
[ "$(id -u)" -eq 0 ] || { echo "needs root (ip netns, tc)" >&2; exit 1; }
NSC=rp-client NSP=rp-proxy
for ns in $NSC $NSP; do
  if ip netns list | grep -qw "$ns"; then echo "network namespace $ns already exists; not touching it" >&2; exit 1; fi
done
PROXY_IP=169.254.77.1 CLIENT_IP=169.254.77.2 PUBLIC=8080 ADMIN=9464 BACKEND=5080

work=$(mktemp -d)
pids=() made_ns=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  for ns in "${made_ns[@]}"; do ip netns del "$ns" 2>/dev/null; done
  if [ -n "${KEEP_LOGS:-}" ]; then echo "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
now() { date +%s%3N; }
inc() { ip netns exec $NSC "$@"; }
inp() { ip netns exec $NSP "$@"; }
# Background processes are started with `ip netns exec NS env ... CMD &` directly (no function
# wrapper), so $! is the process itself (ip and env both exec): SIGSTOP and kill reach it.

echo "== setup: npm ws, build, namespaces"
(cd "$work" && npm init -y >/dev/null 2>&1 && timeout 120 npm install --silent ws@8 >/dev/null 2>&1)
echo "   ws $(node -p "require('$work/node_modules/ws/package.json').version")"
dotnet build -c Release -v quiet -nologo src/ReaperProxy >/dev/null

ip netns add $NSC; made_ns+=($NSC)
ip netns add $NSP; made_ns+=($NSP)
# The veth is created inside the namespaces: nothing is added to the host's own network stack.
ip -n $NSP link add rpv-p type veth peer name rpv-c netns $NSC
ip -n $NSP addr add $PROXY_IP/30 dev rpv-p
ip -n $NSC addr add $CLIENT_IP/30 dev rpv-c
for pair in "$NSP rpv-p" "$NSC rpv-c"; do
  set -- $pair
  # gso_max_segs 1: the stack hands the qdisc real MSS-sized segments, as a physical NIC would see.
  ip -n "$1" link set "$2" mtu 1500 gso_max_segs 1 up
  ip -n "$1" link set lo up
done
# rate DEV RATE: shape DEV's egress (tbf); rate DEV off: remove it.
rate() {
  local ns=$NSP; [ "$1" = rpv-c ] && ns=$NSC
  ip netns exec $ns tc qdisc del dev "$1" root 2>/dev/null || true
  [ "$2" = off ] || ip netns exec $ns tc qdisc add dev "$1" root tbf rate "$2" burst 1600 latency 100ms
}

cat > "$work/reaper.json" <<JSON
{ "Reaper": { "Policies": { "tight": { "PingInterval": "2s", "PongTimeout": "2s" } } },
  "ReverseProxy": {
    "Routes": {
      "c1": { "ClusterId": "b", "Match": { "Path": "/c1/{**rest}" } },
      "c2": { "ClusterId": "b", "Match": { "Path": "/c2/{**rest}" }, "Metadata": { "ReaperPolicy": "tight" } },
      "c3": { "ClusterId": "b", "Match": { "Path": "/c3/{**rest}" }, "Metadata": { "ReaperPolicy": "tight" } },
      "c4": { "ClusterId": "b", "Match": { "Path": "/c4/{**rest}" }, "Metadata": { "ReaperPolicy": "tight" } } },
    "Clusters": { "b": { "Destinations": { "a": { "Address": "http://127.0.0.1:$BACKEND/" } } } } } }
JSON

# The backend: a node `ws` server. "download N" -> a text "meta N SHA256", then one binary message of
# N random bytes; a binary message -> a text "got N SHA256". Logs (ms timestamps) every connection's
# open, the moment its readyState leaves OPEN (a Close frame arrived or the connection ended; polled
# every 10 ms) and the final close code and reason.
cat > "$work/backend.js" <<'JS'
const { WebSocketServer } = require('ws');
const crypto = require('crypto');
const sha = b => crypto.createHash('sha256').update(b).digest('hex');
const log = (id, s) => console.log(`${Date.now()} #${id} ${s}`);
const wss = new WebSocketServer({ host: '127.0.0.1', port: +process.argv[2], maxPayload: 64 << 20 });
let next = 0;
wss.on('listening', () => log(0, 'listening'));
wss.on('connection', (ws, req) => {
  const id = ++next;
  log(id, `open ${req.url}`);
  let left = false;
  const leave = () => { if (!left) { left = true; clearInterval(poll); log(id, `leaving-open readyState=${ws.readyState}`); } };
  const poll = setInterval(() => { if (ws.readyState !== 1) leave(); }, 10);
  ws.on('ping', () => log(id, 'ping'));
  ws.on('message', (data, isBinary) => {
    if (isBinary) { log(id, `received ${data.length} ${sha(data)}`); ws.send(`got ${data.length} ${sha(data)}`); return; }
    const m = /^download (\d+)$/.exec(data.toString());
    if (!m) return;
    const buf = crypto.randomBytes(+m[1]);
    ws.send(`meta ${buf.length} ${sha(buf)}`);
    ws.send(buf, err => log(id, `send-callback ${err ? err.message : 'ok'}`));
    log(id, `sending ${buf.length} ${sha(buf)}`);
  });
  ws.on('close', (code, reason) => { leave(); log(id, `close ${code} "${reason}"`); });
  ws.on('error', e => log(id, `error ${e.message}`));
});
JS

# The client: node `ws`. client.js URL download|upload BYTES STOP_AFTER_MS LIMIT_MS
# Logs (ms timestamps) progress (the TCP socket's bytesRead/bytesWritten) every 250 ms, the message
# or the upload's acknowledgement with its checks, and the close code and reason it saw.
cat > "$work/client.js" <<'JS'
const WebSocket = require('ws');
const crypto = require('crypto');
const [url, mode, size, stopAfter, limit] = process.argv.slice(2);
const sha = b => crypto.createHash('sha256').update(b).digest('hex');
const log = s => console.log(`${Date.now()} ${s}`);
const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 << 20 });
let sock, expect, upload;
const progress = () => sock && log(`progress read=${sock.bytesRead} written=${sock.bytesWritten}`);
ws.on('upgrade', res => { sock = res.socket; });
ws.on('open', () => {
  log('open');
  setInterval(progress, 250);
  if (+stopAfter > 0) setTimeout(() => { progress(); log('stopping: close 1000'); ws.close(1000, 'enough'); }, +stopAfter);
  if (mode === 'download') ws.send(`download ${size}`);
  else { upload = crypto.randomBytes(+size); log(`uploading ${upload.length} ${sha(upload)}`); ws.send(upload); }
});
ws.on('message', (data, isBinary) => {
  if (!isBinary) {
    const t = data.toString();
    if (t.startsWith('meta ')) { expect = t.split(' '); log(t); return; }
    if (t.startsWith('got ')) {
      const [, n, h] = t.split(' ');
      log(`ack ${n} ${h} ${+n === upload.length && h === sha(upload) ? 'ok' : 'BAD'}`);
      ws.close(1000, 'done');
    }
    return;
  }
  const ok = expect && data.length === +expect[1] && sha(data) === expect[2];
  log(`message ${data.length} ${sha(data)} ${ok ? 'ok' : 'BAD'}`);
  ws.close(1000, 'done');
});
ws.on('close', (code, reason) => { progress(); log(`close ${code} "${reason}"`); process.exit(0); });
ws.on('error', e => log(`error ${e.message}`));
setTimeout(() => { progress(); log('limit reached'); process.exit(2); }, +limit);
JS

ip netns exec $NSP env NODE_PATH="$work/node_modules" node "$work/backend.js" $BACKEND >"$work/backend.log" 2>&1 &
pids+=($!)
ip netns exec $NSP dotnet src/ReaperProxy/bin/Release/net10.0/ReaperProxy.dll --config "$work/reaper.json" \
  --urls "http://$PROXY_IP:$PUBLIC" --admin-urls "http://127.0.0.1:$ADMIN" >"$work/proxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 80); do inp curl -fs "http://127.0.0.1:$ADMIN/readyz" >/dev/null 2>&1 && break; sleep 0.25; done
inp curl -fs "http://127.0.0.1:$ADMIN/readyz" >/dev/null || { echo "proxy not ready"; cat "$work/proxy.log"; exit 1; }
grep -q listening "$work/backend.log" || { sleep 1; grep -q listening "$work/backend.log" || { echo "backend not up"; cat "$work/backend.log"; exit 1; }; }
echo "   ready: client $CLIENT_IP in $NSC -> proxy $PROXY_IP:$PUBLIC in $NSP -> backend 127.0.0.1:$BACKEND"

metrics() { inp curl -fs --max-time 5 "http://127.0.0.1:$ADMIN/metrics"; }
# reaped ROUTE: the route's reaper_connections_reaped_total series, one per line ("" if none)
reaped() { metrics | grep -E "^reaper_connections_reaped_total\{.*route=\"$1\"" || true; }
closed() { metrics | grep -E "^reaper_connections_closed_total\{.*route=\"$1\"" | sed -E 's/.*reason="([^"]*)".*\} ([0-9]+).*/\1=\2/' | tr '\n' ' ' || true; }
# client NAME ROUTE MODE BYTES STOP_AFTER_MS LIMIT_MS: start the client in the background ($client)
client() {
  ip netns exec $NSC env NODE_PATH="$work/node_modules" node "$work/client.js" "ws://$PROXY_IP:$PUBLIC/$2/x" "$3" "$4" "$5" "$6" >"$work/$1.log" 2>&1 &
  client=$!; pids+=($client)
}
# waitfor FILE REGEX SECONDS: poll every 50 ms; succeeds once the regex is in the file
waitfor() { local i; for ((i = 0; i < $3 * 20; i++)); do grep -Eq "$2" "$1" && return 0; sleep 0.05; done; return 1; }
field() { grep -E "$2" "$1" | tail -1 | cut -d' ' -f1; }   # timestamp of the last line matching
lastread() { grep progress "$1" | tail -1 | sed -E 's/.*read=([0-9]+).*/\1/'; }
backend_conn() { grep -E " open /$1/" "$work/backend.log" | tail -1 | awk '{print $2}'; }
proxy_log_for() { grep -n -E "$1" "$work/proxy.log" | head -20 | sed 's/^/     proxy.log:/' || true; }
status=0
fail() { echo "   FAIL: $*"; status=1; cs=1; }
show_proxy_reaps() { grep -n -iE "reap|dead|unresponsive|no_progress|pong_timeout|close_timeout|2001|2005" "$work/proxy.log" | sed 's/^/     proxy.log:/' | tail -20 || true; }
MIB=1048576

for c in "${cases[@]}"; do cs=0; case $c in
1)
  echo "== 1. default policy (15s/10s), 160 kbit/s downlink: a 1 MiB message arrives whole, nothing reaped"
  rate rpv-c off; rate rpv-p 160kbit
  client c1 c1 download $MIB 0 150000; wait $client || true
  t0=$(field "$work/c1.log" '^[0-9]+ open'); t1=$(field "$work/c1.log" '^[0-9]+ message '); t0=${t0:-0} t1=${t1:-0}
  msg=$(grep -E ' message ' "$work/c1.log" | tail -1 | cut -d' ' -f3,5)
  id=$(backend_conn c1); bclose=$(grep -E "^[0-9]+ $id close " "$work/backend.log" | cut -d' ' -f4-)
  echo "   open -> whole message $(( (t1 - t0) / 1000 )).$(( (t1 - t0) % 1000 / 100 )) s; client got: ${msg:-nothing}; client saw $(grep -E '^[0-9]+ close ' "$work/c1.log" | cut -d' ' -f2- || echo 'no close'); backend saw ${bclose:-no close}"
  r=$(reaped c1); echo "   reaped series: ${r:-none}; closed: $(closed c1)"
  [ "$msg" = "$MIB ok" ] || fail "message not received whole (length/sha256)"
  [ "$bclose" = '1000 "done"' ] || fail "the backend did not see the client's own Close 1000 \"done\""
  [ -z "$r" ] || { fail "a live reader was reaped"; show_proxy_reaps; }
  ;;
2)
  echo "== 2. policy 2s/2s, 64 kbit/s downlink: the client reads a 1 MiB message for 20 s, never reaped"
  rate rpv-c off; rate rpv-p 64kbit
  client c2 c2 download $MIB 20000 90000
  waitfor "$work/c2.log" 'stopping' 30 || true
  t0=$(field "$work/c2.log" '^[0-9]+ open'); t0=${t0:-$(now)}
  ts=$(field "$work/c2.log" 'stopping'); r_before=$(reaped c2)
  earlyclose=$(grep -E '^[0-9]+ (close|error) ' "$work/c2.log" | awk -v ts="${ts:-0}" '$1 <= ts' | head -1 || true)
  wait $client || true; t1=$(now)
  bytes=$(grep -B1 stopping "$work/c2.log" | grep progress | sed -E 's/.*read=([0-9]+).*/\1/')
  id=$(backend_conn c2)
  echo "   read for $(( (${ts:-$t0} - t0) / 1000 )).$(( (${ts:-$t0} - t0) % 1000 / 100 )) s: ${bytes:-0} bytes received ($(( ${bytes:-0} * 1000 / (${ts:-$t0} - t0 + 1) / 1024 )) KiB/s)"
  echo "   reaped series while reading: ${r_before:-none}"
  echo "   after the client's Close: client saw $(grep -E '^[0-9]+ close ' "$work/c2.log" | cut -d' ' -f2- || echo 'no close') $(( (t1 - ${ts:-$t0}) / 1000 )).$(( (t1 - ${ts:-$t0}) % 1000 / 100 )) s later;" \
       "backend saw $(grep -E "^[0-9]+ $id close " "$work/backend.log" | cut -d' ' -f4- || echo 'no close'); closed: $(closed c2); reaped now: $(reaped c2 | sed -E 's/.*(leg="[^"]*").*(reason="[^"]*").*\} ([0-9]+).*/\1 \2 \3/' | tr '\n' ' ')"
  [ -n "$ts" ] || fail "the client did not reach its 20 s stop (its connection ended earlier)"
  [ -z "$earlyclose" ] || fail "the connection closed before the client stopped: $earlyclose"
  [ "${bytes:-0}" -ge $(( 20 * 8192 / 2 )) ] || fail "fewer than half the link's 20 s worth of bytes arrived"
  [ -z "$r_before" ] || { fail "a live reader was reaped"; show_proxy_reaps; }
  ;;
3)
  echo "== 3. policy 2s/2s, 160 kbit/s downlink: a client frozen (SIGSTOP) mid-download is reaped"
  rate rpv-c off; rate rpv-p 160kbit
  client c3 c3 download $((8 * MIB)) 0 120000
  for _ in $(seq 1 300); do [ "$(lastread "$work/c3.log" 2>/dev/null || echo 0)" -ge 100000 ] 2>/dev/null && break; sleep 0.05; done
  kill -STOP $client; tstop=$(now); id=$(backend_conn c3)
  echo "   SIGSTOP after $(lastread "$work/c3.log") bytes read by the client"
  # Sample the frozen client's receive queue every 100 ms to see when its kernel stopped taking data.
  prevq=-1 tlastq=$tstop q=0
  for _ in $(seq 1 300); do
    grep -Eq "^[0-9]+ $id leaving-open" "$work/backend.log" && break
    q=$(inc ss -tnH state established "dst $PROXY_IP" | awk '{print $1}' | head -1)
    [ -n "$q" ] && [ "$q" != "$prevq" ] && { prevq=$q; tlastq=$(now); }
    sleep 0.1
  done
  q=$prevq
  tclosing=$(grep -E "^[0-9]+ $id leaving-open" "$work/backend.log" | cut -d' ' -f1 || true)
  waitfor "$work/backend.log" "^[0-9]+ $id close " 20 || true
  bclose=$(grep -E "^[0-9]+ $id close " "$work/backend.log" | cut -d' ' -f4- || true)
  drain=$(( tlastq - tstop ))
  if [ -n "$tclosing" ]; then
    e=$(( tclosing - tstop )) el=$(( tclosing - tlastq ))
    echo "   backend got the Close $e ms after SIGSTOP: $bclose"
    echo "   the frozen client's kernel took data for $drain ms more (receive queue $q bytes); reap $el ms after its last change"
  else echo "   backend saw no Close within 30 s of SIGSTOP"; fi
  r=$(reaped c3); echo "   reaped series: ${r:-none}"; proxy_log_for "c3|client leg|unresponsive" | tail -4
  kill -CONT $client; tcont=$(now); wait $client || true
  cc=$(grep -E '^[0-9]+ (close|limit) ' "$work/c3.log" | tail -1 || true)
  echo "   after SIGCONT the client saw: $(echo "$cc" | cut -d' ' -f2-) ($(( $(echo "$cc" | cut -d' ' -f1) - tcont )) ms), having read $(lastread "$work/c3.log") bytes"
  [ -n "$tclosing" ] || fail "the frozen client was not reaped"
  [[ "$bclose" == '1001 "client unresponsive"' ]] || fail "the backend did not get Close 1001 \"client unresponsive\""
  # Deadline 4.5 s from the last byte the client's kernel consumed; 1.5 s slack for sampling and ticks.
  [ -z "$tclosing" ] || [ $(( tclosing - tlastq )) -le 6000 ] || fail "reaped later than PingInterval+PongTimeout+25% (+1.5 s slack) after the last consumed byte"
  [ -z "$tclosing" ] || [ $(( tclosing - tstop )) -le $(( 6000 + drain + 3000 )) ] || fail "reaped later than deadline + buffer drain + 3 s after SIGSTOP"
  [[ "$cc" == *" close "* ]] || fail "the client did not see its connection closed after SIGCONT"
  ;;
4)
  echo "== 4. policy 2s/2s, 64 kbit/s uplink: a 1 MiB upload arrives whole, nothing reaped"
  rate rpv-p off; rate rpv-c 64kbit
  client c4 c4 upload $MIB 0 200000; wait $client || true
  t0=$(field "$work/c4.log" '^[0-9]+ open'); t1=$(field "$work/c4.log" '^[0-9]+ ack '); t0=${t0:-0} t1=${t1:-0}
  id=$(backend_conn c4)
  recv=$(grep -E "^[0-9]+ $id received " "$work/backend.log" | cut -d' ' -f4- || true)
  ack=$(grep -E ' ack ' "$work/c4.log" | cut -d' ' -f3,5 || true)
  bclose=$(grep -E "^[0-9]+ $id close " "$work/backend.log" | cut -d' ' -f4- || true)
  echo "   open -> acknowledged $(( (t1 - t0) / 1000 )).$(( (t1 - t0) % 1000 / 100 )) s; backend received ${recv:-nothing}; client's check: ${ack:-none}; backend saw ${bclose:-no close}"
  r=$(reaped c4); echo "   reaped series: ${r:-none}; closed: $(closed c4)"
  [ "$ack" = "$MIB ok" ] || fail "upload not received whole (length/sha256)"
  [ "$bclose" = '1000 "done"' ] || fail "the backend did not see the client's own Close 1000 \"done\""
  [ -z "$r" ] || { fail "a live writer was reaped"; show_proxy_reaps; }
  ;;
*) echo "unknown case $c" >&2; exit 2 ;;
esac; echo "   -> case $c $([ $cs -eq 0 ] && echo PASS || echo FAIL)"; done

rate rpv-p off; rate rpv-c off
[ $status -eq 0 ] && echo "PASS" || { echo "FAIL"; echo "   proxy log: "; sed 's/^/     /' "$work/proxy.log" | tail -40; }
exit $status
