"""ssh.proxy_jump: what deploy.toml accepts, and that every SSH connection of the
environment (hosts, a Swarm manager) is built to go through the jump host with the same key
and the same pinned known_hosts file as the hosts."""

from __future__ import annotations

import pytest

from deployctl.config import load_config
from deployctl.config.models import JumpHost, parse_jump
from deployctl.errors import ConfigError
from deployctl.services.hosts import known_hosts_path, manager_connector, ssh_connector

CONFIG = """app = "jumpapp"
[registry]
server = "registry.example:5000"
[services.web]
context = "."
port = 8000
routed = true
[environments.private]
target = "ssh"
hosts = ["10.0.1.5"]
[environments.private.ssh]
user = "deploy"
key_file = "keys/id_ed25519"
{jump}
[environments.swarm]
target = "swarm"
manager = "10.0.1.9"
[environments.swarm.ssh]
proxy_jump = "bastion.example.com"
"""


def test_proxy_jump_takes_openssh_s_form_with_its_defaults():
    assert parse_jump("bastion.example.com", "deploy") == JumpHost("bastion.example.com", 22, "deploy")
    assert parse_jump("ops@203.0.113.7:2200", "deploy") == JumpHost("203.0.113.7", 2200, "ops")
    assert parse_jump("[2001:db8::1]:22", "root") == JumpHost("2001:db8::1", 22, "root")
    assert JumpHost("b", 2200, "u").where == "b:2200" and JumpHost("b", 22, "u").where == "b"


@pytest.mark.parametrize("value", ["", "ops@", "@bastion", "bad user@bastion", "bastion:0", "bastion:ssh",
                                   "ssh://bastion", "bastion:70000"])
def test_a_bad_proxy_jump_names_the_key_and_the_form(tmp_path, value):
    (tmp_path / "deploy.toml").write_text(CONFIG.format(jump=f'proxy_jump = "{value}"'))
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / "deploy.toml")
    text = "\n".join(raised.value.lines())
    assert "environments.private.ssh.proxy_jump" in text and "[user@]host[:port]" in text, text


def test_hosts_and_a_swarm_manager_connect_through_the_jump_host_with_the_same_key_and_pins(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("DEPLOYCTL_SSH_KEY_FILE", raising=False)
    (tmp_path / "deploy.toml").write_text(CONFIG.format(jump='proxy_jump = "ops@bastion.example.com:2200"'))
    loaded = load_config(tmp_path / "deploy.toml")
    host = ssh_connector(loaded, loaded.environment("private"), "10.0.1.5", "private")
    jump = host.jump
    assert (host.address, host.port, host.user) == ("10.0.1.5", 22, "deploy")
    assert (jump.address, jump.port, jump.user) == ("bastion.example.com", 2200, "ops")
    assert jump.key_file == host.key_file == str(tmp_path / "keys/id_ed25519")
    assert jump.known_hosts == host.known_hosts == known_hosts_path(loaded, "private")
    assert jump.jump is None

    manager = manager_connector(loaded, "swarm")
    assert (manager.jump.address, manager.jump.port, manager.jump.user) == ("bastion.example.com", 22, "deploy")


def test_without_proxy_jump_hosts_are_reached_directly(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "deploy.toml").write_text(CONFIG.format(jump=""))
    loaded = load_config(tmp_path / "deploy.toml")
    assert ssh_connector(loaded, loaded.environment("private"), "10.0.1.5", "private").jump is None
