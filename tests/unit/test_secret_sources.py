from __future__ import annotations

import pytest

from deployctl.errors import ConfigError, ExitCode
from deployctl.secrets import redactor
from deployctl.services.secret_sources import EnvSecrets, fetch_secrets, source_for


def test_env_source_returns_masked_values_and_registers_them():
    source = source_for("env", {"DB_PASSWORD": "pw-from-env-1"})
    secrets = fetch_secrets(source, ["DB_PASSWORD", "DB_PASSWORD"])
    assert list(secrets) == ["DB_PASSWORD"]
    assert secrets["DB_PASSWORD"].reveal() == "pw-from-env-1"
    assert redactor("x pw-from-env-1 y") == "x *** y"


def test_every_missing_secret_is_named_and_empty_counts_as_missing():
    source = EnvSecrets({"A_SECRET": "", "B_SECRET": "value-b"})
    with pytest.raises(ConfigError) as info:
        fetch_secrets(source, ["A_SECRET", "B_SECRET", "C_SECRET"], context="environment 'production'")
    assert info.value.exit_code == ExitCode.CONFIG
    assert info.value.problems == [
        "secret 'A_SECRET' is missing from the environment for environment 'production'",
        "secret 'C_SECRET' is missing from the environment for environment 'production'",
    ]


def test_aws_specs_choose_their_source_and_say_where_a_secret_was_looked_for():
    ssm = source_for("ssm:/app/prod/", region="eu-west-1")
    assert ssm.where("DB_PASSWORD") == "SSM Parameter Store (no parameter /app/prod/DB_PASSWORD in eu-west-1)"
    manager = source_for("secretsmanager:app/prod", region="eu-west-1")
    assert manager.where("DB_PASSWORD") == "Secrets Manager secret 'app/prod' in eu-west-1 (no such key)"
    with pytest.raises(ConfigError, match="is not one of 'env'"):
        source_for("vault:/app/prod/")


def test_no_names_means_no_lookup():
    class Unreachable:
        def lookup(self, names):
            raise AssertionError("looked up nothing")

    assert fetch_secrets(Unreachable(), []) == {}  # type: ignore[arg-type]
