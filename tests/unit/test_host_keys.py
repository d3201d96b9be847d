"""Host key pinning (security review, item 12): which known_hosts file an environment uses,
fingerprints as OpenSSH prints them, cloud-init's console block, and `hosts trust` run
in-process with the key exchange replaced by a fixed answer (the real scan against sshd is
tests/integration/test_hosts_trust.py)."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest

from deployctl.cli.main import main
from deployctl.config import load_config
from deployctl.errors import ConnectError, ExitCode
from deployctl.plan.operate.host_keys import HostKey, console_keys, known_hosts_text, not_on_console, unpinned
from deployctl.services.hosts import known_hosts_path, ssh_connector

# Two ed25519 keys and what `ssh-keygen -lf` printed for them.
KEY_A = HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIKVTLcAuTteK/YXRjwLpqWPW58DUciuuQpDtjwrYx3Ly")
FP_A = "SHA256:Tj942FQrBu8WSo6AsBCkFQ7Y8+PL5enw1V9tQONAhGI"
KEY_B = HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIHKfMyfRcZgJ/W72+ENujzOjzaGfvgAoHUKwLSjQLd9Y")
FP_B = "SHA256:Ich37huQyTu6nk03iKQ55vc3zJwqrBZUET3Me0l8ewo"

# As an Amazon Linux instance's console shows it (cloud-init's cc_keys_to_console), after a
# fingerprint block that must not be mistaken for keys.
CONSOLE = f"""[   12.3] cloud-init[1234]: Cloud-init v. 22.2.2 running 'modules:final'
ec2:
ec2: #############################################################
ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----
ec2: 256 {FP_A} root@ip-10-20-1-5.eu-west-1.compute.internal (ED25519)
ec2: -----END SSH HOST KEY FINGERPRINTS-----
ec2: #############################################################
-----BEGIN SSH HOST KEY KEYS-----
ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBG1571A6EvANWk8+yQqigHCRf9I+CACt1ofS48NNe0bGNMWUOIrbT+v642zUOO+8Kt3wZ7PBpgQLMtnOatR7gbI= root@ip-10-20-1-5
{KEY_A.key_type} {KEY_A.blob} root@ip-10-20-1-5
-----END SSH HOST KEY KEYS-----
[   13.0] cloud-init[1234]: Cloud-init v. 22.2.2 finished
"""

CONFIG = """app = "pinapp"
[registry]
server = "registry.example:5000"
[services.web]
context = "."
port = 8000
routed = true
[environments.staging]
target = "ssh"
hosts = ["10.0.0.1", "10.0.0.2:2222"]
[environments.pinned]
target = "ssh"
hosts = ["10.0.0.3"]
[environments.pinned.ssh]
known_hosts = "keys/known_hosts"
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "deploy.toml").write_text(CONFIG)
    return tmp_path


def test_fingerprints_match_ssh_keygen():
    assert (KEY_A.fingerprint, KEY_B.fingerprint) == (FP_A, FP_B)


def test_without_known_hosts_in_config_the_environment_uses_its_own_file_not_the_users(project):
    """Before: ssh.known_hosts defaulted to ~/.ssh/known_hosts, trusted on first use."""
    loaded = load_config(project / "deploy.toml")
    own = project / "xdg" / "deployctl" / "known_hosts" / "pinapp-staging"
    assert known_hosts_path(loaded, "staging") == str(own)
    connector = ssh_connector(loaded, loaded.environment("staging"), "10.0.0.1")  # the Swarm path: no name given
    assert connector.known_hosts == str(own)
    assert ".ssh" not in connector.known_hosts


def test_an_explicit_known_hosts_wins_relative_to_deploy_toml(project):
    loaded = load_config(project / "deploy.toml")
    assert known_hosts_path(loaded, "pinned") == str(project / "keys" / "known_hosts")


