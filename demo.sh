#!/usr/bin/env bash
# Starts ReaperProxy in front of the sample echo backend on loopback, proves a WebSocket round trip
# through it, then runs reaperproxy-probe's silent-client and idle-live checks through it (a vanished
# client reaped within the demo policy's deadline, a quiet but live one kept), shows the proxy's log line
# and metric for the reap, and prints where to connect. Ctrl-C stops both.
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
dotnet build src/ReaperProxy.Probe/ReaperProxy.Probe.csproj -c Release -v quiet -nologo >/dev/null

BIN=src/ReaperProxy/bin/Release/net10.0
ECHO_BIN=src/ReaperProxy.EchoBackend/bin/Release/net10.0
PROBE_BIN=src/ReaperProxy.Probe/bin/Release/net10.0
PROXY_LOG="$(mktemp -t reaperproxy-demo.XXXXXX.log)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -f "$PROXY_LOG"; }
trap cleanup EXIT INT TERM

dotnet "$ECHO_BIN/ReaperProxy.EchoBackend.dll" --urls "$BACKEND_URL" &
pids+=($!)
# The proxy logs to a file while the probe draws its progress; the log is followed on screen afterwards.
dotnet "$BIN/ReaperProxy.dll" --config config/demo.json --urls "$PROXY_URL" --admin-urls "$ADMIN_URL" >"$PROXY_LOG" 2>&1 &
pids+=($!)

for _ in $(seq 1 50); do
  if curl -fsS "$ADMIN_URL/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.2
done
curl -fsS "$ADMIN_URL/readyz" >/dev/null || { echo "error: ReaperProxy did not become ready" >&2; cat "$PROXY_LOG" >&2; exit 1; }
grep -m1 'ReaperProxy is running' "$PROXY_LOG" || true

echo
dotnet "$ECHO_BIN/ReaperProxy.EchoBackend.dll" client "ws://127.0.0.1:8080/echo" "hello through ReaperProxy"

# The probe (README, "Is my server leaking zombies?"). config/demo.json pings a quiet leg after 5 s and gives it
# 5 s to answer: a vanished client is reaped within 5 + 5 + 25% of 5 = 11.25 s (the reaping deadline).
cat <<MSG

Now reaperproxy-probe, through the proxy, for 15 s: silent-client plays a client that vanished (it never
sends a byte, not even a pong); idle-live plays a user who is there but quiet (it answers every ping).
With config/demo.json (PingInterval 5s, PongTimeout 5s) the vanished one is reaped within 11.25 s.
MSG
probe_status=0
dotnet "$PROBE_BIN/reaperproxy-probe.dll" "ws://127.0.0.1:8080/echo" --check silent-client --check idle-live \
  --limit 15s --max-reap 12s || probe_status=$?
echo
echo "The proxy's log line for the reap:"
grep -E 'Reaped WebSocket' "$PROXY_LOG" | tail -n 1 || echo "  (none: the proxy reaped nothing; see $PROXY_LOG)"
echo "The metric (${ADMIN_URL}/metrics):"
curl -fsS "$ADMIN_URL/metrics" | grep -E '^reaper_connections_reaped_total' || echo "  (no reaper_connections_reaped_total series)"
if [ "$probe_status" -ne 0 ]; then
  echo "warning: reaperproxy-probe exited $probe_status (0 means both checks passed)" >&2
fi

cat <<MSG

ReaperProxy is running in front of the echo backend.
  WebSocket:   ws://127.0.0.1:8080/echo      (any WebSocket client; it echoes)
  Browser:     $PROXY_URL/       (a page that talks to /echo through the proxy)
  Metrics:     $ADMIN_URL/metrics (Prometheus text)
  Health:      $ADMIN_URL/healthz  $ADMIN_URL/readyz
  Config:      config/demo.json (edit it; changes apply live)
  Probe:       dotnet $PROBE_BIN/reaperproxy-probe.dll ws://127.0.0.1:8080/echo   (all checks, about 2 min)
  Log:         $PROXY_LOG (followed below)
Press Ctrl-C to stop.
MSG
tail -n 0 -f "$PROXY_LOG" &
pids+=($!)
wait
