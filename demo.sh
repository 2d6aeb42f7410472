#!/usr/bin/env bash
# Starts ReaperProxy in front of the sample echo backend on loopback, proves a WebSocket round trip
# through it, and prints where to connect and where the metrics are. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")"

PROXY_URL=http://127.0.0.1:8080
ADMIN_URL=http://127.0.0.1:9464
BACKEND_URL=http://127.0.0.1:5080
for port in 8080 9464 5080; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "error: port $port on 127.0.0.1 is already in use; stop what uses it and run ./demo.sh again" >&2
    exit 1
  fi
done

echo "Building (first run restores packages; this takes a minute)..."
dotnet build src/ReaperProxy/ReaperProxy.csproj -c Release -v quiet -nologo >/dev/null
dotnet build src/ReaperProxy.EchoBackend/ReaperProxy.EchoBackend.csproj -c Release -v quiet -nologo >/dev/null

BIN=src/ReaperProxy/bin/Release/net10.0
ECHO_BIN=src/ReaperProxy.EchoBackend/bin/Release/net10.0
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

dotnet "$ECHO_BIN/ReaperProxy.EchoBackend.dll" --urls "$BACKEND_URL" &
pids+=($!)
dotnet "$BIN/ReaperProxy.dll" --config config/demo.json --urls "$PROXY_URL" --admin-urls "$ADMIN_URL" &
pids+=($!)

for _ in $(seq 1 50); do
  if curl -fsS "$ADMIN_URL/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.2
done
curl -fsS "$ADMIN_URL/readyz" >/dev/null || { echo "error: ReaperProxy did not become ready" >&2; exit 1; }

echo
dotnet "$ECHO_BIN/ReaperProxy.EchoBackend.dll" client "ws://127.0.0.1:8080/echo" "hello through ReaperProxy"
cat <<MSG

ReaperProxy is running in front of the echo backend.
  WebSocket:   ws://127.0.0.1:8080/echo      (any WebSocket client; it echoes)
  Browser:     $PROXY_URL/       (a page that talks to /echo through the proxy)
  Metrics:     $ADMIN_URL/metrics (Prometheus text)
  Health:      $ADMIN_URL/healthz  $ADMIN_URL/readyz
  Config:      config/demo.json (edit it; changes apply live)
Press Ctrl-C to stop.
MSG
wait
