"""DEPLOYCTL_SSH_KEY_FILE: CI names the key file (Jenkins' sshUserPrivateKey binding) and it
wins over ssh.key_file for every host; unset or empty, deploy.toml's key is used."""

from __future__ import annotations

from deployctl.config.load import LoadedConfig, parse_config
from deployctl.services.hosts import SSH_KEY_ENV, connectors_for

CONFIG = parse_config("""
app = "shop"
[registry]
server = "registry.example.internal:5000"
[services.web]
context = "web"
routed = true
[environments.staging]
target = "ssh"
hosts = ["10.0.1.10", "10.0.1.11:2222"]
[environments.staging.ssh]
key_file = "keys/staging"
""")


def key_files(tmp_path) -> list:
    loaded = LoadedConfig(tmp_path / "deploy.toml", CONFIG)
    return [conn.key_file for conn in connectors_for(loaded, "staging")]


def test_the_environment_variable_names_the_key_for_every_host(tmp_path, monkeypatch):
    monkeypatch.setenv(SSH_KEY_ENV, "/run/jenkins/tmp/key-123")
    assert key_files(tmp_path) == ["/run/jenkins/tmp/key-123"] * 2
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(SSH_KEY_ENV, "ci-key")  # relative to the working directory, not deploy.toml
    assert key_files(tmp_path) == [str(tmp_path / "ci-key")] * 2


def test_unset_or_empty_falls_back_to_the_configured_key(tmp_path, monkeypatch):
    monkeypatch.delenv(SSH_KEY_ENV, raising=False)
    assert key_files(tmp_path) == [str(tmp_path / "keys/staging")] * 2
    monkeypatch.setenv(SSH_KEY_ENV, "")
    assert key_files(tmp_path) == [str(tmp_path / "keys/staging")] * 2
