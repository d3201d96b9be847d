"""Probe service: /healthz (503 forever when built with HEALTHY=0), /version (this
release, plus the backend's when BACKEND_URL is set), /secrets (which secret files it can
read, by name and length only). `server.py migrate` exits with PROBE_MIGRATE_EXIT.

For the release-safety tests (guard, canary) /version can be told to fail: PROBE_FAIL_SHARE
(0..1) answers that share of requests with 500 (evenly: every 1/share-th request),
PROBE_FAIL_AFTER (seconds) answers every request with 500 once the process has run that
long. /healthz is not affected: the release passes its health check and its switch."""

import itertools
import json
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
FAIL_SHARE = float(os.environ.get("PROBE_FAIL_SHARE", "0") or 0)
FAIL_AFTER = float(os.environ.get("PROBE_FAIL_AFTER", "0") or 0)
COUNT = itertools.count(1)


def failing() -> bool:
    if FAIL_AFTER and time.monotonic() - STARTED >= FAIL_AFTER:
        return True
    # Request n fails when floor(n * share) moved on: exactly `share` of them, spread evenly.
    n = next(COUNT)
    return FAIL_SHARE > 0 and int(n * FAIL_SHARE) != int((n - 1) * FAIL_SHARE)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/healthz":
            ok = os.environ.get("PROBE_HEALTHY", "1") == "1"
            return self.reply(200 if ok else 503, {"status": "ok" if ok else "broken"})
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
        return self.reply(404, {"error": "not found"})

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stderr.write("probe: " + (fmt % args) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["migrate"]:
        print("probe: migrating; secrets readable:", json.dumps(secrets()))
        sys.exit(int(os.environ.get("PROBE_MIGRATE_EXIT", "0")))
    import signal

    # PID 1 gets no default SIGTERM action: exit on it like a real server would.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8000"))), Handler).serve_forever()
