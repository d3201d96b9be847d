"""Connections to MySQL/MariaDB through pymysql."""

from __future__ import annotations

import pymysql
import pymysql.cursors

from .settings import (
    CONNECT_TIMEOUT_SECONDS,
    READ_TIMEOUT_SECONDS,
    WRITE_TIMEOUT_SECONDS,
    DatabaseSettings,
)

# MySQL error code for a unique-key violation.
DUPLICATE_ENTRY = 1062


def connect(
    settings: DatabaseSettings,
    *,
    database: bool = True,
    read_timeout: float = READ_TIMEOUT_SECONDS,
) -> pymysql.connections.Connection:
    """Open one connection; `database=False` connects without selecting a schema."""
    return pymysql.connect(
        host=settings.host,
        port=settings.port,
        user=settings.user,
        password=settings.password,
        database=settings.name if database else None,
        charset="utf8mb4",
        autocommit=True,
        # TIMESTAMP columns are returned in the session time zone; UTC makes
        # the API's "Z" suffix true whatever the server's default is.
        init_command="SET time_zone = '+00:00'",
        cursorclass=pymysql.cursors.DictCursor,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=read_timeout,
        write_timeout=WRITE_TIMEOUT_SECONDS,
    )


def is_duplicate_entry(exc: pymysql.err.IntegrityError) -> bool:
    return bool(exc.args) and exc.args[0] == DUPLICATE_ENTRY


def describe_error(exc: pymysql.err.MySQLError) -> str:
    """`(code) message` for a server error, the class name when there is no message."""
    if len(exc.args) >= 2:
        return f"({exc.args[0]}) {exc.args[1]}"
    return str(exc) or type(exc).__name__
