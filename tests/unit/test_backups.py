"""Backups as data (plan/data/backups.py), the schema rule (plan/data/schema.py) and the backup
service on a scripted connector with a folder store: a dump that fails or is cut off
stores nothing, retention keeps what a release names, a damaged file is never restored."""

from __future__ import annotations

import gzip

import pytest

from deployctl.adapters.connector import CommandResult, ConnectionLost
from deployctl.config import LoadedConfig, parse_config
from deployctl.errors import ConfigError, ConnectError, DeployError, ExitCode
from deployctl.events import Recorder
from deployctl.plan.data import backups as bk
from deployctl.plan.data import schema
from deployctl.plan.lifecycle.releases import History, ReleaseRecord
from deployctl.services.data import backups
from deployctl.services.env import Env

CONFIG = """
app = "shop"
[services.web]
context = "web"
routed = true
[accessories.db]
image = "mariadb:11"
secrets = ["ROOT_PW"]
[accessories.db.env]
MARIADB_ROOT_PASSWORD_FILE = "/run/secrets/ROOT_PW"
[accessories.db.backup]
keep = 2
schedule = "@daily"
[accessories.pg]
image = "registry.example/postgres:16"
[accessories.cache]
image = "redis:7"
[accessories.cache.backup]
command = ["redis-cli", "--rdb", "-"]
[accessories.queue]
image = "rabbitmq:3"
[environments.local]
target = "local"
state_dir = "/srv/state"
accessories = ["db", "cache"]
[environments.two]
target = "local"
state_dir = "/srv/state"
accessories = ["db", "pg"]
[environments.two.rollout]
backup_before_migrate = true
"""


@pytest.fixture
def loaded(tmp_path):
    return LoadedConfig(tmp_path / "deploy.toml", parse_config(CONFIG))


# -- plan/backups ---------------------------------------------------------------------------

def test_the_dump_tool_follows_the_image_or_the_configured_command(loaded):
    accessories = loaded.config.accessories
    assert bk.dump_kind("db", accessories["db"], "mariadb:11") == bk.MARIADB
    assert bk.dump_kind("db", accessories["db"], "deployctl-standin/mariadb:bookworm") == bk.MARIADB
    assert bk.dump_kind("pg", accessories["pg"], "registry.example/postgres:16") == bk.POSTGRES
    assert bk.dump_kind("cache", accessories["cache"], "redis:7") == bk.COMMAND
    with pytest.raises(bk.BackupPlanError, match=r"accessories\.queue\.backup\.command: the image rabbitmq:3"):
        bk.dump_kind("queue", accessories["queue"], "rabbitmq:3")


def test_the_dump_argv_holds_no_password_the_script_reads_the_containers_env(loaded):
    argv = bk.dump_argv("shop-local-db", bk.MARIADB, loaded.config.accessories["db"])
    assert argv[:5] == ["docker", "exec", "shop-local-db", "sh", "-c"] and len(argv) == 6
    assert "MYSQL_PWD" in argv[5] and "--single-transaction" in argv[5] and "-p" not in argv[5].split()
    assert bk.dump_argv("c", bk.COMMAND, loaded.config.accessories["cache"]) == \
        ["docker", "exec", "c", "redis-cli", "--rdb", "-"]
    assert bk.restore_argv("db", "c", bk.MARIADB, loaded.config.accessories["db"])[:4] == \
        ["docker", "exec", "-i", "c"]
    with pytest.raises(bk.BackupPlanError, match=r"accessories\.cache\.backup\.restore_command: not set"):
        bk.restore_argv("cache", "c", bk.COMMAND, loaded.config.accessories["cache"])


PG_DUMP_TEXT = """SET client_min_messages = warning;
DROP DATABASE IF EXISTS "my shop";
CREATE DATABASE "my shop" WITH TEMPLATE = template0;
\\connect "my shop"
COPY public.notes (body) FROM stdin;
DROP DATABASE IF EXISTS kept;
\\.
"""


@pytest.mark.parametrize("server, drop", [("150020", 'DROP DATABASE IF EXISTS "my shop" WITH (FORCE);'),
                                          ("120018", 'DROP DATABASE IF EXISTS "my shop";')])
def test_a_postgres_restore_ends_the_sessions_holding_the_database_on_13_and_later(loaded, tmp_path, server, drop):
    """The restore script itself, run by sh with a `psql` that answers the version and records
    what it is fed: the dump's own DROP DATABASE (before its first \\connect) gets WITH (FORCE),
    a row of the data that reads the same does not; the password reaches psql's env only."""
    import os
    import subprocess

    fake = tmp_path / "psql"
    fake.write_text('#!/bin/sh\ncase "$*" in *server_version_num*) echo %s ;; *) env > "$FED.env"; cat > "$FED" ;; esac\n'
                    % server)
    fake.chmod(0o755)
    argv = bk.restore_argv("pg", "c", bk.POSTGRES, loaded.config.accessories["pg"])
    assert argv[:5] == ["docker", "exec", "-i", "c", "sh"] and "pw-value" not in " ".join(argv)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "FED": str(tmp_path / "fed"), "POSTGRES_PASSWORD": "pw-value"}
    done = subprocess.run(argv[4:], input=PG_DUMP_TEXT.encode(), env=env, capture_output=True, timeout=10)
    assert done.returncode == 0, done.stderr
    fed = (tmp_path / "fed").read_text().splitlines()
    assert fed[1] == drop and fed[5] == "DROP DATABASE IF EXISTS kept;" and len(fed) == 7
    assert "PGPASSWORD=pw-value" in (tmp_path / "fed.env").read_text().splitlines()


