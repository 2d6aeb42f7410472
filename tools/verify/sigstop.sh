#!/usr/bin/env bash
# Manual verification with real processes and a third-party WebSocket library (node's `ws`):
# a backend process frozen with SIGSTOP and a client process frozen with SIGSTOP must both be reaped
# within PingInterval + PongTimeout + 25% (300 ms + 300 ms here), and active must return to 0.
# Needs node/npm (installs `ws` into a temp dir from the npm registry). Loopback only; bounded.
set -euo pipefail
cd "$(dirname "$0")/../.."
# Below the ephemeral port range (32768+), so busy client sockets elsewhere cannot collide.
PUBLIC=21080 ADMIN=21464 BACKEND=21580
for port in $PUBLIC $ADMIN $BACKEND; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "port $port is busy" >&2; exit 1; fi
done
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

(cd "$work" && npm init -y >/dev/null 2>&1 && npm install --silent ws@8 >/dev/null 2>&1)
dotnet build -c Release -v quiet -nologo src/ReaperProxy >/dev/null
dotnet build -c Release -v quiet -nologo src/ReaperProxy.EchoBackend >/dev/null
cat > "$work/reaper.json" <<JSON
{ "Reaper": { "Heartbeat": { "PingInterval": "300ms", "PongTimeout": "300ms", "CloseTimeout": "500ms" } },
  "ReverseProxy": { "Routes": { "echo": { "ClusterId": "echo", "Match": { "Path": "{**catch-all}" } } },
    "Clusters": { "echo": { "Destinations": { "a": { "Address": "http://127.0.0.1:$BACKEND/" } } } } } }
JSON
cat > "$work/client.js" <<'JS'
const WebSocket = require('ws');
const ws = new WebSocket(process.argv[2]);
ws.on('open', () => ws.send('hello'));
ws.on('message', m => console.log('echo: ' + m));
ws.on('close', (code, reason) => { console.log(`close ${code} ${reason}`); process.exit(0); });
ws.on('error', e => { console.log('error ' + e.message); process.exit(1); });
setTimeout(() => { console.log('no close within 20s'); process.exit(1); }, 20000);
JS

dotnet src/ReaperProxy.EchoBackend/bin/Release/net10.0/ReaperProxy.EchoBackend.dll --urls "http://127.0.0.1:$BACKEND" >"$work/echo.log" 2>&1 &
backend=$!; pids+=("$backend")
dotnet src/ReaperProxy/bin/Release/net10.0/ReaperProxy.dll --config "$work/reaper.json" --urls "http://127.0.0.1:$PUBLIC" --admin-urls "http://127.0.0.1:$ADMIN" >"$work/proxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 60); do curl -fs "http://127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.25; done

status=0
echo "== 1. the backend process is frozen: the client must get Close 1001 'backend unresponsive'"
NODE_PATH="$work/node_modules" node "$work/client.js" "ws://127.0.0.1:$PUBLIC/echo" >"$work/c1.log" 2>&1 &
client=$!; pids+=("$client")
sleep 1; kill -STOP "$backend"; start=$(date +%s%N)
wait "$client" || true
echo "   $(tail -1 "$work/c1.log") after $(( ($(date +%s%N) - start) / 1000000 )) ms"
grep -q "close 1001 backend unresponsive" "$work/c1.log" || { echo "   FAIL"; status=1; }
kill -CONT "$backend"

echo "== 2. the client process is frozen: the proxy must reap it (the backend gets Close 1001)"
NODE_PATH="$work/node_modules" node -e "const W=require('ws');const ws=new W('ws://127.0.0.1:$PUBLIC/echo');ws.on('open',()=>ws.send('x'));setInterval(()=>{},1000);" &
client=$!; pids+=("$client")
sleep 1.5; kill -STOP "$client"; start=$(date +%s%N)
for _ in $(seq 1 40); do grep -q "client leg dead" "$work/proxy.log" && break; sleep 0.1; done
if grep -q "client leg dead" "$work/proxy.log"; then echo "   reaped within $(( ($(date +%s%N) - start) / 1000000 )) ms (polled every 100 ms)"; else echo "   FAIL: not reaped"; status=1; fi

sleep 1
metrics=$(curl -fs "http://127.0.0.1:$ADMIN/metrics")
echo "$metrics" | grep -E '^reaper_connections_(active|reaped_total)' | sed 's/^/   /'
echo "$metrics" | grep -Eq '^reaper_connections_active\{.*\} 0$' || { echo "   FAIL: active is not back to 0"; status=1; }
[ $status -eq 0 ] && echo "PASS" || echo "FAIL"
exit $status
