"""Apply the ordered SQL migrations: `python -m backend.migrate`.

Each file in backend/migrations/ named NNNN_description.sql is applied once, in
order, and recorded in `schema_migrations` with a checksum. Runs are serialised
by a MySQL named lock, so two deploys (or two hosts) migrating at the same time
are safe: the second waits, then finds nothing left to do.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import pymysql

from . import db
from .settings import DatabaseSettings, SettingsError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_FILENAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

# DDL on a large table can run for minutes; the API's 5 s read timeout would
# abort it half-way, so the migrator waits far longer for each statement.
MIGRATION_READ_TIMEOUT_SECONDS = 600
DEFAULT_LOCK_TIMEOUT_SECONDS = 120
# Short GET_LOCK waits in a loop keep each round trip well inside the read
# timeout and let us report who holds the lock while we wait.
_LOCK_POLL_SECONDS = 2
MISSING_TABLE = 1146

CREATE_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version CHAR(4) CHARACTER SET ascii NOT NULL,
    name VARCHAR(255) NOT NULL,
    checksum CHAR(64) CHARACTER SET ascii NOT NULL,
    applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""


class MigrationError(Exception):
    """A migration could not be applied; the message says which and why."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"

    def statements(self) -> list[str]:
        return split_statements(self.sql)


def split_statements(sql: str) -> list[str]:
    """Split on semicolons that end a line; `--` comment lines are dropped.

    Deliberately simple: our migrations are plain DDL/DML, never procedures
    with their own delimiters.
    """
    statements, current = [], []
    for line in sql.splitlines():
        if line.strip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).strip().rstrip(";").strip())
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return [s for s in statements if s]


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILENAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files must be named NNNN_description.sql")
        version = match["version"]
        if version in migrations:
            raise MigrationError(f"{path.name}: version {version} is used by two files")
        migrations[version] = Migration(version, match["name"], path.read_text(encoding="utf-8"))
    return [migrations[v] for v in sorted(migrations)]


def applied_checksums(cursor) -> dict[str, str] | None:
    """version -> checksum, or None when the schema was never migrated."""
    try:
        cursor.execute("SELECT version, checksum FROM schema_migrations")
    except pymysql.err.ProgrammingError as exc:
        if exc.args and exc.args[0] == MISSING_TABLE:
            return None
        raise
    return {row["version"]: row["checksum"] for row in cursor.fetchall()}


def pending_migrations(applied: dict[str, str] | None, migrations: Iterable[Migration]) -> list[Migration]:
    """Migrations not applied yet. Versions the code does not know (applied by a
    newer release before a rollback) are not an error: migrations must stay
    backward compatible so that the previous release keeps working."""
    applied = applied or {}
    return [m for m in migrations if m.version not in applied]


def _verify_checksums(applied: dict[str, str], migrations: Iterable[Migration]) -> None:
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None and recorded != migration.checksum:
            raise MigrationError(
                f"{migration.label}.sql was changed after it was applied; "
                "add a new migration instead of editing an applied one"
            )


def lock_name(settings: DatabaseSettings) -> str:
    # Named locks are server-wide; scoping by schema lets two databases on one
    # server migrate independently. MySQL caps lock names at 64 characters.
    return f"backend.migrate:{settings.name}"[:64]


def _acquire_lock(cursor, name: str, timeout: float, log: Callable[[str], None]) -> None:
    deadline = time.monotonic() + timeout
    while True:
        wait = max(0, min(_LOCK_POLL_SECONDS, deadline - time.monotonic()))
        cursor.execute("SELECT GET_LOCK(%s, %s) AS got", (name, wait))
        got = cursor.fetchone()["got"]
        if got == 1:
            return
        if got is None:
            raise MigrationError(f"GET_LOCK({name!r}) failed on the server")
        if time.monotonic() >= deadline:
            raise MigrationError(
                f"timed out after {timeout:g}s waiting for migration lock {name!r} "
                "(another migration is still running)"
            )
        cursor.execute("SELECT IS_USED_LOCK(%s) AS holder", (name,))
        log(f"waiting for migration lock {name!r} held by connection {cursor.fetchone()['holder']}")


def migrate(
    settings: DatabaseSettings,
    *,
    migrations: list[Migration] | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Apply what is pending; return the labels of the migrations applied."""
    migrations = load_migrations() if migrations is None else migrations
    conn = db.connect(settings, read_timeout=MIGRATION_READ_TIMEOUT_SECONDS)
    try:
        with conn.cursor() as cursor:
            name = lock_name(settings)
            _acquire_lock(cursor, name, lock_timeout, log)
            try:
                return _apply_pending(cursor, migrations, log)
            finally:
                cursor.execute("SELECT RELEASE_LOCK(%s)", (name,))
    finally:
        conn.close()


def _apply_pending(cursor, migrations: list[Migration], log: Callable[[str], None]) -> list[str]:
    cursor.execute(CREATE_SCHEMA_MIGRATIONS)
    applied = applied_checksums(cursor) or {}
    _verify_checksums(applied, migrations)
    done = []
    for migration in pending_migrations(applied, migrations):
        # MySQL commits DDL implicitly, so a migration cannot be rolled back as
        # a whole; it is recorded only after its last statement succeeded.
        for number, statement in enumerate(migration.statements(), start=1):
            try:
                cursor.execute(statement)
            except pymysql.err.MySQLError as exc:
                raise MigrationError(
                    f"{migration.label}.sql statement {number} failed: {db.describe_error(exc)}"
                ) from exc
        cursor.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
            (migration.version, migration.name, migration.checksum),
        )
        log(f"applied {migration.label}")
        done.append(migration.label)
    if not done:
        log("schema is up to date")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.migrate", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=DEFAULT_LOCK_TIMEOUT_SECONDS,
        help="seconds to wait for another migration to finish (default %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        settings = DatabaseSettings.from_env()
        migrate(settings, lock_timeout=args.lock_timeout, log=lambda msg: print(f"migrate: {msg}", flush=True))
    except (SettingsError, MigrationError) as exc:
        print(f"migrate: error: {exc}", file=sys.stderr)
        return 1
    except pymysql.err.MySQLError as exc:
        print(
            f"migrate: error: database {settings.name!r} at {settings.host}:{settings.port}: {db.describe_error(exc)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through main() and by the image
    sys.exit(main())
