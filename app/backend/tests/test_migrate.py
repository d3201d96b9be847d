import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from backend import db
from backend.migrate import (
    Migration,
    MigrationError,
    load_migrations,
    lock_name,
    main,
    migrate,
    split_statements,
)

BACKEND_DIR = Path(__file__).resolve().parents[1]


def quiet(_msg):
    pass


def query(settings, sql, args=None):
    conn = db.connect(settings)
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchall()
    finally:
        conn.close()


def db_env(settings):
    return {
        "DATABASE_HOST": settings.host,
        "DATABASE_PORT": str(settings.port),
        "DATABASE_NAME": settings.name,
        "DATABASE_USER": settings.user,
        "DATABASE_PASSWORD": settings.password,
    }


# --- files ----------------------------------------------------------------------

def test_split_statements_drops_comments_and_splits_at_line_end_semicolons():
    sql = "-- a comment\nCREATE TABLE a (x INT);\n\nINSERT INTO a VALUES (1);\nSELECT ';' FROM a\n"
    assert split_statements(sql) == ["CREATE TABLE a (x INT)", "INSERT INTO a VALUES (1)", "SELECT ';' FROM a"]


def test_shipped_migrations_are_ordered_and_named():
    migrations = load_migrations()
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)
    assert migrations[0].label == "0001_create_users"


def test_badly_named_file_is_an_error(tmp_path):
    (tmp_path / "1_users.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_description.sql"):
        load_migrations(tmp_path)


def test_duplicate_version_is_an_error(tmp_path):
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 2;")
    with pytest.raises(MigrationError, match="version 0001 is used by two files"):
        load_migrations(tmp_path)


# --- applying -------------------------------------------------------------------

def test_migrate_applies_everything_once_and_is_idempotent(fresh_database):
    first = migrate(fresh_database, log=quiet)
    assert first == [m.label for m in load_migrations()]
    messages = []
    assert migrate(fresh_database, log=messages.append) == []
    assert messages == ["schema is up to date"]
    rows = query(fresh_database, "SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["name"]) for r in rows] == [(m.version, m.name) for m in load_migrations()]
    assert query(fresh_database, "SHOW TABLES LIKE 'users'")


def test_two_concurrent_runs_apply_each_migration_once(fresh_database):
    # The sleep holds the lock long enough that the runs really overlap.
    migrations = [
        Migration("0001", "slow", "SELECT SLEEP(1);\nCREATE TABLE counter (n INT);"),
        Migration("0002", "insert", "INSERT INTO counter VALUES (1);"),
    ]
    results, errors = [], []

    def run():
        try:
            results.append(migrate(fresh_database, migrations=migrations, log=quiet))
        except Exception as exc:  # pragma: no cover - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(results, key=len) == [[], ["0001_slow", "0002_insert"]]
    assert query(fresh_database, "SELECT COUNT(*) AS n FROM counter")[0]["n"] == 1


def test_waits_for_the_lock_then_times_out_with_a_clear_message(fresh_database):
    holder = db.connect(fresh_database)
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 0)", (lock_name(fresh_database),))
        messages = []
        with pytest.raises(MigrationError, match="timed out after 3s waiting for migration lock"):
            migrate(fresh_database, lock_timeout=3, log=messages.append)
        assert any("held by connection" in m for m in messages)
    finally:
        holder.close()
    # Closing the holder released the lock; now it goes through.
    assert migrate(fresh_database, log=quiet)


def test_a_failing_statement_names_the_file_and_is_not_recorded(fresh_database):
    migrations = [Migration("0001", "broken", "CREATE TABLE ok (x INT);\nCREATE TABLE nope (;")]
    with pytest.raises(MigrationError, match=r"0001_broken.sql statement 2 failed: \(1064\)"):
        migrate(fresh_database, migrations=migrations, log=quiet)
    assert query(fresh_database, "SELECT * FROM schema_migrations") == ()


def test_editing_an_applied_migration_is_refused(fresh_database):
    migrate(fresh_database, migrations=[Migration("0001", "t", "CREATE TABLE t (x INT);")], log=quiet)
    with pytest.raises(MigrationError, match="0001_t.sql was changed after it was applied"):
        migrate(fresh_database, migrations=[Migration("0001", "t", "CREATE TABLE t (y INT);")], log=quiet)


def test_lock_names_are_per_database_and_fit_mysql():
    from backend.settings import DatabaseSettings

    settings = DatabaseSettings("h", 1, "x" * 100, "u", "p")
    assert len(lock_name(settings)) == 64
    assert lock_name(replace(settings, name="a")) != lock_name(replace(settings, name="b"))


# --- the command ------------------------------------------------------------------

def test_main_succeeds(fresh_database, monkeypatch, capsys):
    for key, value in db_env(fresh_database).items():
        monkeypatch.setenv(key, value)
    assert main([]) == 0
    assert "migrate: applied 0001_create_users" in capsys.readouterr().out


def test_main_reports_a_database_error_and_exits_non_zero(fresh_database, monkeypatch, capsys):
    for key, value in db_env(replace(fresh_database, password="wrong")).items():
        monkeypatch.setenv(key, value)
    assert main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"migrate: error: database '{fresh_database.name}' at ")
    assert "(1045)" in err and "Traceback" not in err


def test_main_reports_a_settings_error(monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_PORT", "not-a-port")
    assert main([]) == 1
    assert "migrate: error: DATABASE_PORT must be an integer" in capsys.readouterr().err


def test_main_reports_a_migration_error(fresh_database, monkeypatch, capsys):
    for key, value in db_env(fresh_database).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("backend.migrate.load_migrations", lambda: [Migration("0001", "bad", "NOT SQL;")])
    assert main([]) == 1
    assert "migrate: error: 0001_bad.sql statement 1 failed" in capsys.readouterr().err


def test_python_dash_m_runs_as_a_program(fresh_database):
    env = {**os.environ, **db_env(fresh_database), "PYTHONPATH": str(BACKEND_DIR)}
    done = subprocess.run(
        [sys.executable, "-m", "backend.migrate", "--lock-timeout", "5"],
        env=env, capture_output=True, text=True, timeout=60, cwd=BACKEND_DIR,
    )
    assert done.returncode == 0, done.stderr
    assert "migrate: applied 0001_create_users" in done.stdout
