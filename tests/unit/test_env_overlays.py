"""What a deploy lays over deploy.toml at run time comes back as a new Env (services/env.py):
the RDS endpoint's variables, built accessories' images. The Env it was made from (the one
the CLI keeps for the command) is left as deploy.toml says; what was resolved (names,
layout, ports, target) is the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.config import parse_config
from deployctl.config.load import LoadedConfig
from deployctl.errors import ConfigError
from deployctl.services.data.database_endpoint import with_database_endpoint
from deployctl.services.env import Env

CONFIG = """
app = "shop"
[registry]
server = "registry.example.internal:5000"
[services.web]
context = "web"
routed = true
[environments.prod]
target = "ssh"
hosts = ["10.0.1.10"]
proxy_port = 8080
aws_region = "eu-west-1"
database = { rds_instance = "shop-prod" }
[environments.prod.env]
LOG_LEVEL = "info"
[environments.other]
target = "ssh"
hosts = ["10.0.1.11"]
"""


def env(name: str = "prod") -> Env:
    return Env.resolve(LoadedConfig(Path("/project/deploy.toml"), parse_config(CONFIG)), name)


def same_resolution(a: Env, b: Env) -> bool:
    return (a.name, a.names, a.layout, a.proxy_port, a.tls_port, a.target, a.loaded.path) == \
           (b.name, b.names, b.layout, b.proxy_port, b.tls_port, b.target, b.loaded.path)


def test_env_values_are_laid_over_a_new_env_and_the_old_one_is_left_as_it_was():
    base = env()
    laid = base.with_env_values({"DATABASE_HOST": "db.example", "DATABASE_PORT": "3306"})
    assert laid.settings.env == {"LOG_LEVEL": "info", "DATABASE_HOST": "db.example", "DATABASE_PORT": "3306"}
    # One config behind it: what reads `loaded` (hooks, TLS) sees what `settings` says.
    assert laid.loaded.environment("prod") is laid.settings and laid.config.environments["prod"] is laid.settings
    assert laid.config.environments["other"] == base.config.environments["other"]
    assert same_resolution(laid, base)
    assert base.settings.env == {"LOG_LEVEL": "info"}  # the CLI's Env: as deploy.toml says
    assert base.with_env_values({}) is base


def test_the_rds_endpoint_is_looked_up_and_given_back_as_a_new_env(monkeypatch):
    import deployctl.adapters.aws as aws

    asked = []

    def endpoint(region, instance):  # type: ignore[no-untyped-def]
        asked.append((region, instance))
        return "shop-prod.abc.eu-west-1.rds.amazonaws.com", 3306, "available"

    monkeypatch.setattr(aws, "db_instance_endpoint", endpoint)
    base = env()
    laid = with_database_endpoint(base)
    assert asked == [("eu-west-1", "shop-prod")]
    assert laid.settings.env == {"LOG_LEVEL": "info", "DATABASE_HOST": "shop-prod.abc.eu-west-1.rds.amazonaws.com",
                                 "DATABASE_PORT": "3306"}
    assert same_resolution(laid, base) and base.settings.env == {"LOG_LEVEL": "info"}

    monkeypatch.setattr(aws, "db_instance_endpoint", lambda region, instance: None)
    with pytest.raises(ConfigError, match="environments.prod.database.rds_instance: there is no RDS DB instance"):
        with_database_endpoint(base)


def test_an_environment_without_a_database_is_given_back_unchanged(monkeypatch):
    import deployctl.adapters.aws as aws

    monkeypatch.setattr(aws, "db_instance_endpoint", lambda *a: pytest.fail("no database: nothing to look up"))
    other = env("other")
    assert with_database_endpoint(other) is other
