"""Probe service: /healthz (503 forever when built with HEALTHY=0), /version (this
release, plus the backend's when BACKEND_URL is set), /secrets (which secret files it can
read, by name and length only). `server.py migrate` exits with PROBE_MIGRATE_EXIT.

For the release-safety tests (guard, canary) /version can be told to fail: PROBE_FAIL_SHARE
(0..1) answers that share of requests with 500 (evenly: every 1/share-th request),
PROBE_FAIL_AFTER (seconds) answers every request with 500 once the process has run that
long. /healthz is not affected: the release passes its health check and its switch.
/headers answers what reached the service about its client: X-Real-IP, X-Forwarded-For,
X-Forwarded-Proto and the peer address (the app's own proxy), for the proxies' tests.
/items/<id> answers 200 with the id (a route with a variable segment); PROBE_NOT_FOUND
(a path prefix, e.g. "/items/") answers 404 to every request under it: one broken route.
PROBE_DELAY_MS (milliseconds) makes /version and /items/<id> answer that much later (a
sleep: no CPU, so two releases' latencies compare on a loaded machine): a release slower
than another by a known factor, for the shadow window's p95 rule.

/ws is a WebSocket echo (RFC 6455, stdlib only: the stand-in image has no pip): every text
message comes back as `<release>:<message>`, so a test sees which release holds a connection."""

import base64
import hashlib
import itertools
import json
import struct
import os
import sys
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RELEASE = {"release": os.environ.get("DEPLOYCTL_RELEASE", "unknown"),
           "revision": os.environ.get("DEPLOYCTL_REVISION", "unknown")}


def secrets():
    out = {}
    for key, path in os.environ.items():
        if key.endswith("_FILE"):
            try:
                with open(path) as handle:
                    out[key[:-5]] = len(handle.read())
            except OSError as exc:
                out[key[:-5]] = f"unreadable: {exc.strerror}"
    return out


STARTED = time.monotonic()
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
FAIL_SHARE = float(os.environ.get("PROBE_FAIL_SHARE", "0") or 0)
FAIL_AFTER = float(os.environ.get("PROBE_FAIL_AFTER", "0") or 0)
COUNT = itertools.count(1)
DELAY = float(os.environ.get("PROBE_DELAY_MS", "0") or 0) / 1000
# Every line the probe writes goes through the engine (containerd-shim, dockerd, its json log):
# under a test's traffic, one line per answer was two of the three lines each /version cost
# (nginx's access log the third). Answers are logged only when they fail (>= 400), unless
# PROBE_LOG_REQUESTS=1 (a test that reads which requests reached a release: the shadow's).
LOG_REQUESTS = os.environ.get("PROBE_LOG_REQUESTS", "0") == "1"


def failing() -> bool:
    if FAIL_AFTER and time.monotonic() - STARTED >= FAIL_AFTER:
        return True
    # Request n fails when floor(n * share) moved on: exactly `share` of them, spread evenly.
    n = next(COUNT)
    return FAIL_SHARE > 0 and int(n * FAIL_SHARE) != int((n - 1) * FAIL_SHARE)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket()
        if self.path == "/healthz":
            ok = os.environ.get("PROBE_HEALTHY", "1") == "1"
            return self.reply(200 if ok else 503, {"status": "ok" if ok else "broken"})
        if DELAY and (self.path == "/version" or self.path.startswith("/items/")):
            time.sleep(DELAY)
        if self.path == "/version":
            if failing():
                return self.reply(500, {"error": "told to fail (PROBE_FAIL_SHARE / PROBE_FAIL_AFTER)"})
            body = {"frontend" if os.environ.get("BACKEND_URL") else "service": RELEASE}
            if os.environ.get("BACKEND_URL"):
                try:
                    with urllib.request.urlopen(os.environ["BACKEND_URL"] + "/version", timeout=3) as resp:
                        body["backend"] = json.load(resp)["service"]
                except OSError as exc:
                    return self.reply(503, {"error": str(exc)})
            return self.reply(200, body)
        if self.path == "/secrets":
            return self.reply(200, secrets())
        if self.path == "/headers":
            return self.reply(200, {"peer": self.client_address[0],
                                    **{name: self.headers.get(name)
                                       for name in ("X-Real-IP", "X-Forwarded-For", "X-Forwarded-Proto")}})
        path = self.path.split("?", 1)[0]
        broken = os.environ.get("PROBE_NOT_FOUND", "")
        if broken and path.startswith(broken):
            return self.reply(404, {"error": "told to answer 404 (PROBE_NOT_FOUND)", **RELEASE})
        if path.startswith("/items/"):
            return self.reply(200, {"item": path[len("/items/"):], **RELEASE})
        return self.reply(404, {"error": "not found"})

    def websocket(self):
        accept = base64.b64encode(hashlib.sha1((self.headers["Sec-WebSocket-Key"] + WS_GUID).encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack(">H", self.rfile.read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            if opcode == 8:  # close: answer it and end
                self.wfile.write(b"\x88\x00")
                return
            if opcode == 1:
                out = f"{RELEASE['release']}:{data.decode()}".encode()
                self.wfile.write(bytes([0x81, len(out)]) + out if len(out) < 126
                                 else bytes([0x81, 126]) + struct.pack(">H", len(out)) + out)
                self.wfile.flush()

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code="-", size="-"):
        if LOG_REQUESTS or (isinstance(code, int) and code >= 400):
            super().log_request(code, size)

    def log_message(self, fmt, *args):
        sys.stderr.write("probe: " + (fmt % args) + "\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client gone before its answer was written (a health probe, the tests' traffic
        closing): one `probe:` line, not socketserver's traceback of a dozen lines for each."""
        exc = sys.exc_info()[1]
        sys.stderr.write(f"probe: {client_address[0]}: {type(exc).__name__}: {exc}\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["migrate"]:
        print("probe: migrating; secrets readable:", json.dumps(secrets()))
        sys.exit(int(os.environ.get("PROBE_MIGRATE_EXIT", "0")))
    import signal

    # PID 1 gets no default SIGTERM action: exit on it like a real server would.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    port = int(os.environ.get("PORT", "8000"))
    # One line at start, so a service's logs (`deployctl logs --lines N`) always show the
    # probe, now that answers that succeed are not logged (LOG_REQUESTS).
    sys.stderr.write(f"probe: serving on :{port}\n")
    Server(("0.0.0.0", port), Handler).serve_forever()
