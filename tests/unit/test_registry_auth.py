"""Where registry credentials come from: never deploy.toml."""

from __future__ import annotations

import pytest

from deployctl.config.load import parse_config
from deployctl.errors import ConfigError
from deployctl.secrets import redactor
from deployctl.services.pipeline.registry_auth import registry_login

BASE = """
app = "shop"
{registry}
[services.api]
context = "api"
routed = true
[environments.local]
target = "local"
"""


def config(registry: str):
    return parse_config(BASE.format(registry=registry))


def test_basic_auth_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("SHOP_REGISTRY_PW", "registry-pw-777")
    login = registry_login(config('[registry]\nserver = "r:5000"\nusername = "ci"\npassword_secret = "SHOP_REGISTRY_PW"'))
    assert (login.server, login.username, login.password.reveal()) == ("r:5000", "ci", "registry-pw-777")
    assert login.auth_config() == {"username": "ci", "password": "registry-pw-777", "serveraddress": "r:5000"}
    assert "registry-pw-777" not in repr(login)
    assert redactor("x registry-pw-777") == "x ***"


def test_missing_password_names_the_secret(monkeypatch):
    monkeypatch.delenv("DEPLOYCTL_REGISTRY_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="DEPLOYCTL_REGISTRY_PASSWORD"):
        registry_login(config('[registry]\nserver = "r:5000"\nusername = "ci"'))


def test_no_username_is_anonymous():
    assert registry_login(config('[registry]\nserver = "r:5000"')) is None


def test_no_registry_is_a_config_error():
    with pytest.raises(ConfigError, match="no \\[registry\\]"):
        registry_login(config(""))
