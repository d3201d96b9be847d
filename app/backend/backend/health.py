"""Liveness, readiness and version endpoints for Docker, deployctl and people."""

from __future__ import annotations

import pymysql
from flask import Blueprint, current_app, jsonify

from . import db
from .errors import error_response
from .migrate import applied_checksums, pending_migrations

health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz():
    # Liveness only: a database outage must not make Docker or an orchestrator
    # restart a process that is itself fine.
    return jsonify(status="ok")


@health.get("/readyz")
def readyz():
    settings = current_app.config["DATABASE_SETTINGS"]
    try:
        conn = db.connect(settings)
    except pymysql.err.MySQLError as exc:
        return _not_ready(f"database unreachable: {db.describe_error(exc)}")
    try:
        with conn.cursor() as cursor:
            applied = applied_checksums(cursor)
    except pymysql.err.MySQLError as exc:
        return _not_ready(f"database query failed: {db.describe_error(exc)}")
    finally:
        conn.close()
    if applied is None:
        return _not_ready("schema not migrated: run python -m backend.migrate")
    pending = pending_migrations(applied, current_app.config["MIGRATIONS"])
    if pending:
        labels = ", ".join(m.label for m in pending)
        return _not_ready(f"schema out of date: pending migrations {labels}")
    return jsonify(status="ready", schema_version=max(applied, default=None))


@health.get("/version")
def version():
    return jsonify(current_app.config["RELEASE"].as_dict())


def _not_ready(reason: str):
    return error_response(503, reason, status="not ready")
