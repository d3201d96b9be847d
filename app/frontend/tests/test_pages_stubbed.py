"""The UI when the backend misbehaves: down, slow, failing, or answering nonsense."""

import pytest

from frontend.backend_client import BackendClient


def assert_no_traceback(html: str):
    assert "Traceback" not in html and 'File "' not in html


def test_backend_down_gives_a_503_page(make_frontend, closed_port):
    client = make_frontend(f"http://127.0.0.1:{closed_port}").test_client()
    response = client.get("/")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    html = response.get_data(as_text=True)
    assert "temporarily unavailable: the backend cannot be reached" in html
    assert '<span id="release-id">20261127-101500-fe12345</span>' in html
    assert_no_traceback(html)


def test_slow_backend_gives_a_503_page_after_the_read_timeout(make_frontend, stub_backend):
    stub_backend.reply(200, {"users": [], "total": 0}, delay=1.5)
    client = make_frontend(stub_backend.url, BACKEND_READ_TIMEOUT=0.3).test_client()
    response = client.get("/")
    assert response.status_code == 503
    assert "the backend did not answer within 0.3 seconds" in response.get_data(as_text=True)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_backend_server_error_gives_a_503_page(stub_client, stub_backend, status):
    stub_backend.reply(status, {"error": "database unavailable, try again shortly"})
    response = stub_client.get("/")
    assert response.status_code == 503
    assert f"the backend failed with HTTP {status}" in response.get_data(as_text=True)


def test_backend_answering_html_gives_a_503_page(stub_client, stub_backend):
    stub_backend.reply(200, body="<html>not json</html>", content_type="text/html")
    response = stub_client.get("/")
    assert response.status_code == 503
    assert "something other than JSON" in response.get_data(as_text=True)


def test_backend_going_down_between_page_and_post(make_frontend, stub_backend, closed_port, ui):
    app = make_frontend(stub_backend.url)
    client = app.test_client()
    csrf = ui.token(client)
    app.extensions["backend_client"].base_url = f"http://127.0.0.1:{closed_port}"
    for path, data in [("/users", {"username": "alice"}), ("/users/generate", {"count": "2"}), ("/users/alice/delete", {})]:
        response = ui.post(client, path, data, csrf)
        assert response.status_code == 503, path
        assert_no_traceback(response.get_data(as_text=True))


def test_version_says_when_the_backend_is_unreachable(make_frontend, closed_port):
    response = make_frontend(f"http://127.0.0.1:{closed_port}").test_client().get("/version")
    assert response.status_code == 503
    assert response.get_json() == {
        "frontend": {"release": "20261127-101500-fe12345", "revision": "fe12345abcdef"},
        "backend": {"error": "the backend cannot be reached"},
    }


def test_healthz_does_not_need_the_backend(make_frontend, closed_port):
    response = make_frontend(f"http://127.0.0.1:{closed_port}").test_client().get("/healthz")
    assert response.status_code == 200


def test_usernames_from_the_backend_are_escaped(stub_client, stub_backend):
    evil = '<script>alert("x")</script>'
    stub_backend.reply(200, {"users": [{"username": evil, "created_at": "2026-11-27T10:15:00.000000Z"}], "total": 1})
    html = stub_client.get("/").get_data(as_text=True)
    assert evil not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_backend_messages_in_flashes_are_escaped(stub_client, stub_backend, ui):
    csrf = ui.token(stub_client)
    stub_backend.reply(409, {"error": "username '<b>x</b>' is already taken"})
    ui.post(stub_client, "/users", {"username": "valid_name"}, csrf)
    stub_backend.reply(200, {"users": [], "total": 0})
    html = stub_client.get("/").get_data(as_text=True)
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


def test_a_refusal_without_a_json_message_gets_a_generic_one(stub_client, stub_backend, ui):
    csrf = ui.token(stub_client)
    stub_backend.reply(422, body="nope", content_type="text/plain")
    ui.post(stub_client, "/users/generate", {"count": "3"}, csrf)
    stub_backend.reply(200, {"users": [], "total": 0})
    assert "The backend refused the request (HTTP 422)." in stub_client.get("/").get_data(as_text=True)


def test_a_refused_delete_other_than_404_is_shown(stub_client, stub_backend, ui):
    csrf = ui.token(stub_client)
    stub_backend.reply(409, {"error": "that user is protected!"})
    ui.post(stub_client, "/users/admin/delete", {}, csrf)
    stub_backend.reply(200, {"users": [], "total": 0})
    assert "That user is protected!" in stub_client.get("/").get_data(as_text=True)


def test_usernames_are_quoted_in_backend_paths(stub_client, stub_backend, ui):
    csrf = ui.token(stub_client)
    stub_backend.reply(204, body="")
    ui.post(stub_client, "/users/a%20b%3Fc%23d/delete", {}, csrf)
    assert ("DELETE", "/api/users/a%20b%3Fc%23d") in stub_backend.requests


def test_unexpected_errors_give_a_500_page_without_traceback(stub_client, monkeypatch):
    def explode(*_args, **_kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(BackendClient, "list_users", explode)
    response = stub_client.get("/")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "An unexpected error occurred" in html and "secret internals" not in html
    assert_no_traceback(html)


def test_backend_client_uses_both_timeouts():
    client = BackendClient("http://backend:8000/", connect_timeout=2, read_timeout=5)
    assert client.base_url == "http://backend:8000"
    assert client.timeout == (2, 5)
