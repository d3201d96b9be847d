"""Fixtures for the frontend suite. Every backend is reached over real HTTP.

- `live_backend`: the real backend app (from app/backend) on a free port, over a
  throwaway MariaDB database. Needs the `backend` package, which is importable when
  the suite runs from the repository root.
- `fake_backend`: an in-memory imitation of the same API, for the frontend's test
  image, where only app/frontend exists. test_fake_backend.py replays the same
  requests against both and requires identical answers, so the fake cannot drift.
- `user_backend`: the real one when it can exist, else the fake. The page tests use it.
- `stub_backend`: a scriptable WSGI server for what no honest backend does on
  demand (be slow, fail, answer garbage).

Self-contained: the repository's tests/conftest.py is not available in the image.
"""

from __future__ import annotations

import json
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


def backend_importable() -> bool:
    try:
        import backend.testing  # noqa: F401
    except ImportError:
        return False
    return True


# --- an in-memory imitation of the backend API ----------------------------------------

class FakeBackend:
    """The backend's API over a dict. Same paths, statuses and messages as the real one."""

    RULE = "username must be 3-30 characters of a-z, 0-9, '_' and '-'"
    _VALID = re.compile(r"[a-z0-9_-]{3,30}")

    def __init__(self):
        self.users: dict[str, str] = {}
        self.generated = 0

    def __call__(self, environ, start_response):
        request = Request(environ)
        status, body = self.dispatch(request)
        response = Response(
            "" if body is None else json.dumps(body), status=status,
            content_type=None if body is None else "application/json",
        )
        return response(environ, start_response)

    def dispatch(self, request):
        path, method = request.path, request.method
        if path == "/version" and method == "GET":
            return 200, {"release": BACKEND_RELEASE[0], "revision": BACKEND_RELEASE[1]}
        if path == "/api/users" and method == "GET":
            return self._list(request.args)
        if path == "/api/users" and method == "POST":
            return self._add(request.get_json(silent=True))
        if path == "/api/users/generate" and method == "POST":
            return self._generate(request.get_json(silent=True))
        if path.startswith("/api/users/") and method == "DELETE":
            name = path[len("/api/users/"):]
            if self.users.pop(name, None) is None:
                return 404, {"error": f"no user named {name!r}"}
            return 204, None
        return 404, {"error": "not found"}

    def _list(self, args):
        limit, offset = min(int(args.get("limit", 50)), 200), int(args.get("offset", 0))
        names = sorted(self.users)[offset:offset + limit]
        users = [{"username": n, "created_at": self.users[n]} for n in names]
        return 200, {"users": users, "total": len(self.users), "limit": limit, "offset": offset}

    def _add(self, body):
        name = body.get("username") if isinstance(body, dict) else None
        if not isinstance(name, str):
            return 422, {"error": "username must be a string"}
        if not self._VALID.fullmatch(name):
            return 422, {"error": self.RULE}
        if name in self.users:
            return 409, {"error": f"username {name!r} is already taken"}
        self.users[name] = "2026-11-27T10:15:00.000000Z"
        return 201, {"username": name, "created_at": self.users[name]}

    def _generate(self, body):
        count = body.get("count") if isinstance(body, dict) else None
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 50:
            return 422, {"error": "count must be an integer from 1 to 50"}
        created = []
        for _ in range(count):
            self.generated += 1
            created.append(self._add({"username": f"fake-user-{self.generated:04d}"})[1])
        return 201, {"users": sorted(created, key=lambda u: u["username"])}


@pytest.fixture
def fake_backend():
    fake = FakeBackend()
    with serve(fake) as url:
        fake.url = url
        yield fake


@pytest.fixture
def user_backend(request):
    """A base URL serving the users API: the real backend where it can run, else the fake."""
    if backend_importable():
        return request.getfixturevalue("live_backend")
    return request.getfixturevalue("fake_backend").url


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
def client(make_frontend, user_backend):
    return make_frontend(user_backend).test_client()


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
