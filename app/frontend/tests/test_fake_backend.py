"""Keeps the fake backend honest: every request the frontend makes, sent to the real
backend and to the fake, must get the same status and the same body (generated
names and timestamps aside). Needs the real backend, so it runs from the
repository root; the frontend image uses the fake this test vouches for."""

import pytest
import requests

# (method, path, JSON body): what the frontend's BackendClient sends, good and bad.
SCRIPT = [
    ("GET", "/api/users?limit=50&offset=0", None),
    ("POST", "/api/users", {"username": "alice"}),
    ("POST", "/api/users", {"username": "alice"}),
    ("POST", "/api/users", {"username": "Bob"}),
    ("POST", "/api/users", {"username": "ab"}),
    ("POST", "/api/users", {"username": "x" * 31}),
    ("POST", "/api/users", {"username": None}),
    ("POST", "/api/users", {"username": "bob-2"}),
    ("GET", "/api/users?limit=1&offset=0", None),
    ("GET", "/api/users?limit=500&offset=1", None),
    # Generated names sort anywhere, so only whole listings are compared after this.
    ("POST", "/api/users/generate", {"count": 3}),
    ("POST", "/api/users/generate", {"count": 0}),
    ("POST", "/api/users/generate", {"count": 51}),
    ("POST", "/api/users/generate", {"count": "2"}),
    ("DELETE", "/api/users/alice", None),
    ("DELETE", "/api/users/alice", None),
    ("DELETE", "/api/users/a%20b", None),
    ("GET", "/api/users?limit=50&offset=0", None),
    ("GET", "/version", None),
]


def normalised(response: requests.Response):
    if not response.content:
        return response.status_code, None
    body = response.json()
    if isinstance(body, dict) and "users" in body:
        for user in body["users"]:
            user["created_at"] = "<time>"
            if user["username"] not in ("alice", "bob-2"):
                user["username"] = "<generated>"
        body["users"].sort(key=lambda u: u["username"])
    if isinstance(body, dict) and body.get("username"):
        body["created_at"] = "<time>"
    return response.status_code, body


def test_fake_answers_like_the_real_backend(request, fake_backend):
    pytest.importorskip("backend.testing", reason="the real backend is not importable here (frontend image)")
    real = request.getfixturevalue("live_backend")
    for method, path, body in SCRIPT:
        expected = normalised(requests.request(method, real + path, json=body, timeout=5))
        got = normalised(requests.request(method, fake_backend.url + path, json=body, timeout=5))
        assert got == expected, f"{method} {path} {body}"
