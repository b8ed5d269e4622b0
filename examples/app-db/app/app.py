"""A web app that counts visits in the `db` jail, found by its name db.local.jrun."""
import http.server
import os
import socket
import sys

DB = (os.environ["DB_HOST"], int(os.environ["DB_PORT"]))


def db(command):
    with socket.create_connection(DB, timeout=3) as s:
        s.sendall(command.encode() + b"\n")
        return s.makefile().readline().strip()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        visits = db("INCR visits")
        greeting = open("greeting.txt").read().strip() if os.path.exists("greeting.txt") else "-"
        body = f"visit {visits} (greeting: {greeting})\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


print(f"app on {sys.argv[1]}, database at {DB[0]}:{DB[1]}")
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