def test_ids_sort_by_time_and_name_the_release():
    first, second = bk.backup_id(1_780_000_000, "20260528-200640-abc1234"), bk.backup_id(1_780_000_060, None)
    assert first == "20260528-202640--20260528-200640-abc1234" and second.endswith("--no-release")
    assert first < second and bk.is_backup_id(first) and bk.is_backup_id(second)
    assert not bk.is_backup_id("../etc/passwd") and not bk.is_backup_id("20260528-202640--a/b")


def test_retention_keeps_the_newest_and_every_protected_one():
    ids = [f"2026010{d}-000000--r" for d in range(1, 6)]
    assert bk.to_prune(ids, None) == []
    assert bk.to_prune(ids, 2) == ids[:3]
    assert bk.to_prune(ids, 2, protected=[ids[0]]) == ids[1:3]


def test_the_backup_before_migrate_accessory_must_be_named_when_two_can_be_dumped(loaded):
    from deployctl.services.data.release_schema import check_settings

    with pytest.raises(ConfigError) as info:
        check_settings(Env.resolve(loaded, "two"))
    assert "environments.two.rollout.backup_accessory" in info.value.problems[0] and "db, pg" in info.value.problems[0]
    named = parse_config(CONFIG.replace("backup_before_migrate = true", 'backup_before_migrate = true\nbackup_accessory = "pg"'))
    assert bk.backup_accessory_for(named, "two") == "pg"
    other = parse_config(CONFIG.replace("backup_before_migrate = true", 'backup_before_migrate = true\nbackup_accessory = "cache"'))
    with pytest.raises(bk.BackupPlanError, match="not among the environment's accessories"):
        bk.backup_accessory_for(other, "two")


def test_a_schedule_that_is_not_cron_names_the_key():
    from deployctl.errors import ConfigError as Error

    bad = CONFIG.replace('schedule = "@daily"', 'schedule = "every night"')
    with pytest.raises((Error, ValueError)) as info:
        parse_config(bad)
    assert "schedule" in str(info.value) and "not a cron schedule" in str(info.value)


# -- plan/schema ----------------------------------------------------------------------------

def history(*records: dict) -> History:
    base = {"images": {}, "who": "t", "when": "2026-01-01T00:00:00Z"}
    return History(tuple(ReleaseRecord.from_dict({**base, **r}) for r in records))


R1, R2, R3 = "20260101-000000-aaaaaaa", "20260101-000100-bbbbbbb", "20260101-000200-ccccccc"
BACKUP = {"id": "20260101-000059--" + R1, "accessory": "db", "to": "/b"}


def test_decide_follows_the_schema_in_effect_not_the_live_releases_record():
    h = history({"release": R1, "action": "deploy", "outcome": "succeeded", "extra": {"schema": {"api": "1"}}},
                {"release": R2, "action": "deploy", "outcome": "succeeded", "previous": R1,
                 "extra": {"schema": {"api": "2"}, "backup": BACKUP}})
    refused = schema.decide(h, R1)
    assert refused.action == schema.REFUSE and "api 2" in refused.message and "api 1" in refused.message
    assert schema.decide(h, R1, accept=True).action == schema.PROCEED
    restore = schema.decide(h, R1, restore_data=True)
    assert (restore.action, restore.backup, restore.schema_after) == (schema.RESTORE, BACKUP, {"api": "1"})
    assert schema.decide(h, R1, automatic=True).action == schema.REFUSE
    # After `rollback --accept-schema` to R1 the database still holds 2: going to R2 needs nothing.
    accepted = history(*[{**vars(r)} for r in h.records],
                       {"release": R1, "action": "rollback", "outcome": "succeeded", "extra": {"schema": {"api": "2"}}})
    assert schema.decide(accepted, R2).action == schema.PROCEED


def test_unknown_schemas_are_no_difference():
    h = history({"release": R1, "action": "deploy", "outcome": "succeeded"},
                {"release": R2, "action": "deploy", "outcome": "succeeded", "extra": {"schema": {"api": "2"}}})
    assert schema.decide(h, R1).action == schema.PROCEED


# -- services/backups on a scripted connector --------------------------------------------------

