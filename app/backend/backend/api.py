"""The /api/users resource."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import BadRequest

from . import db
from .errors import ApiError
from .usernames import InvalidUsername, validate
from .users import GenerationFailed, UserDirectory, UserExists, UserNotFound

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_GENERATE = 50

users_api = Blueprint("users_api", __name__, url_prefix="/api/users")


def directory() -> UserDirectory:
    # One connection per request, opened on first use and closed at teardown:
    # with sync gunicorn workers a pool would hold idle connections per worker.
    if "db" not in g:
        g.db = db.connect(current_app.config["DATABASE_SETTINGS"])
    return UserDirectory(g.db)


@users_api.teardown_app_request
def _close_connection(_exc):
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def _int_query(name: str, default: int, minimum: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(422, f"{name} must be an integer") from None
    if value < minimum:
        raise ApiError(422, f"{name} must be at least {minimum}")
    return value


def _json_object() -> dict:
    if not request.is_json:
        raise ApiError(415, "request body must be JSON (Content-Type: application/json)")
    try:
        body = request.get_json()
    except BadRequest:
        # Flask's own message quotes the decoder error; a plain one is enough.
        raise ApiError(400, "malformed JSON body") from None
    if not isinstance(body, dict):
        raise ApiError(422, "request body must be a JSON object")
    return body


@users_api.get("")
def list_users():
    limit = min(_int_query("limit", DEFAULT_LIMIT, minimum=1), MAX_LIMIT)
    offset = _int_query("offset", 0, minimum=0)
    users, total = directory().list(limit=limit, offset=offset)
    return jsonify(users=users, total=total, limit=limit, offset=offset)


@users_api.post("")
def add_user():
    body = _json_object()
    try:
        username = validate(body.get("username"))
    except InvalidUsername as exc:
        raise ApiError(422, str(exc)) from None
    try:
        user = directory().add(username)
    except UserExists:
        raise ApiError(409, f"username {username!r} is already taken") from None
    return jsonify(user), 201


@users_api.delete("/<username>")
def delete_user(username: str):
    try:
        directory().delete(username)
    except UserNotFound:
        raise ApiError(404, f"no user named {username!r}") from None
    return "", 204


@users_api.post("/generate")
def generate_users():
    count = _json_object().get("count")
    # bool is an int in Python; `{"count": true}` is not a number of users.
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_GENERATE:
        raise ApiError(422, f"count must be an integer from 1 to {MAX_GENERATE}")
    try:
        users = directory().generate(count)
    except GenerationFailed as exc:
        raise ApiError(503, f"{exc}; try again") from None
    return jsonify(users=users), 201
