"""The registry digest look-up against a tiny HTTP server on the loopback interface."""

from __future__ import annotations

import http.server
import threading

import pytest

from deployctl.adapters.registry_api import manifest_digest
from deployctl.errors import ConnectError
from deployctl.secrets import Secret

DIGEST = "sha256:" + "a" * 64


@pytest.fixture
def registry():
    """A registry whose manifest path redirects to /elsewhere, which answers with a digest;
    every request's Authorization header is recorded by path."""
    seen: list[tuple[str, str | None]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802 - http.server's naming
            seen.append((self.path, self.headers.get("Authorization")))
            if self.path.startswith("/v2/"):
                self.send_response(307)
                self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/elsewhere")
            else:
                self.send_response(200)
                self.send_header("Docker-Content-Digest", DIGEST)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD  # noqa: N815 - urllib turns a redirected HEAD into a GET

        def log_message(self, *args):  # quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}", seen
    server.shutdown()
    server.server_close()


def test_a_redirect_is_refused_when_the_request_carries_credentials(registry):
    server, seen = registry
    with pytest.raises(ConnectError) as raised:
        manifest_digest(f"{server}/app", "v1", username="ci", password=Secret("hunter2-secret"))
    assert f"redirected (307) to http://{server}/elsewhere" in str(raised.value)
    assert "hunter2" not in str(raised.value)
    # The credentials went to the registry's own address only, never to the redirect's target.
    assert [path for path, _ in seen] == ["/v2/app/manifests/v1"]


def test_an_anonymous_look_up_still_follows_a_redirect(registry):
    server, seen = registry
    assert manifest_digest(f"{server}/app", "v1") == DIGEST
    assert seen == [("/v2/app/manifests/v1", None), ("/elsewhere", None)]
