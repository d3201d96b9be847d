import pytest

from backend.settings import DatabaseSettings, ReleaseInfo, SettingsError


def test_defaults_when_environment_is_empty():
    settings = DatabaseSettings.from_env({})
    assert (settings.host, settings.port, settings.name, settings.user, settings.password) == (
        "127.0.0.1", 3306, "userdir", "userdir", "",
    )


def test_reads_every_variable():
    settings = DatabaseSettings.from_env({
        "DATABASE_HOST": "db.internal", "DATABASE_PORT": "3307", "DATABASE_NAME": "users",
        "DATABASE_USER": "api", "DATABASE_PASSWORD": "s3cret",
    })
    assert (settings.host, settings.port, settings.name, settings.user, settings.password) == (
        "db.internal", 3307, "users", "api", "s3cret",
    )


def test_password_file_is_preferred_and_loses_its_trailing_newline(tmp_path):
    secret = tmp_path / "db_password"
    secret.write_text("from-file\n")
    settings = DatabaseSettings.from_env({"DATABASE_PASSWORD_FILE": str(secret), "DATABASE_PASSWORD": "from-env"})
    assert settings.password == "from-file"


def test_unreadable_password_file_is_a_settings_error(tmp_path):
    with pytest.raises(SettingsError, match="DATABASE_PASSWORD_FILE"):
        DatabaseSettings.from_env({"DATABASE_PASSWORD_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize("port", ["abc", "0", "70000"])
def test_bad_port_is_a_settings_error(port):
    with pytest.raises(SettingsError, match="DATABASE_PORT"):
        DatabaseSettings.from_env({"DATABASE_PORT": port})


def test_password_is_not_in_repr():
    assert "hunter2" not in repr(DatabaseSettings("h", 1, "n", "u", "hunter2"))


def test_release_defaults_to_unknown():
    assert ReleaseInfo.from_env({}).as_dict() == {"release": "unknown", "revision": "unknown"}
    assert ReleaseInfo.from_env({"DEPLOYCTL_RELEASE": ""}).release == "unknown"


def test_release_from_environment():
    info = ReleaseInfo.from_env({"DEPLOYCTL_RELEASE": "20261127-101500-abc1234", "DEPLOYCTL_REVISION": "abc1234"})
    assert info.as_dict() == {"release": "20261127-101500-abc1234", "revision": "abc1234"}
