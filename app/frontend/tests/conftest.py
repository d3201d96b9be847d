"""Fixtures for the frontend suite.

Two kinds of backend, both over real HTTP:
- `live_backend`: the real backend app (from app/backend) on a free port, over a
  throwaway MariaDB database. Needs the `backend` package, which only exists when
  the suite runs from the repository root; inside the frontend's test image those
  tests skip and say so.
- `stub_backend`: a scriptable WSGI server for what the real one will not do on
  demand (be slow, fail, answer garbage).

Self-contained: the repository's tests/conftest.py is not available in the image.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from frontend.app import create_app

FRONTEND_RELEASE = {"DEPLOYCTL_RELEASE": "20261127-101500-fe12345", "DEPLOYCTL_REVISION": "fe12345abcdef"}
BACKEND_RELEASE = ("20261127-101500-be67890", "be67890abcdef")
TEST_SECRET_KEY = "test-secret-key-for-the-frontend-suite"
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@contextmanager
def serve(wsgi_app):
    """Serve a WSGI app on a free loopback port in a thread; yield its base URL."""
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the real backend ---------------------------------------------------------------

@pytest.fixture(scope="session")
def _live_backend_server():
    testing = pytest.importorskip(
        "backend.testing",
        reason="the backend package is not importable here (inside the frontend image only "
        "the stubbed tests run; the repository root runs these against the real backend)",
    )
    from backend.app import create_app as create_backend
    from backend.settings import ReleaseInfo as BackendReleaseInfo

    try:
        with testing.throwaway_database(testing.server_settings(), "test_frontend") as settings:
            app = create_backend(database=settings, release=BackendReleaseInfo(*BACKEND_RELEASE))
            with serve(app) as url:
                yield url, settings
    except testing.DatabaseServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def live_backend(_live_backend_server):
    """The real backend's URL, with an empty users table."""
    from backend import db

    url, settings = _live_backend_server
    conn = db.connect(settings)
    try:
        with conn.cursor() as cursor:
            cursor.execute("DELETE FROM users")
    finally:
        conn.close()
    return url


# --- a scriptable stand-in backend ------------------------------------------------------

class StubBackend:
    """A WSGI app whose answer each test sets; records what it was asked."""

    def __init__(self):
        self.requests: list[tuple[str, str]] = []
        self.reply(200, {"users": [], "total": 0, "limit": 50, "offset": 0})

    def reply(self, status=200, json=None, *, body=None, delay=0.0, content_type="application/json"):
        import json as json_module

        payload = body if body is not None else json_module.dumps(json)

        def handler(_request):
            if delay:
                time.sleep(delay)
            return Response(payload, status=status, content_type=content_type)

        self.handler = handler

    def __call__(self, environ, start_response):
        request = Request(environ)
        # The raw URI, as sent: shows whether the client quoted what it had to.
        self.requests.append((request.method, environ.get("RAW_URI", request.full_path)))
        return self.handler(request)(environ, start_response)


@pytest.fixture
def stub_backend():
    stub = StubBackend()
    with serve(stub) as url:
        stub.url = url
        yield stub


# --- the frontend under test --------------------------------------------------------------

@pytest.fixture
def make_frontend(monkeypatch):
    """Build a frontend app talking to `backend_url`; extra config overrides."""
    for key, value in FRONTEND_RELEASE.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FRONTEND_SECRET_KEY", TEST_SECRET_KEY)

    def make(backend_url, **config):
        return create_app({
            "TESTING": True,
            "BACKEND_URL": backend_url,
            "BACKEND_CONNECT_TIMEOUT": 1.0,
            "BACKEND_READ_TIMEOUT": 2.0,
            **config,
        })

    return make


@pytest.fixture
def live_client(make_frontend, live_backend):
    return make_frontend(live_backend).test_client()


@pytest.fixture
def stub_client(make_frontend, stub_backend):
    return make_frontend(stub_backend.url).test_client()


def csrf_token(client, path="/") -> str:
    """The token from a page's form, as a browser would submit it."""
    page = client.get(path)
    assert page.status_code == 200, page.data[:500]
    match = _CSRF_FIELD.search(page.get_data(as_text=True))
    assert match, "no CSRF token in the page"
    return match.group(1)


_LISTED = re.compile(r'<tr data-username="([^"]+)">')


def listed_usernames(html: str) -> list[str]:
    return _LISTED.findall(html)


def post_form(client, path: str, data: dict, csrf: str):
    return client.post(path, data={**data, "csrf_token": csrf})


@pytest.fixture
def ui():
    """Helpers that act like a person with a browser: read the token, post, read the list."""
    return SimpleNamespace(token=csrf_token, post=post_form, usernames=listed_usernames)
