"""Fixtures for the backend suite: a real MariaDB, never SQLite.

Self-contained on purpose: this suite also runs inside the backend's test
image, where the repository's tests/conftest.py does not exist.
"""

from __future__ import annotations

import socket

import pytest

from backend import db
from backend.app import create_app
from backend.settings import ReleaseInfo
from backend.testing import DatabaseServerUnavailable, server_settings, throwaway_database

RELEASE = ReleaseInfo(release="20261127-101500-abc1234", revision="abc1234def5678")


@pytest.fixture(scope="session")
def db_server():
    return server_settings()


@pytest.fixture(scope="session")
def database(db_server):
    """One migrated throwaway database for the session, dropped at the end."""
    try:
        with throwaway_database(db_server, "test_backend") as settings:
            yield settings
    except DatabaseServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def fresh_database(db_server):
    """An empty, unmigrated database of the test's own."""
    try:
        with throwaway_database(db_server, "test_fresh", migrated=False) as settings:
            yield settings
    except DatabaseServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def clean_database(database):
    conn = db.connect(database)
    try:
        with conn.cursor() as cursor:
            cursor.execute("DELETE FROM users")
    finally:
        conn.close()
    return database


@pytest.fixture
def app(clean_database):
    return create_app(database=clean_database, release=RELEASE)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def closed_port():
    """A local TCP port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
