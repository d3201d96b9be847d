"""Print the database schema's version: `python -m backend.schema_version`.

The version is the highest migration applied (`schema_migrations`, written by
backend.migrate), "0000" for a database never migrated. deployctl runs this after
the migrations of every deploy (deploy.toml: services.backend.schema_version) and
records it with the release, so that a rollback across a migration is noticed.
"""

from __future__ import annotations

import sys

import pymysql

from . import db
from .migrate import applied_checksums
from .settings import DatabaseSettings, SettingsError

NEVER_MIGRATED = "0000"


def current_version(settings: DatabaseSettings) -> str:
    conn = db.connect(settings)
    try:
        with conn.cursor() as cursor:
            applied = applied_checksums(cursor)
    finally:
        conn.close()
    return max(applied) if applied else NEVER_MIGRATED


def main(argv: list[str] | None = None) -> int:
    try:
        settings = DatabaseSettings.from_env()
        print(current_version(settings), flush=True)
    except SettingsError as exc:
        print(f"schema_version: error: {exc}", file=sys.stderr)
        return 1
    except pymysql.err.MySQLError as exc:
        print(f"schema_version: error: database {settings.name!r} at {settings.host}:{settings.port}: "
              f"{db.describe_error(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through main() and by the image
    sys.exit(main(sys.argv[1:]))