def test_known_hosts_lines_name_a_non_22_port_as_openssh_does():
    text = known_hosts_text({("10.0.0.2", 2222): KEY_B, ("10.0.0.1", 22): KEY_A})
    assert text == f"10.0.0.1 {KEY_A.key_type} {KEY_A.blob}\n[10.0.0.2]:2222 {KEY_B.key_type} {KEY_B.blob}\n"


def test_console_keys_come_from_the_keys_block_only():
    keys = console_keys(CONSOLE)
    assert KEY_A in keys and [k.key_type for k in keys] == ["ecdsa-sha2-nistp256", "ssh-ed25519"]
    assert console_keys(CONSOLE.replace("-----BEGIN SSH HOST KEY KEYS-----", "")) == []
    assert console_keys("Linux version 2.6.16-xenU\nno keys here\n") == []


def test_pins_refuse_a_key_not_given_and_one_shared_pin_covers_all_hosts():
    assert unpinned({"a": KEY_A, "b": KEY_B}, [FP_A, FP_B]) == []
    assert unpinned({"a": KEY_A, "b": KEY_A}, [FP_A]) == []
    assert unpinned({"a": KEY_A, "b": KEY_B}, [FP_A]) == [f"b offered ssh-ed25519 {FP_B}"]


def test_console_check_refuses_other_keys_and_hosts_that_published_none():
    assert not_on_console({"a": KEY_A}, {"a": console_keys(CONSOLE)}) == []
    [other] = not_on_console({"a": KEY_B}, {"a": console_keys(CONSOLE)})
    assert FP_B in other and "did not publish" in other
    [silent] = not_on_console({"a": KEY_A}, {"a": []})
    assert "holds no SSH host keys" in silent


