from dataclasses import replace

from backend import schema_version
from backend.migrate import migrate


def db_env(settings):
    return {"DATABASE_HOST": settings.host, "DATABASE_PORT": str(settings.port), "DATABASE_NAME": settings.name,
            "DATABASE_USER": settings.user, "DATABASE_PASSWORD": settings.password}


def test_a_database_never_migrated_is_0000(fresh_database, monkeypatch, capsys):
    for key, value in db_env(fresh_database).items():
        monkeypatch.setenv(key, value)
    assert schema_version.main([]) == 0
    assert capsys.readouterr().out == "0000\n"


def test_the_version_is_the_highest_migration_applied(fresh_database, monkeypatch, capsys):
    migrate(fresh_database, log=lambda _msg: None)
    for key, value in db_env(fresh_database).items():
        monkeypatch.setenv(key, value)
    assert schema_version.main([]) == 0
    assert capsys.readouterr().out == "0001\n"


def test_a_database_error_exits_1_without_a_traceback(fresh_database, monkeypatch, capsys):
    for key, value in db_env(replace(fresh_database, password="wrong")).items():
        monkeypatch.setenv(key, value)
    assert schema_version.main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith("schema_version: error: database ") and "Traceback" not in err
