"""ssh.proxy_jump: what deploy.toml accepts, and that every SSH connection of the
environment (hosts, a Swarm manager) is built to go through the jump host with the same key
and the same pinned known_hosts file as the hosts."""

from __future__ import annotations

import pytest

from deployctl.config import load_config
from deployctl.config.models import JumpHost, parse_jump
from deployctl.errors import ConfigError
from deployctl.services.hosts import known_hosts_path, manager_connector, ssh_connector
from deployctl.services.env import Env

HEADER = """[registry]
server = "registry.example:5000"
[services.web]
context = "."
port = 8000
routed = true
"""
CONFIG = 'app = "jumpapp"\n' + HEADER + """[environments.private]
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


INFRA = 'app = "privapp"\n' + HEADER + """[environments.production]
target = "ssh"
aws_region = "eu-west-1"
[environments.production.ssh]
user = "deploy"
{ssh}
[environments.production.infra]
admin_cidr = "203.0.113.0/24"
ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG5vdC1hLXJlYWwta2V5LWp1c3QtYS10ZXN0 deploy@ci"
{infra}
"""


def _infra(tmp_path, monkeypatch, *, ssh: str = "", infra: str = "", instances=()):  # type: ignore[no-untyped-def]
    from deployctl.services import hosts

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(hosts, "_bastions", {})
    asked = []

    def describe_instances(region, filters):  # type: ignore[no-untyped-def]
        asked.append((region, filters))
        return list(instances)

    monkeypatch.setattr("deployctl.adapters.aws.describe_instances", describe_instances)
    (tmp_path / "deploy.toml").write_text(INFRA.format(ssh=ssh, infra=infra))
    return load_config(tmp_path / "deploy.toml"), asked


def test_an_infra_stack_s_hosts_go_through_its_bastion_found_once_by_its_tags(tmp_path, monkeypatch):
    from deployctl.plan.cloud.aws import Instance

    bastions = [Instance("i-b2", "running", "10.0.0.9", "198.51.100.9"), Instance("i-old", "terminated", None, None),
                Instance("i-b1", "running", "10.0.0.8", "198.51.100.8")]
    loaded, asked = _infra(tmp_path, monkeypatch, instances=bastions)
    environment = loaded.environment("production")
    first = ssh_connector(loaded, environment, "10.0.2.5", "production")
    second = ssh_connector(loaded, environment, "10.0.3.5", "production")
    for conn in (first, second):
        assert (conn.jump.address, conn.jump.port, conn.jump.user) == ("198.51.100.8", 22, "deploy")
    assert asked == [("eu-west-1", [{"Name": "tag:deployctl:app", "Values": ["privapp"]},
                                    {"Name": "tag:deployctl:bastion", "Values": ["production"]}])]


def test_proxy_jump_or_bastion_false_or_a_host_list_means_no_bastion_lookup(tmp_path, monkeypatch):
    loaded, asked = _infra(tmp_path, monkeypatch, ssh='proxy_jump = "vpn-gw.example.com"')
    conn = ssh_connector(loaded, loaded.environment("production"), "10.0.2.5", "production")
    assert conn.jump.address == "vpn-gw.example.com"
    loaded, _ = _infra(tmp_path, monkeypatch, infra="bastion = false")
    assert ssh_connector(loaded, loaded.environment("production"), "10.0.2.5", "production").jump is None
    assert asked == []


def test_no_running_bastion_is_exit_4_saying_what_to_run(tmp_path, monkeypatch):
    from deployctl.errors import ConnectError, ExitCode

    loaded, _ = _infra(tmp_path, monkeypatch, instances=[])
    with pytest.raises(ConnectError) as raised:
        ssh_connector(loaded, loaded.environment("production"), "10.0.2.5", "production")
    assert raised.value.exit_code == ExitCode.CONNECT
    assert "the infra stack's bastion is not running" in raised.value.message
    assert "deployctl infra apply --env production" in raised.value.hint and "ssh.proxy_jump" in raised.value.hint


def test_hosts_trust_pins_the_stack_s_bastion_first_with_its_instance_for_from_console(tmp_path, monkeypatch):
    from deployctl.plan.cloud.aws import Instance
    from deployctl.services.host_keys import targets

    loaded, _ = _infra(tmp_path, monkeypatch, instances=[Instance("i-b1", "running", "10.0.0.8", "198.51.100.8")])
    found, note = targets(Env.resolve(loaded, "production"))
    assert [(t.entry, t.host, t.port, t.instance_id, t.behind_jump) for t in found] == [
        ("198.51.100.8", "198.51.100.8", 22, "i-b1", False)]
    assert "jump host is not pinned yet" in note
