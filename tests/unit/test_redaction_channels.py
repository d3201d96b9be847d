"""A secret planted where it can reach output, then every channel that leaves the process
grepped for it: plain, Rich (TTY), --json, the --debug traceback, `deployctl logs` (which
loads the environment's secrets for its redactor), and files written (the host's release
history). Each planted value is new, so no earlier test's registration can mask it."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from deployctl.adapters.connector import CommandResult
from deployctl.cli.main import main

CONFIG = '''app = "shop"
[registry]
server = "reg:5000"
username = "puller"
[services.web]
context = "web"
routed = true
secrets = ["DB_PASSWORD"]
[environments.prod]
target = "ssh"
hosts = ["web1"]
'''


def planted() -> str:
    return f'Planted"{secrets.token_hex(6)}\\x'  # a quote and a backslash: JSON escapes them


def escaped(value: str) -> str:
    return json.dumps(value)[1:-1]


class LoggingHost:
    """A host whose live container's log echoes the secret (or whose engine fails, naming it)."""

    host = "web1"
    registry_config = None

    def __init__(self, secret: str, fail: bool = False) -> None:
        self.secret, self.fail = secret, fail

    def connect(self):  # type: ignore[no-untyped-def]
        return self

    def read_file(self, path: str) -> bytes | None:
        return b"20261206-000000-abc1234\n" if path.endswith("/current") else None

    def run(self, argv, *, stdin=None, timeout=None, on_line=None) -> CommandResult:  # type: ignore[no-untyped-def]
        if self.fail:
            raise RuntimeError(f"engine answered with DB_PASSWORD={self.secret}")
        for line in (f"connecting with password {self.secret}", f"registry {self.secret[::-1]}", "ready"):
            on_line(line)
        return CommandResult(0, "", "")

    def close(self) -> None:
        pass


def leaked(secret: str, *texts: str) -> bool:
    return any(secret in text or escaped(secret) in text for text in texts)


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "deploy.toml"
    path.write_text(CONFIG)
    return path


def _logs(capsys, monkeypatch, project: Path, secret: str, *flags: str, fail: bool = False,
          mode: str | None = None) -> tuple[int, str, str]:
    monkeypatch.setenv("DB_PASSWORD", secret)
    monkeypatch.setenv("DEPLOYCTL_REGISTRY_PASSWORD", secret[::-1])  # the hosts' pull password
    monkeypatch.setattr("deployctl.services.inspect._open", lambda env, conns: [LoggingHost(secret, fail)])
    if mode is not None:
        monkeypatch.setattr("deployctl.cli.context.detect_mode", lambda json_output: mode)
    code = main(["--config", str(project), "logs", "--env", "prod", "--service", "web", *flags])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("flags,mode", [((), None), (("--json",), None), ((), "rich")], ids=["plain", "json", "rich"])
def test_logs_masks_the_environments_secrets_in_every_mode(capsys, monkeypatch, project, flags, mode) -> None:
    secret = planted()
    code, out, err = _logs(capsys, monkeypatch, project, secret, *flags, mode=mode)
    assert code == 0 and "ready" in out and "password ***" in out and "registry ***" in out
    assert not leaked(secret, out, err) and not leaked(secret[::-1], out, err)


def test_logs_says_which_secret_it_cannot_mask(capsys, monkeypatch, project) -> None:
    monkeypatch.delenv("DB_PASSWORD", raising=False)
    monkeypatch.setattr("deployctl.services.inspect._open", lambda env, conns: [LoggingHost("x" * 8)])
    assert main(["--config", str(project), "logs", "--env", "prod", "--service", "web"]) == 0
    assert "warning: secret 'DB_PASSWORD' is not in this shell's secret source" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [("--debug",), ("--debug", "--json")], ids=["debug", "debug-json"])
def test_the_debug_traceback_is_masked(capsys, monkeypatch, project, flags) -> None:
    secret = planted()
    code, out, err = _logs(capsys, monkeypatch, project, secret, *flags, fail=True)
    assert code != 0 and "Traceback (most recent call last)" in err and "RuntimeError" in err
    assert not leaked(secret, out, err)


def test_the_release_history_on_the_host_is_masked(tmp_path: Path) -> None:
    from deployctl.adapters.local import LocalConnector
    from deployctl.plan.lifecycle.names import StateLayout
    from deployctl.plan.lifecycle.releases import ReleaseRecord
    from deployctl.secrets import redactor
    from deployctl.services.lifecycle.host_state import HostState

    secret = planted()
    redactor.add(secret)
    layout = StateLayout(str(tmp_path), "shop", "prod")
    HostState(LocalConnector(), layout).record(ReleaseRecord(
        "20261206-000000-abc1234", "abc1234", {"web": "r/web@sha256:1"}, "deploy", "failed", "ci", "2026-12-06T00:00:00Z",
        message=f"hotfix {secret}", error=f"migration said {secret}"))
    text = Path(layout.history).read_text()
    assert "migration said ***" in text and not leaked(secret, text)


def test_print_json_and_tables_are_masked(capsys) -> None:
    from deployctl.cli.common import table
    from deployctl.cli.context import AppContext
    from deployctl.secrets import redactor

    secret = planted()
    redactor.add(secret)
    AppContext(mode="json").print_json({"hosts": [{"error": f"said {secret}", "port": 2026}]})
    table(AppContext(mode="plain"), "t", ["host", "error"], [["web1", f"said {secret}"]])
    out = capsys.readouterr().out
    assert '"port": 2026' in out and "said ***" in out and not leaked(secret, out)
