"""Backups of a real MariaDB accessory and rollbacks that know the schema (issue 25, items 4
and 5), on this machine's engine, in one walk through phases (each deploy costs seconds):

1. deploy v1 (its migration makes `items`; its schema_version prints 1, recorded);
2. backup to a folder, delete rows, restore (--verify first): the rows are back; the same
   through an SSH connector (sshd in front of this engine); the schedule
   (`[accessories.db.backup] schedule`) as the host's job `backup-db`, run now through the
   scheduler (`jobs run`: the very runner, lock and script the schedule fires): its run in
   `deployctl jobs`, its dump in `backup list` beside the others, `keep` applied there, a
   run's leftovers never listed, and a restore from it bringing deleted rows back (by the
   CLI, then read from the host's folder over SSH);
3. the same through S3 (moto's server): backup, list --json, delete, restore;
   S3 unreachable: a clear error (exit 4), nothing stored, the folder's backups untouched;
4. deploy v2 with rollout.backup_before_migrate (its migration adds a column; schema 2),
   a row written under v2;
5. `rollback`: refused naming both schemas (exit 6), v2 still live and its row still there;
6. `rollback --restore-data --yes`: v1 live, the v1 rows back, the column gone, schema 1.

The password never reaches an argv: every `docker` argv deployctl ran is checked.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import pymysql
import pytest

from deployctl.adapters.ssh import SSHConnector
from deployctl.config import load_config
from deployctl.errors import ExitCode
from deployctl.events import Recorder
from deployctl.services.data import backups
from deployctl.services.env import Env
from tests.integration.deploy_fixtures import (PROBE, PROXY_STANDIN, _content_tag, docker, free_port,
                                               remove_app_with_data, unique_app)
from tests.integration.test_accessory_features import Cli
from tests.support.moto_server import start_moto_server

pytestmark = pytest.mark.integration
ROOT_PASSWORD = "bk-r00t-Sekr3t-value"

SCHEMA_PY = '''
import os, sys
import pymysql

TARGET = int(os.environ["SCHEMA_TARGET"])
MIGRATIONS = {
    1: ["CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))", "CREATE TABLE meta (v INT)",
        "INSERT INTO meta VALUES (1)"],
    2: ["ALTER TABLE items ADD COLUMN price INT NOT NULL DEFAULT 0", "UPDATE meta SET v = 2"],
}


def connect():
    password = open(os.environ["DB_ROOT_PASSWORD_FILE"]).read().strip()
    return pymysql.connect(host="db", user="root", password=password, database="shop", autocommit=True)


def version(cur):
    cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'shop' AND table_name = 'meta'")
    if cur.fetchone()[0] == 0:
        return 0
    cur.execute("SELECT v FROM meta")
    return cur.fetchone()[0]


with connect() as conn, conn.cursor() as cur:
    if sys.argv[1] == "migrate":
        for n in range(version(cur) + 1, TARGET + 1):
            for sql in MIGRATIONS[n]:
                cur.execute(sql)
    else:
        print(version(cur))
'''


# The probe image the `probe_images` fixture builds, by its content tag (the fixed
# `deployctl-test/probe:good` this test named exists on no fresh machine since d1ca74d: a
# fresh-clone rehearsal on 2026-12-06 failed its build on it).
PROBE_GOOD = f"deployctl-test/probe:good-{_content_tag(PROBE)}"


def write_project(root: Path, app: str, port: int, *, schema: int, backup_dir: Path, before_migrate: bool,
                  scheduler: str) -> Path:
    web = root / "web"
    web.mkdir(parents=True, exist_ok=True)
    if not (web / "pymysql").exists():  # pure Python: copied from this venv, no pip in the image
        shutil.copytree(Path(pymysql.__file__).parent, web / "pymysql",
                        ignore=shutil.ignore_patterns("__pycache__"))
    (web / "schema.py").write_text(SCHEMA_PY)
    (web / "Dockerfile").write_text(f"FROM {PROBE_GOOD}\nENV SCHEMA_TARGET={schema}\n"
                                    "COPY pymysql /probe/pymysql\nCOPY schema.py /probe/schema.py\n")
    config = root / "deploy.toml"
    config.write_text(textwrap.dedent(f"""
        app = "{app}"
        [services.web]
        context = "web"
        routed = true
        verify_path = "/version"
        secrets = ["DB_ROOT_PASSWORD"]
        migrate = ["python", "/probe/schema.py", "migrate"]
        schema_version = ["python", "/probe/schema.py", "version"]
        [services.web.healthcheck]
        path = "/healthz"
        timeout = 30
        [proxy]
        image = "{PROXY_STANDIN}"
        [accessories.db]
        image = "deployctl-standin/mariadb:bookworm"
        volumes = ["data:/var/lib/mysql"]
        secrets = ["DB_ROOT_PASSWORD"]
        [accessories.db.env]
        MARIADB_ROOT_PASSWORD_FILE = "/run/secrets/DB_ROOT_PASSWORD"
        MARIADB_DATABASE = "shop"
        [accessories.db.healthcheck]
        command = ["healthcheck.sh", "--connect"]
        interval = 0.5
        timeout = 120
        [accessories.db.backup]
        to = "{backup_dir}"
        keep = 5
        schedule = "30 3 * * *"
        [scheduler]
        image = "{scheduler}"
        [environments.local]
        target = "local"
        proxy_port = {port}
        state_dir = "{root / 'state'}"
        accessories = ["db"]
        [environments.local.rollout]
        guard_window = 0
        drain = 0.2
        warm_window = 0
        backup_before_migrate = {'true' if before_migrate else 'false'}
        """))
    return config


def sql(container: str, query: str) -> str:
    return docker("exec", container, "mariadb", "-uroot", "shop", "-N", "-B", "-e", query)


@pytest.fixture
def project(tmp_path, standin_images, probe_images, scheduler_image, capsys, monkeypatch):
    app = unique_app()
    monkeypatch.setenv("DB_ROOT_PASSWORD", ROOT_PASSWORD)
    port = free_port()
    config = write_project(tmp_path, app, port, schema=1, backup_dir=tmp_path / "backups", before_migrate=False,
                           scheduler=scheduler_image)
    yield app, config, port, Cli(config, capsys, monkeypatch)
    remove_app_with_data(app)


@pytest.fixture
def moto(tmp_path):
    server = start_moto_server(tmp_path)
    yield server
    server.stop()



def test_backup_restore_and_a_rollback_across_a_migration(project, moto, ssh_host, tmp_path, monkeypatch,
                                                          scheduler_image):
    app, config, port, cli = project
    db = f"{app}-local-db"
    folder = tmp_path / "backups"

    # 1. v1 deployed: its migration made `items`, its schema (1) is recorded.
    assert cli("build", "--tag", "v1")[0] == 0
    code, out = cli("deploy", "--env", "local")
    assert code == 0, out
    sql(db, "INSERT INTO items VALUES (1, 'apple'), (2, 'pear')")

    # 2. To a folder: backup, delete, restore (verified first in a throwaway copy).
    taken = cli.result("accessory", "backup", "db", "--env", "local")
    backup = taken["backup"]
    assert backup["id"].split("--")[1].startswith("2") and backup["kind"] == "mariadb", backup
    stored = folder / f"{app}-local" / "db"
    assert sorted(p.name for p in stored.iterdir()) == [f"{backup['id']}.json", f"{backup['id']}.sql.gz"]
    sql(db, "DELETE FROM items WHERE id = 2")
    code, out = cli("accessory", "backup", "restore", "db", backup["id"], "--env", "local")
    assert code == ExitCode.DEPLOY_FAILED and "needs its environment's name typed" in out, out  # no TTY, no --yes
    assert sql(db, "SELECT COUNT(*) FROM items") == "1"
    code, out = cli("accessory", "backup", "restore", "db", backup["id"], "--env", "local", "--yes", "--verify")
    assert code == 0, out
    assert "the dump loads" in out
    assert sql(db, "SELECT name FROM items ORDER BY id") == "apple\npear"
    assert docker("ps", "-aq", "--filter", f"name={db}-verify-") == ""  # the throwaway copy is gone
    assert docker("volume", "ls", "-q", "--filter", f"name={app}-local-db-data-verify") == ""

    # 2b. The same service calls over SSH (sshd in front of this engine): the dump streams back
    # through an SSH channel, the restore goes in on the channel's stdin.
    loaded = load_config(config)
    target = backups.target(Env.resolve(loaded, "local"), "db", str(tmp_path / "over-ssh"))
    conn = SSHConnector(ssh_host.host, port=ssh_host.port, user=ssh_host.user, key_file=ssh_host.key_file,
                        known_hosts=ssh_host.known_hosts_file).connect()
    try:
        over_ssh = backups.take(Env.resolve(loaded, "local"), conn, target, Recorder())
        sql(db, "DELETE FROM items")
        backups.restore(Env.resolve(loaded, "local"), conn, target, over_ssh.id, Recorder())
    finally:
        conn.close()
    assert over_ssh.host == conn.host and sql(db, "SELECT name FROM items ORDER BY id") == "apple\npear"

    # 2c. The schedule runs on the host: the job backup-db, fired now through the scheduler
    # (the runner, lock and script a due minute runs). Its folder already holds five older
    # backups (keep = 5), a dump a run cut short left without its manifest, and a `.part`.
    on_host = next((tmp_path / "state").glob(f"**/{app}/local")) / "backups" / "db"
    on_host.mkdir(parents=True)
    planted = [f"2020010{n}-000000--old" for n in range(1, 6)]
    for old in planted:
        (on_host / f"{old}.sql.gz").write_bytes(b"x")
        (on_host / f"{old}.json").write_text(json.dumps({"id": old, "app": app, "env": "local", "accessory": "db",
                                                         "kind": "mariadb", "release": None, "created": "2020",
                                                         "sha256": "0" * 64, "size": 1, "host": "local"}))
    (on_host / "20200106-000000--cut.sql.gz").write_bytes(b"half")
    (on_host / ".20200107-000000--cut.sql.gz.part").write_bytes(b"half")
    # The state directory's owner (on a host: the SSH user) gets the folder and files, not the
    # scheduler's root: that user lists and restores them.
    os.chown(on_host.parent.parent, 4242, 4242)
    code, out = cli("jobs", "run", "backup-db", "--env", "local")
    assert code == 0, out
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in [on_host, on_host.parent, *on_host.glob("2026*")]}
    assert owners == {(4242, 4242)}, owners
    [job] = [j for j in cli.result("jobs", "--env", "local")["jobs"] if j["name"] == "backup-db"]
    assert job["schedule"] == "30 3 * * *" and job["runs"][-1]["exit_code"] == 0, job
    listed = cli.result("accessory", "backup", "list", "db", "--env", "local")
    scheduled = [b for b in listed["backups"] if b["where"] == listed["scheduled_where"]]
    assert [b["id"] for b in scheduled][:-1] == planted[1:], scheduled  # the oldest went (keep = 5)
    nightly = scheduled[-1]
    assert nightly["reason"] == "schedule" and nightly["release"] == nightly["id"].split("--")[1], nightly
    assert backup["id"] in [b["id"] for b in listed["backups"]]  # the folder's backups are listed too
    assert sorted(p.name for p in on_host.iterdir() if "cut" in p.name) == ["20200106-000000--cut.sql.gz"]
    code, out = cli("accessory", "backup", "list", "db", "--env", "local")
    assert code == 0 and f"and, scheduled, in {listed['scheduled_where']}" in out, out
    assert [line.split()[-1] for line in out.splitlines() if nightly["id"] in line] == ["host"], out
    sql(db, "DELETE FROM items")
    code, out = cli("accessory", "backup", "restore", "db", nightly["id"], "--env", "local", "--yes")
    assert code == 0, out
    assert sql(db, "SELECT name FROM items ORDER BY id") == "apple\npear"
    assert not [p for p in (tmp_path / "state").rglob("*.run") if ROOT_PASSWORD in p.read_text()]
    # The host's folder read over SSH, as for an ssh environment: listed and restored through it.
    conn = SSHConnector(ssh_host.host, port=ssh_host.port, user=ssh_host.user, key_file=ssh_host.key_file,
                        known_hosts=ssh_host.known_hosts_file).connect()
    try:
        over_ssh_target = backups.scheduled_target(Env.resolve(loaded, "local"), "db", conn)
        assert over_ssh_target is not None and over_ssh_target.store.where == f"{conn.host}:{on_host}"
        assert backups.list_ids(over_ssh_target.store) == [b["id"] for b in scheduled]
        sql(db, "DELETE FROM items")
        backups.restore(Env.resolve(loaded, "local"), conn, over_ssh_target, nightly["id"], Recorder())
    finally:
        conn.close()
    assert sql(db, "SELECT name FROM items ORDER BY id") == "apple\npear"

    # 3. Through S3 (moto): credentials from the environment, never an argv.
    for key, value in moto.environ().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import boto3

    boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1").create_bucket(Bucket=f"bk-{app}")
    s3 = cli.result("accessory", "backup", "db", "--env", "local", "--to", f"s3://bk-{app}/nightly")
    listed = cli.result("accessory", "backup", "list", "db", "--env", "local", "--to", f"s3://bk-{app}/nightly")
    assert [b["id"] for b in listed["backups"]] == [s3["backup"]["id"]]
    assert listed["where"] == f"s3://bk-{app}/nightly/{app}-local/db"
    sql(db, "DELETE FROM items")
    assert cli("accessory", "backup", "restore", "db", s3["backup"]["id"], "--env", "local", "--to",
               f"s3://bk-{app}/nightly", "--yes")[0] == 0
    assert sql(db, "SELECT name FROM items ORDER BY id") == "apple\npear"
    # S3 unreachable: exit 4 with what failed; nothing changed in the folder's backups.
    monkeypatch.setenv("DEPLOYCTL_AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    before = sorted(p.name for p in stored.iterdir())
    code, out = cli("accessory", "backup", "db", "--env", "local", "--to", f"s3://bk-{app}/nightly")
    assert code == ExitCode.CONNECT and "S3 PutObject" in out and "Traceback" not in out, out
    assert sorted(p.name for p in stored.iterdir()) == before
    monkeypatch.setenv("DEPLOYCTL_AWS_ENDPOINT_URL", moto.endpoint)

    # 4. v2 with backup_before_migrate: a backup before its migration, named in its record.
    write_project(tmp_path, app, port, schema=2, backup_dir=folder, before_migrate=True,
                  scheduler=scheduler_image)
    assert cli("build", "--tag", "v2")[0] == 0
    code, out = cli("deploy", "--env", "local")
    assert code == 0, out
    assert sql(db, "SELECT v FROM meta") == "2"
    sql(db, "INSERT INTO items VALUES (3, 'plum', 7)")
    history = [json.loads(line) for line in next((tmp_path / "state").glob("**/releases.jsonl")).read_text().splitlines()]
    v1_record, v2_record = [r for r in history if r["action"] == "deploy" and r["outcome"] == "succeeded"]
    assert v1_record["extra"]["schema"] == {"web": "1"} and v2_record["extra"]["schema"] == {"web": "2"}
    before_migrate = v2_record["extra"]["backup"]
    assert before_migrate["accessory"] == "db" and (stored / f"{before_migrate['id']}.sql.gz").exists()

    # 5. A plain rollback across the migration: refused with both schemas, nothing changed.
    code, out = cli("rollback", "--env", "local")
    assert code == ExitCode.DEPLOY_FAILED, out
    assert "web 2" in out and "web 1" in out and "--restore-data" in out, out
    assert cli.result("status", "--env", "local")["hosts"][0]["live"] == v2_record["release"]
    assert sql(db, "SELECT COUNT(*) FROM items") == "3"

    # 6. --restore-data: the backup before v2's migration comes back, then v1 is switched to.
    code, out = cli("rollback", "--env", "local", "--restore-data", "--yes")
    assert code == 0, out
    assert cli.result("status", "--env", "local")["hosts"][0]["live"] == v1_record["release"]
    assert sql(db, "SELECT v FROM meta") == "1"
    assert sql(db, "SELECT name FROM items ORDER BY id") == "apple\npear"
    assert "price" not in sql(db, "SHOW COLUMNS FROM items")

    # The password was never on an argv deployctl ran.
    assert not [argv for argv in cli.argvs if any(ROOT_PASSWORD in arg for arg in argv)]
    assert all(ROOT_PASSWORD not in output for output in cli.outputs)
