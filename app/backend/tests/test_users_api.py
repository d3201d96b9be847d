import json

import pytest

from backend import db
from backend.app import create_app
from backend.usernames import validate
from backend.users import UserDirectory


def add(client, username):
    return client.post("/api/users", json={"username": username})


def insert_many(settings, names):
    conn = db.connect(settings)
    try:
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO users (username) VALUES (%s)", [(n,) for n in names])
    finally:
        conn.close()


# --- listing ---------------------------------------------------------------

def test_empty_directory(client):
    response = client.get("/api/users")
    assert response.status_code == 200
    assert response.get_json() == {"users": [], "total": 0, "limit": 50, "offset": 0}


def test_users_are_listed_in_username_order_with_creation_time(client):
    for name in ["carol", "alice", "bob"]:
        assert add(client, name).status_code == 201
    body = client.get("/api/users").get_json()
    assert [u["username"] for u in body["users"]] == ["alice", "bob", "carol"]
    assert body["total"] == 3
    assert all(u["created_at"].endswith("Z") for u in body["users"])


def test_limit_and_offset_page_through_the_list(client, clean_database):
    insert_many(clean_database, [f"user{i:02d}" for i in range(10)])
    body = client.get("/api/users?limit=3&offset=4").get_json()
    assert [u["username"] for u in body["users"]] == ["user04", "user05", "user06"]
    assert (body["total"], body["limit"], body["offset"]) == (10, 3, 4)


def test_limit_is_capped_at_200(client, clean_database):
    insert_many(clean_database, [f"user{i:03d}" for i in range(205)])
    body = client.get("/api/users?limit=1000").get_json()
    assert body["limit"] == 200
    assert len(body["users"]) == 200
    assert body["total"] == 205


@pytest.mark.parametrize(
    "query, message",
    [
        ("limit=abc", "limit must be an integer"),
        ("limit=0", "limit must be at least 1"),
        ("limit=-5", "limit must be at least 1"),
        ("offset=-1", "offset must be at least 0"),
        ("offset=1.5", "offset must be an integer"),
    ],
)
def test_bad_paging_parameters_are_422(client, query, message):
    response = client.get(f"/api/users?{query}")
    assert response.status_code == 422
    assert response.get_json() == {"error": message}


# --- adding -----------------------------------------------------------------

def test_add_user_returns_201_with_the_user(client):
    response = add(client, "new_user-1")
    assert response.status_code == 201
    assert response.get_json()["username"] == "new_user-1"
    assert client.get("/api/users").get_json()["total"] == 1


@pytest.mark.parametrize(
    "username",
    ["ab", "x" * 31, "Alice", "with space", "semi;colon", "quote'", "<script>", "ünï", "", None, 12, ["abc"]],
)
def test_invalid_usernames_are_422_with_a_message(client, username):
    response = add(client, username)
    assert response.status_code == 422
    assert "username must be" in response.get_json()["error"]


def test_missing_username_is_422(client):
    response = client.post("/api/users", json={"name": "alice"})
    assert response.status_code == 422
    assert response.get_json() == {"error": "username must be a string"}


def test_duplicate_username_is_409(client):
    assert add(client, "alice").status_code == 201
    response = add(client, "alice")
    assert response.status_code == 409
    assert response.get_json() == {"error": "username 'alice' is already taken"}


