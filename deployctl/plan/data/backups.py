"""Backups of accessories as data (docs/backups.md): which dump tool an accessory's image
gets, the `docker exec` argv that dumps it and the one that restores it, a backup's id,
its manifest and where it is stored, and which old backups retention removes.

The dump runs INSIDE the accessory's container (`docker exec`), so the database password
never leaves the host: the shell script below reads it from the container's own env (the
official images' MARIADB_ROOT_PASSWORD[_FILE], MYSQL_ROOT_PASSWORD[_FILE],
POSTGRES_PASSWORD[_FILE]) and hands it to the client through its environment variable
(MYSQL_PWD, PGPASSWORD), never through an argument. The dump comes back on stdout; the
machine running deployctl compresses it (gzip) and checksums it (sha256) as it streams.
"""

from __future__ import annotations

import json
import posixpath
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..lifecycle.names import Names

if TYPE_CHECKING:
    from ...config.models import Accessory, Config

MARIADB, MYSQL, POSTGRES, COMMAND = "mariadb", "mysql", "postgres", "command"
SUFFIX = ".sql.gz"  # a command's dump is whatever it prints; the name stays one shape
MANIFEST = ".json"
DEFAULT_TO = ".deployctl/backups"  # relative to deploy.toml's folder

# The database's own password, from the container's env, into the client's env variable.
_MYSQL_PASSWORD = (
    'f="${MARIADB_ROOT_PASSWORD_FILE:-${MYSQL_ROOT_PASSWORD_FILE:-}}"\n'
    'if [ -n "$f" ]; then MYSQL_PWD="$(cat "$f")"; else MYSQL_PWD="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}"; fi\n'
    "export MYSQL_PWD\n"
    'client="$(command -v mariadb || command -v mysql)"\n')
# Every database but the server's own, each with DROP DATABASE first: a restore puts the
# databases back as they were (tables a later migration added go too). --single-transaction:
# a consistent snapshot of InnoDB tables without locking the app out.
MYSQL_DUMP = _MYSQL_PASSWORD + (
    'dbs="$("$client" -uroot -N -B -e "SHOW DATABASES" | grep -Ev "^(information_schema|performance_schema|mysql|sys)$")"\n'
    '[ -n "$dbs" ] || { echo "no database to dump" >&2; exit 3; }\n'
    'dump="$(command -v mariadb-dump || command -v mysqldump)"\n'
    'exec "$dump" -uroot --single-transaction --routines --events --triggers --add-drop-database --databases $dbs\n')
MYSQL_RESTORE = _MYSQL_PASSWORD + 'exec "$client" -uroot\n'
_PG_ENV = (
    'if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then PGPASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"; '
    'else PGPASSWORD="${POSTGRES_PASSWORD:-}"; fi\n'
    'export PGPASSWORD; u="${POSTGRES_USER:-postgres}"\n')
# --create --clean: the restore drops and creates the database (connected to `postgres`).
PG_DUMP = _PG_ENV + 'exec pg_dump -U "$u" --clean --if-exists --create -d "${POSTGRES_DB:-$u}"\n'
# PostgreSQL refuses to drop a database anyone is connected to ("is being accessed by other
# users"), and a running app always is: on PostgreSQL 13+ the dump's own DROP DATABASE (in
# its header, before its first `\connect`; never a line of the data) gets WITH (FORCE),
# which ends those sessions in the same statement (an app's pool reconnects to the restored
# database). Found by tests/integration/test_backups_postgres.py.
PG_RESTORE = _PG_ENV + (
    'v="$(psql -U "$u" -d postgres -XtAq -c "SHOW server_version_num")" || exit 3\n'
    'force=""; [ "$v" -ge 130000 ] && force=" WITH (FORCE)"\n'
    "sed '/^\\\\connect /,$!s/^\\(DROP DATABASE IF EXISTS .*\\);$/\\1'\"$force\"';/' | "
    'psql -U "$u" -d postgres -v ON_ERROR_STOP=1 -q\n')


class BackupPlanError(ValueError):
    """deploy.toml asks for a backup deployctl cannot plan; the message names the key."""


def dump_kind(name: str, accessory: Accessory, image: str) -> str:
    """mariadb | mysql | postgres (by the image's name) | command (backup.command)."""
    backup = accessory.backup
    if backup is not None and backup.command:
        return COMMAND
    repo = image.rsplit("/", 1)[-1].split("@")[0].split(":")[0].lower()
    for kind in (MARIADB, MYSQL, POSTGRES):
        if kind in repo:
            return kind
    raise BackupPlanError(
        f"accessories.{name}.backup.command: the image {image or '(built from the project)'} is not MariaDB, MySQL "
        "or PostgreSQL, so deployctl does not know how to dump it; set a command that prints the dump on stdout "
        "(and restore_command, reading it on stdin)")


