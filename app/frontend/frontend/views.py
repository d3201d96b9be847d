"""The pages: list, add, generate, delete; plus health and version for machines."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, request, url_for

from .backend_client import BackendClient, BackendRejected, BackendUnavailable
from .forms import AddUserForm, DeleteForm, GenerateForm

PAGE_SIZE = 50

ui = Blueprint("ui", __name__)


def backend() -> BackendClient:
    return current_app.extensions["backend_client"]


def _back_to_list():
    # 303 so the browser follows with a GET: reloading the list never re-posts a form.
    page = request.args.get("page", type=int)
    return redirect(url_for("ui.index", page=page) if page and page > 1 else url_for("ui.index"), code=303)


def _flash_form_errors(form) -> None:
    for errors in form.errors.values():
        for message in errors:
            flash(message, "error")


@ui.get("/")
def index():
    page = max(request.args.get("page", 1, type=int), 1)
    listing = backend().list_users(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    total = listing["total"]
    return render_template(
        "users.html",
        users=listing["users"],
        total=total,
        page=page,
        has_previous=page > 1,
        has_next=page * PAGE_SIZE < total,
        add_form=AddUserForm(),
        generate_form=GenerateForm(),
    )


@ui.post("/users")
def add_user():
    form = AddUserForm()
    if not form.validate_on_submit():
        _flash_form_errors(form)
        return _back_to_list()
    try:
        user = backend().add_user(form.username.data)
    except BackendRejected as exc:
        flash(_sentence(exc.message), "error")
    else:
        flash(f"Added {user['username']}.", "success")
    return _back_to_list()


@ui.post("/users/generate")
def generate_users():
    form = GenerateForm()
    if not form.validate_on_submit():
        _flash_form_errors(form)
        return _back_to_list()
    try:
        users = backend().generate_users(form.count.data)
    except BackendRejected as exc:
        flash(_sentence(exc.message), "error")
    else:
        names = ", ".join(u["username"] for u in users)
        flash(f"Generated {len(users)} username{'s' if len(users) != 1 else ''}: {names}.", "success")
    return _back_to_list()


@ui.post("/users/<username>/delete")
def delete_user(username: str):
    form = DeleteForm()
    if not form.validate_on_submit():  # pragma: no cover - CSRFProtect answers first
        _flash_form_errors(form)
        return _back_to_list()
    try:
        backend().delete_user(username)
    except BackendRejected as exc:
        if exc.status == 404:
            flash(f"{username} was already deleted.", "info")
        else:
            flash(_sentence(exc.message), "error")
    else:
        flash(f"Deleted {username}.", "success")
    return _back_to_list()


@ui.get("/healthz")
def healthz():
    return jsonify(status="ok")


@ui.get("/version")
def version():
    """This release and the backend it talks to, so a deploy can be checked from outside."""
    body = {"frontend": current_app.config["RELEASE"].as_dict()}
    try:
        body["backend"] = backend().version()
    except (BackendUnavailable, BackendRejected) as exc:
        body["backend"] = {"error": str(exc)}
        return jsonify(body), 503
    return jsonify(body)


def _sentence(message: str) -> str:
    message = message[:1].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."