def _trust(capsys, project, *args):
    code = main(["--config", str(project / "deploy.toml"), "hosts", "trust", "--env", "staging", "--json", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def offered(monkeypatch):
    """The key exchange, answered by a table: host -> key (and a record of who was asked)."""
    keys = {"10.0.0.1": KEY_A, "10.0.0.2": KEY_B}
    asked = []

    def scan(host, port=22, timeout=10.0, *, via=None):
        asked.append((host, port) if via is None else (host, port, via.host))
        return keys[host].key_type, keys[host].blob

    monkeypatch.setattr("deployctl.adapters.ssh.scan_host_key", scan)
    return keys, asked


def test_trust_with_yes_and_fingerprints_writes_a_0600_file(capsys, project, offered):
    code, out, err = _trust(capsys, project, "--yes", "--fingerprint", FP_A, "--fingerprint", FP_B)
    assert code == 0, err
    path = Path(known_hosts_path(load_config(project / "deploy.toml"), "staging"))
    assert path.read_text() == known_hosts_text({("10.0.0.1", 22): KEY_A, ("10.0.0.2", 2222): KEY_B})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    result = json.loads(out.strip().splitlines()[-1])
    assert [(h["host"], h["fingerprint"], h["status"]) for h in result["hosts"]] == [
        ("10.0.0.1", FP_A, "new"), ("10.0.0.2:2222", FP_B, "new")]
    assert offered[1] == [("10.0.0.1", 22), ("10.0.0.2", 2222)]

    offered[0]["10.0.0.2"] = KEY_A  # host 2 rebuilt, or someone in the way
    code, out, err = _trust(capsys, project, "--yes", "--fingerprint", FP_A, "--fingerprint", FP_B)
    assert code == 0, err  # both keys were given: the operator vouched for this one
    assert [h["status"] for h in json.loads(out.strip().splitlines()[-1])["hosts"]] == ["unchanged", "CHANGED"]


def test_trust_refuses_a_key_whose_fingerprint_was_not_given_and_writes_nothing(capsys, project, offered):
    code, _, err = _trust(capsys, project, "--yes", "--fingerprint", FP_A)
    assert code == ExitCode.CONNECT and f"10.0.0.2:2222 offered ssh-ed25519 {FP_B}" in err
    assert "Traceback" not in err
    assert not os.path.exists(known_hosts_path(load_config(project / "deploy.toml"), "staging"))


@pytest.mark.parametrize("args, says", [
    (["--yes"], "--yes would trust whatever key answers"),
    (["--yes", "--fingerprint", "SHA256:short"], "is not a SHA256 fingerprint"),
    ([], "needs a yes typed on a terminal"),  # stdin is not a terminal under pytest
])
def test_trust_without_a_check_or_a_person_is_a_usage_error(capsys, project, offered, args, says):
    code, _, err = _trust(capsys, project, *args)
    assert code == ExitCode.USAGE and says in err
    assert not os.path.exists(known_hosts_path(load_config(project / "deploy.toml"), "staging"))


def test_check_pins_error_is_a_connect_error():
    from deployctl.services.host_keys import Scanned, Target, check_pins

    with pytest.raises(ConnectError, match="nothing was written"):
        check_pins([Scanned(Target("h", "h", 22, None), KEY_B, None)], [FP_A])


def test_config_shows_the_known_hosts_file_connections_will_use(capsys, project):
    code = main(["--config", str(project / "deploy.toml"), "config", "--env", "staging", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["ssh"]["known_hosts"] == str(project / "xdg" / "deployctl" / "known_hosts" / "pinapp-staging")


class _Terminal(io.StringIO):
    """Typed answers on what claims to be a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("answer, code", [("n\n", ExitCode.USAGE), ("y\n", ExitCode.OK)])
def test_trust_on_a_terminal_writes_only_after_a_yes(capsys, project, offered, monkeypatch, answer, code):
    monkeypatch.setattr("sys.stdin", _Terminal(answer))
    got = main(["--config", str(project / "deploy.toml"), "hosts", "trust", "--env", "staging"])
    out, err = capsys.readouterr()
    assert got == code, err
    assert FP_A in out and FP_B in out  # shown before the question
    written = os.path.exists(known_hosts_path(load_config(project / "deploy.toml"), "staging"))
    assert written == (code == ExitCode.OK)


def test_a_known_hosts_file_named_in_deploy_toml_keeps_its_other_lines(capsys, project, offered):
    """`pinned` names keys/known_hosts: maybe a team's, maybe someone's ~/.ssh/known_hosts.
    Only its host's line is replaced."""
    own = project / "keys" / "known_hosts"
    own.parent.mkdir()
    own.write_text(f"# team file\nother.example {KEY_B.key_type} {KEY_B.blob}\n10.0.0.3,alias {KEY_B.key_type} {KEY_B.blob}\n")
    offered[0]["10.0.0.3"] = KEY_A
    code = main(["--config", str(project / "deploy.toml"), "hosts", "trust", "--env", "pinned", "--yes",
                 "--fingerprint", FP_A])
    assert code == 0, capsys.readouterr().err
    assert own.read_text() == (f"# team file\nother.example {KEY_B.key_type} {KEY_B.blob}\n"
                               f"10.0.0.3 {KEY_A.key_type} {KEY_A.blob}\n")


SWARM = """
[environments.swarm]
target = "swarm"
manager = "10.0.0.9"
"""


class _Manager:
    """The manager as `docker node ls` and `docker node inspect` of what it listed answer on it
    (plan/swarm/services.inspect_listed_nodes: one command)."""

    host = "10.0.0.9"

    def __init__(self, calls):
        self.calls = calls

    def connect(self):
        self.calls.append("connect")
        return self

    def run(self, argv, *, stdin=None, timeout=None):
        from deployctl.adapters.connector import CommandResult

        from deployctl.plan.swarm import services as sw

        self.calls.append(argv)
        if argv != sw.inspect_listed_nodes():  # listed and inspected in one command
            return CommandResult(127, "", f"unexpected: {argv}")
        return CommandResult(0, "mgr\t0.0.0.0\tready\tactive\t10.0.0.9:2377\n"
                                "w1\t10.0.0.10\tready\tactive\t\nw2\t10.0.0.11\tready\tactive\t\n", "")

    def close(self):
        self.calls.append("close")


def test_swarm_pins_the_manager_first_then_its_nodes_through_the_pinned_manager(capsys, project, offered, monkeypatch):
    (project / "deploy.toml").write_text(CONFIG + SWARM)
    offered[0].update({"10.0.0.9": KEY_A, "10.0.0.10": KEY_B, "10.0.0.11": KEY_B})
    calls: list = []
    monkeypatch.setattr("deployctl.services.hosts.manager_connector", lambda loaded, env: _Manager(calls))
    args = ["--config", str(project / "deploy.toml"), "hosts", "trust", "--env", "swarm", "--json", "--yes",
            "--fingerprint", FP_A, "--fingerprint", FP_B]

    assert main(args) == 0, capsys.readouterr().err
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [h["host"] for h in first["hosts"]] == ["10.0.0.9"] and "not pinned yet" in first["note"]
    assert calls == []  # never logged in to a manager whose key was not pinned

    assert main(args) == 0, capsys.readouterr().err
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(h["host"], h["status"]) for h in second["hosts"]] == [
        ("10.0.0.9", "unchanged"), ("10.0.0.10", "new"), ("10.0.0.11", "new")]
    assert calls[0] == "connect" and calls[-1] == "close" and second["note"] is None
    assert len(calls) == 3  # connect, the one node listing, close
    path = known_hosts_path(load_config(project / "deploy.toml"), "swarm")
    assert Path(path).read_text().count("\n") == 3


JUMPED = """[environments.private]
target = "ssh"
hosts = ["10.0.0.1", "10.0.0.2:2222"]
[environments.private.ssh]
proxy_jump = "ops@bastion.example.com:2200"
"""


class _Jump:
    host = "bastion.example.com:2200"

    def __init__(self, calls):
        self.calls = calls

    def connect(self):
        self.calls.append("connect")
        return self

    def close(self):
        self.calls.append("close")


def test_hosts_behind_a_jump_host_are_scanned_through_it_once_its_own_key_is_pinned(capsys, project, offered,
                                                                                    monkeypatch):
    (project / "deploy.toml").write_text(CONFIG + JUMPED)
    keys, asked = offered
    keys["bastion.example.com"] = KEY_B
    calls: list = []
    made = []

    def jump_connector(loaded, environment, env_name, *, key_file, known_hosts):
        made.append((environment.ssh.jump(), known_hosts))
        return _Jump(calls)

    monkeypatch.setattr("deployctl.services.hosts.jump_connector", jump_connector)
    args = ["--config", str(project / "deploy.toml"), "hosts", "trust", "--env", "private", "--json", "--yes",
            "--fingerprint", FP_A, "--fingerprint", FP_B]

    assert main(args) == 0, capsys.readouterr().err
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [h["host"] for h in first["hosts"]] == ["bastion.example.com:2200"] and "jump host" in first["note"]
    assert asked == [("bastion.example.com", 2200)] and calls == []  # never logged in to an unpinned bastion

    assert main(args) == 0, capsys.readouterr().err
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(h["host"], h["status"]) for h in second["hosts"]] == [
        ("bastion.example.com:2200", "unchanged"), ("10.0.0.1", "new"), ("10.0.0.2:2222", "new")]
    assert asked[1:] == [("bastion.example.com", 2200), ("10.0.0.1", 22, _Jump.host), ("10.0.0.2", 2222, _Jump.host)]
    assert calls == ["connect", "close"]
    path = known_hosts_path(load_config(project / "deploy.toml"), "private")
    jump, verified_against = made[0]
    assert (jump.host, jump.port, jump.user, verified_against) == ("bastion.example.com", 2200, "ops", path)
    assert Path(path).read_text().count("\n") == 3
