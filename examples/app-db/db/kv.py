"""A tiny line-based key-value server: `GET key`, `SET key value`, `INCR key`.

Usage: kv.py <port> <store.json>    (serve, saving to store.json)
       kv.py --ping <port>          (health check: exit 0 when the server answers)
"""
import json
import os
import socket
import socketserver
import sys
import threading

if sys.argv[1] == "--ping":
    with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=2) as s:
        s.sendall(b"GET __ping__\n")
        sys.exit(0 if s.recv(64) else 1)

PORT, STORE = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
data = json.load(open(STORE)) if os.path.exists(STORE) else {}


def save():
    tmp = STORE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, STORE)


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            parts = line.decode().split(" ", 2)
            cmd, key = parts[0].strip().upper(), parts[1].strip() if len(parts) > 1 else ""
            with lock:
                if cmd == "SET" and len(parts) == 3:
                    data[key] = parts[2].rstrip("\n")
                    save()
                    reply = "OK"
                elif cmd == "INCR":
                    data[key] = str(int(data.get(key, "0")) + 1)
                    save()
                    reply = data[key]
                else:
                    reply = data.get(key, "")
            self.wfile.write((reply + "\n").encode())


socketserver.ThreadingTCPServer.allow_reuse_address = True
print(f"kv listening on {PORT}, store {STORE}")
socketserver.ThreadingTCPServer(("0.0.0.0", PORT), Handler).serve_forever()
