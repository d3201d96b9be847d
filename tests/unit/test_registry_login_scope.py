"""The hosts' registry login lives in a docker client config directory of its own, made for
one command and removed after the host's pull, on every path (services/lifecycle/preflight.py): the
host user's ~/.docker/config.json never holds the password. Scripted fake connector."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.adapters.connector import CommandResult
from deployctl.errors import ConnectError, DeployctlError, RemoteCommandError
from deployctl.plan.lifecycle import docker_commands as dc
from deployctl.secrets import Secret
from deployctl.services.lifecycle import preflight
from deployctl.services.env import Env

PASSWORD = "pull-only-s3cret-value"
DIR = "/tmp/deployctl-registry.AbCdEf1234"


class Scripted:
    """Answers each argv by the first matching rule (a prefix of it); records what ran."""

    def __init__(self, host: str = "web1", fail: tuple[str, ...] = ()) -> None:
        self.host, self.fail = host, fail
        self.ran: list[tuple[list[str], bytes | None]] = []
        self.registry_config: str | None = None
        self.closed = False

    def connect(self):  # type: ignore[no-untyped-def]
        return self

    def run(self, argv, *, stdin=None, timeout=None, on_line=None) -> CommandResult:  # type: ignore[no-untyped-def]
        argv = list(argv)
        self.ran.append((argv, stdin))
        joined = " ".join(argv)
        if any(word in joined for word in self.fail):
            return CommandResult(1, "", f"failed: {joined}")
        if argv[0] == "mktemp":
            return CommandResult(0, DIR + "\n", "")
        if argv[:3] == ["docker", "image", "inspect"]:
            return CommandResult(1, "", "No such image")
        if argv[:2] == ["docker", "version"]:
            return CommandResult(0, "20.10.24\n", "")
        return CommandResult(0, "", "")

    def read_file(self, path):  # type: ignore[no-untyped-def]
        return None

    def close(self) -> None:
        self.closed = True

    def argvs(self) -> list[list[str]]:
        return [argv for argv, _ in self.ran]


def test_login_pull_and_logout_argv() -> None:
    assert dc.registry_config_dir() == ["mktemp", "-d", "-t", "deployctl-registry.XXXXXXXXXX"]
    assert dc.login("reg:5000", "puller", DIR) == [
        "docker", "--config", DIR, "login", "--username", "puller", "--password-stdin", "reg:5000"]
    assert dc.pull("reg:5000/a@sha256:1", DIR) == ["docker", "--config", DIR, "pull", "--quiet", "reg:5000/a@sha256:1"]
    assert dc.pull("a") == ["docker", "pull", "--quiet", "a"]
    assert dc.remove_registry_config(DIR) == ["rm", "-rf", "--", DIR]
    assert dc.sweep_registry_configs("/tmp") == [  # what a killed deployctl left, a day later
        "find", "/tmp", "-maxdepth", "1", "-type", "d", "-name", "deployctl-registry.*", "-mmin", "+1440",
        "-exec", "rm", "-rf", "--", "{}", "+"]
    assert dc.with_registry_auth(DIR) == ["docker", "--config", DIR, "service", "create", "--detach",
                                          "--with-registry-auth"]
    assert dc.with_registry_auth(False) == ["docker", "service", "create", "--detach"]


def test_the_login_goes_to_its_own_config_and_leaves_after_the_pull() -> None:
    conn = Scripted()
    assert preflight.registry_login(conn, lambda e: None, "reg:5000", "puller", Secret(PASSWORD)) == DIR
    preflight.pull(conn, lambda e: None, ["reg:5000/a@sha256:1"])
    assert conn.argvs() == [
        dc.registry_config_dir(),
        dc.sweep_registry_configs("/tmp"),
        dc.login("reg:5000", "puller", DIR),
        dc.image_present("reg:5000/a@sha256:1"),
        dc.pull("reg:5000/a@sha256:1", DIR),
        dc.remove_registry_config(DIR),
    ]
    assert conn.ran[2][1] == PASSWORD.encode()  # on stdin only
    assert not any(PASSWORD in " ".join(argv) for argv in conn.argvs())
    assert conn.registry_config is None


def test_a_failed_pull_still_removes_the_login() -> None:
    conn = Scripted(fail=(" pull ",))
    preflight.registry_login(conn, lambda e: None, "reg:5000", "puller", Secret(PASSWORD))
    with pytest.raises(RemoteCommandError):
        preflight.pull(conn, lambda e: None, ["reg:5000/a@sha256:1"])
    assert conn.argvs()[-1] == dc.remove_registry_config(DIR)


def test_a_refused_login_removes_its_directory() -> None:
    conn = Scripted(fail=("login",))
    with pytest.raises(ConnectError, match="docker login to reg:5000"):
        preflight.registry_login(conn, lambda e: None, "reg:5000", "puller", Secret(PASSWORD))
    assert conn.argvs()[-1] == dc.remove_registry_config(DIR)
    assert conn.registry_config is None


def test_a_deploy_that_stops_after_the_login_removes_it_from_every_host(tmp_path: Path) -> None:
    """Host 1 logs in, host 2's preflight fails: the deploy ends before any pull, and host 1's
    login still leaves (services/lifecycle/deploy.py: the `finally` that closes the connectors)."""
    from deployctl.config import LoadedConfig, parse_config
    from deployctl.services.lifecycle.deploy import deploy
    from deployctl.services.lifecycle.release_images import ReleaseImages

    config = parse_config(
        'app = "shop"\n[registry]\nserver = "reg:5000"\nusername = "puller"\n'
        '[services.web]\ncontext = "web"\nrouted = true\n'
        '[environments.prod]\ntarget = "ssh"\nhosts = ["web1", "web2"]\n')
    loaded = LoadedConfig(tmp_path / "deploy.toml", config)
    good, bad = Scripted("web1"), Scripted("web2", fail=("version",))
    images = ReleaseImages({"web": "reg:5000/web@sha256:1", "proxy": "nginx:1"}, "abc1234")
    with pytest.raises(DeployctlError):
        deploy(Env.resolve(loaded, "prod"), images, {}, lambda e: None, registry_password=Secret(PASSWORD),
               connectors=[good, bad])
    assert dc.login("reg:5000", "puller", DIR) in good.argvs()
    assert good.argvs()[-1] == dc.remove_registry_config(DIR) and good.closed
    assert bad.registry_config is None and dc.registry_config_dir() not in bad.argvs()


def test_accessory_boot_logs_in_only_when_this_shell_has_the_password(tmp_path: Path, monkeypatch) -> None:
    """`accessory boot` can no longer rely on a login a deploy left on the host: it logs in
    for itself when the environment's source has the password, and goes without otherwise."""
    from deployctl.config import LoadedConfig, parse_config
    from deployctl.services.lifecycle.deploy_inputs import optional_hosts_login

    config = parse_config(
        'app = "shop"\n[registry]\nserver = "reg:5000"\nusername = "puller"\n'
        '[services.web]\ncontext = "web"\nrouted = true\n'
        '[environments.prod]\ntarget = "ssh"\nhosts = ["web1"]\n[environments.dev]\ntarget = "local"\n')
    loaded = LoadedConfig(tmp_path / "deploy.toml", config)
    monkeypatch.delenv("DEPLOYCTL_REGISTRY_PASSWORD", raising=False)
    assert optional_hosts_login(Env.resolve(loaded, "prod")) is None
    monkeypatch.setenv("DEPLOYCTL_REGISTRY_PASSWORD", PASSWORD)
    login = optional_hosts_login(Env.resolve(loaded, "prod"))
    assert login is not None and (login.server, login.username, login.password) == ("reg:5000", "puller",
                                                                                  Secret(PASSWORD))
    assert optional_hosts_login(Env.resolve(loaded, "dev")) is None