def dump_argv(container: str, kind: str, accessory: Accessory) -> list[str]:
    if kind == COMMAND:
        assert accessory.backup is not None and accessory.backup.command
        return ["docker", "exec", container, *accessory.backup.command]
    return ["docker", "exec", container, "sh", "-c", PG_DUMP if kind == POSTGRES else MYSQL_DUMP]


def restore_argv(name: str, container: str, kind: str, accessory: Accessory) -> list[str]:
    """Reads the (uncompressed) dump on stdin inside the container."""
    if kind == COMMAND:
        if accessory.backup is None or not accessory.backup.restore_command:
            raise BackupPlanError(f"accessories.{name}.backup.restore_command: not set, so deployctl cannot restore "
                                  "a dump made by backup.command; set a command that reads it on stdin")
        return ["docker", "exec", "-i", container, *accessory.backup.restore_command]
    return ["docker", "exec", "-i", container, "sh", "-c", PG_RESTORE if kind == POSTGRES else MYSQL_RESTORE]


def backup_id(now: float, release: str | None) -> str:
    """Sorts by time; names the release that was live when it was taken."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + "--" + (release or "no-release")


def is_backup_id(value: str) -> bool:
    stamp, sep, release = value.partition("--")
    return bool(sep) and len(stamp) == 15 and stamp[8] == "-" and stamp.replace("-", "").isdigit() and \
        bool(release) and "/" not in release and ".." not in release


def base_location(config: Config, accessory: str, given: str | None) -> str:
    """--to, else backup.to, else DEFAULT_TO."""
    spec = config.accessories[accessory].backup
    return given or (spec.to if spec is not None and spec.to else DEFAULT_TO)


def location(config: Config, env_name: str, accessory: str, base: str) -> str:
    """Each app, environment and accessory in its own folder (prefix) under `base`."""
    return posixpath.join(base.rstrip("/"), Names(config.app, env_name).prefix, accessory)


def split_s3(url: str) -> tuple[str, str]:
    """s3://bucket/prefix -> (bucket, prefix) (prefix without slashes at its ends)."""
    rest = url[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise BackupPlanError(f"{url!r}: give s3://BUCKET/PREFIX")
    return bucket, prefix.strip("/")


@dataclass(frozen=True)
class Manifest:
    """Written after the dump (its presence marks a complete backup), beside it."""

    id: str
    app: str
    env: str
    accessory: str
    kind: str
    release: str | None
    created: str  # RFC 3339
    sha256: str  # of the compressed file
    size: int  # bytes, compressed
    host: str
    reason: str = "manual"  # manual | before-migrate (of a release) | schedule

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), sort_keys=True, indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Manifest":
        raw: dict[str, Any] = json.loads(data)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})


def to_prune(ids: Iterable[str], keep: int | None, protected: Sequence[str] = ()) -> list[str]:
    """The backups past the newest `keep`, oldest first; never one in `protected` (a backup
    a release's record names for `rollback --restore-data`)."""
    if keep is None:
        return []
    ordered = sorted(set(ids), reverse=True)
    return sorted(i for i in ordered[keep:] if i not in protected)


def backup_accessory_for(config: Config, env_name: str) -> str:
    """The accessory rollout.backup_before_migrate backs up: rollout.backup_accessory, else
    the environment's one accessory that can be dumped."""
    environment = config.environments[env_name]
    key = f"environments.{env_name}.rollout.backup_accessory"
    named = environment.rollout.backup_accessory
    if named is not None:
        if named not in environment.accessories:
            raise BackupPlanError(f"{key}: {named!r} is not among the environment's accessories "
                                  f"({', '.join(environment.accessories) or 'none'})")
        return named
    dumpable = []
    for name in environment.accessories:
        accessory = config.accessories[name]
        try:
            dump_kind(name, accessory, accessory.image or "")
            dumpable.append(name)
        except BackupPlanError:
            pass
    if len(dumpable) != 1:
        raise BackupPlanError(
            f"environments.{env_name}.rollout.backup_before_migrate: needs one database accessory to back up; the "
            f"environment has {len(dumpable)} ({', '.join(dumpable) or 'none'}): set {key}")
    return dumpable[0]
