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


def test_unsupported_source_is_a_config_error():
    with pytest.raises(ConfigError, match="not supported"):
        source_for("ssm:/app/prod/")
