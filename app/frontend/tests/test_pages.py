"""The UI over HTTP against the real backend (and through it MariaDB), or its verified fake in the image."""

import re

import pytest


def test_empty_directory_page(client):
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "No users yet" in html
    assert "Generate Usernames!" in html
    assert '<span id="release-id">20261127-101500-fe12345</span>' in html


def test_add_a_user_through_the_form(client, ui):
    response = ui.post(client, "/users", {"username": "ada_lovelace"}, ui.token(client))
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    page = client.get("/").get_data(as_text=True)
    assert ui.usernames(page) == ["ada_lovelace"]
    assert "Added ada_lovelace." in page
    assert '<span class="count" id="user-count">1</span>' in page


def test_duplicate_username_is_explained(client, ui):
    csrf = ui.token(client)
    ui.post(client, "/users", {"username": "grace"}, csrf)
    client.get("/")
    ui.post(client, "/users", {"username": "grace"}, csrf)
    page = client.get("/").get_data(as_text=True)
    assert "Username &#39;grace&#39; is already taken." in page
    assert ui.usernames(page) == ["grace"]


@pytest.mark.parametrize(
    "username, message",
    [
        ("", "Enter a username."),
        ("ab", "A username is 3-30 characters"),
        ("x" * 31, "A username is 3-30 characters"),
        ("Ada", "A username is 3-30 characters"),
        ("ada lovelace", "A username is 3-30 characters"),
        ("trailing\n", "A username is 3-30 characters"),
    ],
)
def test_invalid_username_is_refused_with_a_message(client, ui, username, message):
    ui.post(client, "/users", {"username": username}, ui.token(client))
    page = client.get("/").get_data(as_text=True)
    assert message in page
    assert ui.usernames(page) == []


def test_generate_usernames(client, ui):
    response = ui.post(client, "/users/generate", {"count": "5"}, ui.token(client))
    assert response.status_code == 303
    page = client.get("/").get_data(as_text=True)
    names = ui.usernames(page)
    assert len(names) == 5
    assert "Generated 5 usernames: " in page
    assert all(re.fullmatch(r"[a-z0-9_-]{3,30}", n) for n in names)


def test_generate_one_says_username_in_the_singular(client, ui):
    ui.post(client, "/users/generate", {"count": "1"}, ui.token(client))
    assert "Generated 1 username: " in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize(
    "count, message",
    [
        ("0", "Generate between 1 and 50 at a time."),
        ("51", "Generate between 1 and 50 at a time."),
        ("many", "Not a valid integer value."),
        ("", "Say how many usernames to generate."),
    ],
)
def test_generate_with_a_bad_count(client, ui, count, message):
    ui.post(client, "/users/generate", {"count": count}, ui.token(client))
    page = client.get("/").get_data(as_text=True)
    assert message in page
    assert ui.usernames(page) == []


def test_delete_a_user(client, ui):
    csrf = ui.token(client)
    for name in ("alice", "bob"):
        ui.post(client, "/users", {"username": name}, csrf)
    response = ui.post(client, "/users/alice/delete", {}, csrf)
    assert response.status_code == 303
    page = client.get("/").get_data(as_text=True)
    assert ui.usernames(page) == ["bob"]
    assert "Deleted alice." in page


def test_deleting_twice_says_it_is_already_gone(client, ui):
    csrf = ui.token(client)
    ui.post(client, "/users", {"username": "alice"}, csrf)
    ui.post(client, "/users/alice/delete", {}, csrf)
    ui.post(client, "/users/alice/delete", {}, csrf)
    assert "alice was already deleted." in client.get("/").get_data(as_text=True)


def test_pages_of_fifty(client, ui):
    csrf = ui.token(client)
    ui.post(client, "/users/generate", {"count": "50"}, csrf)
    ui.post(client, "/users/generate", {"count": "5"}, csrf)
    first = client.get("/").get_data(as_text=True)
    second = client.get("/?page=2").get_data(as_text=True)
    assert len(ui.usernames(first)) == 50 and 'rel="next"' in first and 'rel="prev"' not in first
    assert len(ui.usernames(second)) == 5 and 'rel="prev"' in second and 'rel="next"' not in second
    assert set(ui.usernames(first)).isdisjoint(ui.usernames(second))
    # Deleting from page 2 returns to page 2.
    victim = ui.usernames(second)[0]
    response = ui.post(client, f"/users/{victim}/delete?page=2", {}, csrf)
    assert response.headers["Location"] == "/?page=2"


@pytest.mark.parametrize("page", ["0", "-3", "abc"])
def test_nonsense_page_numbers_show_the_first_page(client, page):
    assert client.get(f"/?page={page}").status_code == 200


# --- CSRF ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/users", "/users/generate", "/users/alice/delete"])
def test_every_form_needs_a_csrf_token(client, path):
    client.get("/")
    response = client.post(path, data={"username": "alice", "count": "5"})
    assert response.status_code == 400
    assert "Form expired" in response.get_data(as_text=True)


def test_a_forged_csrf_token_is_refused(client, ui):
    client.get("/")
    response = ui.post(client, "/users", {"username": "alice"}, "forged-token")
    assert response.status_code == 400


def test_a_token_from_another_session_is_refused(make_frontend, user_backend, ui):
    app = make_frontend(user_backend)
    stolen = ui.token(app.test_client())
    response = ui.post(app.test_client(), "/users", {"username": "alice"}, stolen)
    assert response.status_code == 400


# --- machine endpoints and limits ----------------------------------------------------------

def test_version_reports_frontend_and_backend(client):
    response = client.get("/version")
    assert response.status_code == 200
    assert response.get_json() == {
        "frontend": {"release": "20261127-101500-fe12345", "revision": "fe12345abcdef"},
        "backend": {"release": "20261127-101500-be67890", "revision": "be67890abcdef"},
    }


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_body_over_64_kib_is_413(client, ui):
    response = ui.post(client, "/users", {"username": "x" * (64 * 1024)}, ui.token(client))
    assert response.status_code == 413
    assert "Request too large" in response.get_data(as_text=True)


def test_unknown_page_is_a_404_page(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)


def test_wrong_method_is_a_405_page(client):
    response = client.get("/users/generate")
    assert response.status_code == 405
    assert "Method not allowed" in response.get_data(as_text=True)


def test_static_files_are_served(client):
    for name in ("style.css", "app.js", "favicon.svg"):
        assert client.get(f"/static/{name}").status_code == 200


def test_pages_have_no_inline_script_or_style(client, ui):
    ui.post(client, "/users/generate", {"count": "3"}, ui.token(client))
    html = client.get("/").get_data(as_text=True)
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "<style" not in html and " style=" not in html
    assert re.search(r"\son[a-z]+=", html) is None
