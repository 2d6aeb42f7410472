"""Sends one HTTP/2 (h2c, prior knowledge) request with exactly the pseudo-headers given, and prints what
came back as one JSON line: {"status": "200"} and/or {"reset": "PROTOCOL_ERROR"} or {"goaway": ...}.

Usage: /usr/bin/python3 h2connect.py HOST PORT '[[":method","CONNECT"], ...]'
Needs Debian's python3-h2 (hyper-h2); header validation is off so malformed requests go out as given.
"""
import json
import socket
import sys

import h2.config
import h2.connection
import h2.events

host, port, headers = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
sock = socket.create_connection((host, port), timeout=5)
conn = h2.connection.H2Connection(h2.config.H2Configuration(
    client_side=True, header_encoding="utf-8",
    validate_outbound_headers=False, normalize_outbound_headers=False, validate_inbound_headers=False))
conn.initiate_connection()
sock.sendall(conn.data_to_send())
sent = False
out = {}
try:
    for _ in range(100):
        data = sock.recv(65535)
        if not data:
            out["eof"] = True
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RemoteSettingsChanged) and not sent:
                conn.send_headers(conn.get_next_available_stream_id(), [tuple(h) for h in headers], end_stream=False)
                sent = True
            elif isinstance(event, h2.events.ResponseReceived):
                out["status"] = dict(event.headers).get(":status")
            elif isinstance(event, h2.events.StreamReset):
                out["reset"] = getattr(event.error_code, "name", str(event.error_code))
            elif isinstance(event, h2.events.ConnectionTerminated):
                out["goaway"] = getattr(event.error_code, "name", str(event.error_code))
        sock.sendall(conn.data_to_send())
        if out:
            break
except socket.timeout:
    out["timeout"] = True
print(json.dumps(out))
