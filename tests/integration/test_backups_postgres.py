"""A backup and restore of a real PostgreSQL accessory (issue 25 item 4, docs/backups.md),
on this machine's engine: the stand-in postgres image (scripts/standin/postgres-entrypoint.sh,
the official image's env interface on Debian's postgresql-15) booted as a user configures
the official one: a non-default POSTGRES_USER, POSTGRES_DB and the password from a secret
file (POSTGRES_PASSWORD_FILE). One walk: boot, rows written, `accessory backup` to a folder,
rows deleted while a client (an app's pooled connection) stays connected to the database,
`restore --yes --verify`: the dump loads into a throwaway copy first, then the rows are back.
The password is never on an argv deployctl ran, in its output (plain and --json) or the
manifest. The MariaDB side, SSH, S3 and the schedule are tests/integration/test_backups.py.
"""

from __future__ import annotations

import subprocess
import time
import textwrap
from pathlib import Path

import pytest

from deployctl.errors import ExitCode
from tests.integration.deploy_fixtures import docker, remove_app_with_data, unique_app
from tests.integration.test_accessory_features import Cli

pytestmark = pytest.mark.integration
PASSWORD = "pg-Sekr3t-value-77"
USER = "shopkeeper"


def write_project(root: Path, app: str, standin: dict) -> Path:
    (root / "web").mkdir(parents=True, exist_ok=True)
    (root / "web" / "Dockerfile").write_text(f"FROM {standin['python']}\n")
    config = root / "deploy.toml"
    config.write_text(textwrap.dedent(f"""
        app = "{app}"
        [services.web]
        context = "web"
        routed = true
        [accessories.db]
        image = "{standin['postgres']}"
        volumes = ["data:/var/lib/postgresql/data"]
        secrets = ["DB_PASSWORD"]
        [accessories.db.env]
        POSTGRES_USER = "{USER}"
        POSTGRES_DB = "shop"
        POSTGRES_PASSWORD_FILE = "/run/secrets/DB_PASSWORD"
        [accessories.db.healthcheck]
        # Over TCP: the entrypoint's temporary server (while it initialises) listens on the
        # socket only, so a socket check would pass before the database exists.
        command = ["pg_isready", "-h", "127.0.0.1", "-U", "{USER}", "-d", "shop"]
        interval = 0.5
        timeout = 120
        [environments.local]
        target = "local"
        state_dir = "{root / 'state'}"
        accessories = ["db"]
        """))
    return config


def sql(container: str, query: str) -> str:
    return docker("exec", container, "psql", "-U", USER, "-d", "shop", "-tAq", "-v", "ON_ERROR_STOP=1", "-c", query)


@pytest.fixture
def project(tmp_path, standin_images, capsys, monkeypatch):
    app = unique_app()
    monkeypatch.setenv("DB_PASSWORD", PASSWORD)
    config = write_project(tmp_path, app, standin_images)
    yield app, config, Cli(config, capsys, monkeypatch)
    remove_app_with_data(app)


def test_postgres_backup_and_verified_restore_bring_deleted_rows_back(project, tmp_path):
    app, config, cli = project
    db = f"{app}-local-db"
    folder = tmp_path / "backups"

    code, out = cli("accessory", "boot", "db", "--env", "local")
    assert code == 0, out
    sql(db, "CREATE TABLE items (id INT PRIMARY KEY, name TEXT); INSERT INTO items VALUES (1, 'apple'), (2, 'pear')")
    # The password the secret set is the one TCP clients need (the entrypoint honoured _FILE).
    assert docker("exec", "-e", f"PGPASSWORD={PASSWORD}", db, "psql", "-h", "127.0.0.1", "-U", USER, "-d", "shop",
                  "-tAc", "SELECT COUNT(*) FROM items") == "2"

    taken = cli.result("accessory", "backup", "db", "--env", "local", "--to", str(folder))
    backup = taken["backup"]
    assert backup["kind"] == "postgres", backup
    stored = folder / f"{app}-local" / "db"
    assert sorted(p.name for p in stored.iterdir()) == [f"{backup['id']}.json", f"{backup['id']}.sql.gz"]
    manifest = (stored / f"{backup['id']}.json").read_text()

    sql(db, "DELETE FROM items WHERE id = 2; INSERT INTO items VALUES (3, 'plum')")
    # An app's pooled connection to the database stays open across the restore.
    client = subprocess.Popen(["docker", "exec", "-i", db, "psql", "-U", USER, "-d", "shop", "-q"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client.stdin.write(b"SELECT 1;\n")  # type: ignore[union-attr]
        client.stdin.flush()  # type: ignore[union-attr]
        others = "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = 'shop' AND pid <> pg_backend_pid()"
        deadline = time.monotonic() + 20
        while sql(db, others) != "1":
            assert time.monotonic() < deadline and client.poll() is None, "the client never connected"
            time.sleep(0.2)
        code, out = cli("accessory", "backup", "restore", "db", backup["id"], "--env", "local", "--to", str(folder))
        assert code == ExitCode.DEPLOY_FAILED and "needs its environment's name typed" in out, out  # no TTY, no --yes
        assert sql(db, "SELECT name FROM items ORDER BY id") == "apple\nplum"
        code, out = cli("accessory", "backup", "restore", "db", backup["id"], "--env", "local", "--to", str(folder),
                        "--yes", "--verify")
        assert code == 0, out
        assert "the dump loads" in out
        assert sql(db, others) == "0"  # the app's session was ended with the old database (WITH (FORCE))
    finally:
        client.kill()
        client.wait()
    assert sql(db, "SELECT name FROM items ORDER BY id") == "apple\npear"
    assert docker("ps", "-aq", "--filter", f"name={db}-verify-") == ""  # the throwaway copy is gone
    assert docker("volume", "ls", "-q", "--filter", f"name={app}-local-db-data-verify") == ""
    listed = cli.result("accessory", "backup", "list", "db", "--env", "local", "--to", str(folder))
    assert [b["id"] for b in listed["backups"]] == [backup["id"]]

    # The password never on an argv deployctl ran, in its output or the manifest.
    assert cli.argvs and not [argv for argv in cli.argvs if any(PASSWORD in arg for arg in argv)]
    assert all(PASSWORD not in output for output in cli.outputs)
    assert PASSWORD not in manifest
