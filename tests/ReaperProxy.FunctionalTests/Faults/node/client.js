// A real WebSocket client process for the fault tests: node's `ws` (answers pings on its own, as browsers
// and most libraries do). Usage: node client.js URL idle|download
//   idle:     sends one message, prints "ready" when its echo came back, then stays quiet.
//   download: prints "ready" once 1 MiB has arrived and keeps reading whatever the server sends.
//   wait:     prints "ready" once open and reads whatever the server sends (the test freezes it first).
// Prints "local PORT" once open (its own TCP port, so the test can find its sockets), "close CODE REASON"
// when the connection ends, then exits 0. Bounded: exits 2 after 120 s.
'use strict';
const WebSocket = require('ws');
const [url, mode] = process.argv.slice(2);
const ws = new WebSocket(url);
let bytes = 0;
let ready = false;
const say = line => process.stdout.write(line + '\n');
ws.on('open', () => {
  say('local ' + ws._socket.localPort);
  if (mode === 'idle') ws.send('hello');
  if (mode === 'wait') { ready = true; say('ready 0'); }
});
ws.on('message', data => {
  bytes += data.length;
  if (!ready && (mode === 'idle' || bytes >= 1024 * 1024)) {
    ready = true;
    say('ready ' + bytes);
  }
});
ws.on('error', e => say('error ' + e.message));
ws.on('close', (code, reason) => {
  say(`close ${code} ${reason} after ${bytes} bytes`);
  process.exit(0);
});
setTimeout(() => { say('no close within 120 s'); process.exit(2); }, 120000).unref();
