"""The Flask application factory."""

from __future__ import annotations

from flask import Flask

from .api import users_api
from .errors import register_error_handlers
from .health import health
from .migrate import Migration, load_migrations
from .settings import DatabaseSettings, ReleaseInfo

MAX_BODY_BYTES = 64 * 1024


def create_app(
    database: DatabaseSettings | None = None,
    release: ReleaseInfo | None = None,
    migrations: list[Migration] | None = None,
) -> Flask:
    app = Flask(__name__)
    app.config.update(
        DATABASE_SETTINGS=database or DatabaseSettings.from_env(),
        RELEASE=release or ReleaseInfo.from_env(),
        # Known at start so /readyz compares the database with the code that runs.
        MIGRATIONS=load_migrations() if migrations is None else migrations,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
    )
    app.json.sort_keys = False
    register_error_handlers(app)
    app.register_blueprint(health)
    app.register_blueprint(users_api)
    return app