class Conn:
    """Answers the accessory's inspect (running), the state files, and the dump as scripted."""

    host = "fake"

    def __init__(self, dump: list[bytes], rc: int = 0, lost: bool = False) -> None:
        self.dump, self.rc, self.lost, self.ran = dump, rc, lost, []

    def run(self, argv, *, stdin=None, timeout=None, on_line=None):  # type: ignore[no-untyped-def]
        self.ran.append((list(argv), stdin))
        if argv[:3] == ["docker", "container", "inspect"]:
            return CommandResult(0, "/shop-local-db|running|mariadb:11||t|id|0|0|shop-local=db,;\n", "")
        return CommandResult(0, "", "")

    def stream(self, argv, *, on_stdout, on_stderr):  # type: ignore[no-untyped-def]
        for chunk in self.dump:
            on_stdout(chunk)
        if self.lost:
            raise ConnectionLost("the connection went")
        if self.rc:
            on_stderr(b"mariadb-dump: Got error: 2013: Lost connection")
        return self.rc

    def read_file(self, path):  # type: ignore[no-untyped-def]
        return None


def take(loaded, conn, tmp_path, now):  # type: ignore[no-untyped-def]
    target = backups.target(Env.resolve(loaded, "local"), "db", str(tmp_path / "store"))
    return target, backups.take(Env.resolve(loaded, "local"), conn, target, Recorder(), now=now)


def test_a_backup_is_gzip_with_its_checksum_and_keep_prunes_the_oldest(loaded, tmp_path):
    made = [take(loaded, Conn([b"CREATE TABLE t;\n", b"INSERT 1;\n"]), tmp_path, 1_780_000_000 + i)[1]
            for i in range(3)]
    target = backups.target(Env.resolve(loaded, "local"), "db", str(tmp_path / "store"))
    assert backups.list_ids(target.store) == [m.id for m in made[1:]]  # keep = 2
    folder = tmp_path / "store" / "shop-local" / "db"
    data = (folder / f"{made[2].id}.sql.gz").read_bytes()
    assert gzip.decompress(data) == b"CREATE TABLE t;\nINSERT 1;\n"
    assert (folder / f"{made[2].id}.sql.gz").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("conn", [Conn([b"half a dump"], rc=2), Conn([b"half a dump"], lost=True)],
                         ids=["dump exits 2", "connection lost mid-dump"])
def test_a_failed_or_interrupted_dump_stores_nothing_and_keeps_the_earlier_backups(loaded, tmp_path, conn):
    _, first = take(loaded, Conn([b"ok"]), tmp_path, 1_780_000_000)
    with pytest.raises((DeployError, ConnectError)) as info:
        take(loaded, conn, tmp_path, 1_780_000_100)
    assert "nothing was stored" in (info.value.hint or "")
    if conn.lost:
        assert info.value.exit_code == ExitCode.CONNECT and "during the dump of db" in info.value.message
    else:
        assert "failed (exit 2)" in info.value.message and "Lost connection" in info.value.message
    folder = tmp_path / "store" / "shop-local" / "db"
    assert sorted(p.name for p in folder.iterdir()) == [f"{first.id}.json", f"{first.id}.sql.gz"]


def test_a_damaged_backup_is_never_restored(loaded, tmp_path):
    target, made = take(loaded, Conn([b"DATA"]), tmp_path, 1_780_000_000)
    path = tmp_path / "store" / "shop-local" / "db" / f"{made.id}.sql.gz"
    path.write_bytes(gzip.compress(b"OTHER"))
    conn = Conn([])
    with pytest.raises(DeployError, match="checksum mismatch"):
        backups.restore(Env.resolve(loaded, "local"), conn, target, made.id, Recorder())
    assert not [argv for argv, _ in conn.ran if "-i" in argv]  # no restore command ran


def test_a_restore_feeds_the_dump_on_stdin_never_on_argv(loaded, tmp_path):
    target, made = take(loaded, Conn([b"DATA"]), tmp_path, 1_780_000_000)
    conn = Conn([])
    backups.restore(Env.resolve(loaded, "local"), conn, target, made.id, Recorder())
    [(argv, stdin)] = [(a, s) for a, s in conn.ran if a[:3] == ["docker", "exec", "-i"]]
    assert stdin == b"DATA" and argv[3] == "shop-local-db"


def test_a_deploy_reverted_after_its_migrations_still_set_the_schema_in_effect():
    h = history({"release": R1, "action": "deploy", "outcome": "succeeded", "extra": {"schema": {"api": "1"}}},
                {"release": R2, "action": "deploy", "outcome": "succeeded", "previous": R1,
                 "extra": {"schema": {"api": "1"}}},
                {"release": R3, "action": "deploy", "outcome": "reverted", "previous": R2,
                 "extra": {"schema": {"api": "2"}}})
    assert schema.schema_in_effect(h) == {"api": "2"}  # R2 serves again, on the schema R3 migrated to
    refused = schema.decide(h, R1)
    assert refused.action == schema.REFUSE and "the database schema is api 2" in refused.message