@pytest.mark.parametrize("body", ['{"username": "alice"', "{username: alice}", "", "\xff"])
def test_malformed_json_is_400(client, body):
    response = client.post("/api/users", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json() == {"error": "malformed JSON body"}


@pytest.mark.parametrize("body", ["[]", '"alice"', "42", "null"])
def test_json_that_is_not_an_object_is_422(client, body):
    response = client.post("/api/users", data=body, content_type="application/json")
    assert response.status_code == 422
    assert response.get_json() == {"error": "request body must be a JSON object"}


def test_non_json_content_type_is_415(client):
    response = client.post("/api/users", data="username=alice", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert "must be JSON" in response.get_json()["error"]


def test_body_over_64_kib_is_413(client):
    body = json.dumps({"username": "alice", "padding": "x" * (64 * 1024)})
    response = client.post("/api/users", data=body, content_type="application/json")
    assert response.status_code == 413
    assert set(response.get_json()) == {"error"}


def test_body_just_under_64_kib_is_accepted(client):
    prefix = '{"username": "alice", "padding": "'
    body = prefix + "x" * (64 * 1024 - len(prefix) - 2) + '"}'
    assert len(body) == 64 * 1024
    assert client.post("/api/users", data=body, content_type="application/json").status_code == 201


# --- deleting -----------------------------------------------------------------

def test_delete_user_is_204_then_404(client):
    add(client, "alice")
    response = client.delete("/api/users/alice")
    assert response.status_code == 204
    assert response.data == b""
    response = client.delete("/api/users/alice")
    assert response.status_code == 404
    assert response.get_json() == {"error": "no user named 'alice'"}


def test_delete_unknown_or_malformed_name_is_404(client):
    assert client.delete("/api/users/nobody").status_code == 404
    assert client.delete("/api/users/%27%20OR%201%3D1%20--").status_code == 404


# --- generating -----------------------------------------------------------------

def test_generate_creates_that_many_new_valid_unique_users(client):
    response = client.post("/api/users/generate", json={"count": 5})
    assert response.status_code == 201
    names = [u["username"] for u in response.get_json()["users"]]
    assert len(set(names)) == 5
    assert all(validate(n) for n in names)
    listed = [u["username"] for u in client.get("/api/users").get_json()["users"]]
    assert sorted(names) == listed


def test_generate_fifty_at_once(client):
    response = client.post("/api/users/generate", json={"count": 50})
    assert response.status_code == 201
    assert len(response.get_json()["users"]) == 50


@pytest.mark.parametrize("count", [0, 51, -1, "5", 2.5, True, None, [5]])
def test_generate_with_a_bad_count_is_422(client, count):
    response = client.post("/api/users/generate", json={"count": count})
    assert response.status_code == 422
    assert response.get_json() == {"error": "count must be an integer from 1 to 50"}


def test_generate_without_count_is_422(client):
    assert client.post("/api/users/generate", json={}).status_code == 422


def test_generate_with_malformed_json_is_400(client):
    response = client.post("/api/users/generate", data="{count: 5", content_type="application/json")
    assert response.status_code == 400


def test_generate_retries_a_name_that_is_taken(clean_database):
    conn = db.connect(clean_database)
    try:
        UserDirectory(conn).add("taken-name-0001")
        names = iter(["taken-name-0001", "fresh-name-0002"])
        users = UserDirectory(conn).generate(1, make_name=lambda: next(names))
    finally:
        conn.close()
    assert [u["username"] for u in users] == ["fresh-name-0002"]


def test_generate_is_all_or_nothing(client, clean_database, monkeypatch):
    monkeypatch.setattr("backend.users.random_username", lambda: "always-same-0001")
    response = client.post("/api/users/generate", json={"count": 2})
    assert response.status_code == 503
    assert "no unused username" in response.get_json()["error"]
    # The first name was inserted inside the failed batch and rolled back.
    assert client.get("/api/users").get_json()["total"] == 0


# --- errors never leak ------------------------------------------------------------

def test_unknown_route_is_json_404(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert set(response.get_json()) == {"error"}


def test_wrong_method_is_json_405_with_allow(client):
    response = client.put("/api/users", json={})
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    assert set(response.get_json()) == {"error"}


def test_unexpected_error_is_a_json_500_without_traceback(client, monkeypatch):
    def explode(*_args, **_kwargs):
        raise RuntimeError("secret internals at /app/backend/users.py")

    monkeypatch.setattr(UserDirectory, "list", explode)
    response = client.get("/api/users")
    assert response.status_code == 500
    assert response.get_json() == {"error": "internal server error"}
    assert b"Traceback" not in response.data and b"secret internals" not in response.data


def test_database_down_is_a_json_503(clean_database, closed_port):
    from dataclasses import replace

    app = create_app(database=replace(clean_database, port=closed_port))
    response = app.test_client().get("/api/users")
    assert response.status_code == 503
    assert response.get_json() == {"error": "database unavailable, try again shortly"}


def test_sql_is_parameterised(client):
    # A name that would break string-built SQL is just rejected or stored verbatim.
    assert add(client, "robert'); DROP TABLE users;--").status_code == 422
    assert add(client, "bobby-tables").status_code == 201
    assert client.get("/api/users").get_json()["total"] == 1
