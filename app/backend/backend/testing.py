"""Throwaway databases for the backend's and the frontend's test suites.

Lives in the package (not in a conftest) so both suites share one copy, both
from the repository root and inside a service's test image.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from dataclasses import replace
from typing import Iterator, Mapping

import pymysql

from . import db
from .migrate import migrate
from .settings import DatabaseSettings


class DatabaseServerUnavailable(Exception):
    """The test MariaDB cannot be reached; the message says how to start it."""


def server_settings(env: Mapping[str, str] | None = None) -> DatabaseSettings:
    """The test server from the TEST_DATABASE_* variables of docs/TEAM-CONTRACT.md."""
    env = os.environ if env is None else env
    return DatabaseSettings(
        host=env.get("TEST_DATABASE_HOST", "127.0.0.1"),
        port=int(env.get("TEST_DATABASE_PORT", "3306")),
        name="",
        user=env.get("TEST_DATABASE_USER", "deployctl"),
        password=env.get("TEST_DATABASE_PASSWORD", "deployctl-test"),
    )


@contextmanager
def throwaway_database(
    server: DatabaseSettings, prefix: str = "test", *, migrated: bool = True
) -> Iterator[DatabaseSettings]:
    """Create a uniquely named database, optionally migrated; drop it on exit."""
    settings = replace(server, name=f"{prefix}_{secrets.token_hex(6)}")
    try:
        admin = db.connect(server, database=False)
    except pymysql.err.MySQLError as exc:
        raise DatabaseServerUnavailable(
            f"cannot connect to the test MariaDB at {server.host}:{server.port} as {server.user}: "
            f"{db.describe_error(exc)}. Start it with `scripts/testenv.sh up`, or point "
            "TEST_DATABASE_HOST/PORT/USER/PASSWORD at one."
        ) from exc
    try:
        with admin.cursor() as cursor:
            # Identifiers cannot be parameters; the name is ours and hex-suffixed.
            cursor.execute(f"CREATE DATABASE `{settings.name}` CHARACTER SET utf8mb4")
        try:
            if migrated:
                migrate(settings, log=lambda _msg: None)
            yield settings
        finally:
            with admin.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{settings.name}`")
    finally:
        admin.close()
