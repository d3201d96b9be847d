"""The Flask application factory."""

from __future__ import annotations

import os

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from .backend_client import BackendClient
from .errors import register_error_handlers
from .release import ReleaseInfo
from .secret_key import load_key
from .views import ui

MAX_BODY_BYTES = 64 * 1024


def create_app(config: dict | None = None, backend_client: BackendClient | None = None) -> Flask:
    env = os.environ
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=load_key(env),
        BACKEND_URL=env.get("BACKEND_URL", "http://127.0.0.1:8000"),
        BACKEND_CONNECT_TIMEOUT=float(env.get("BACKEND_CONNECT_TIMEOUT", "2")),
        BACKEND_READ_TIMEOUT=float(env.get("BACKEND_READ_TIMEOUT", "5")),
        RELEASE=ReleaseInfo.from_env(env),
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Off by default because local development is plain HTTP; set it where TLS terminates in front.
        SESSION_COOKIE_SECURE=env.get("FRONTEND_SECURE_COOKIES", "") == "1",
        # Tokens live as long as the session cookie, so a page left open for
        # hours still submits instead of failing with "form expired".
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.config.update(config or {})
    app.extensions["backend_client"] = backend_client or BackendClient(
        app.config["BACKEND_URL"],
        connect_timeout=app.config["BACKEND_CONNECT_TIMEOUT"],
        read_timeout=app.config["BACKEND_READ_TIMEOUT"],
    )
    CSRFProtect(app)
    register_error_handlers(app)
    app.register_blueprint(ui)

    @app.context_processor
    def _release():
        return {"release": app.config["RELEASE"]}

    return app
