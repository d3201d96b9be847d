"""`deployctl accessory boot|stop|status|logs|remove` on a fleet (cli/accessory.py; boot:
services/data/accessory_boot.py): every host is connected before the first is acted on
(services/hosts.connected), so a host that cannot be reached is named, exit 4, and no
accessory changed on the hosts that could be."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.cli.main import main
from deployctl.errors import ConnectError, ExitCode
from tests.support.fake_host import FakeHost

CONFIG = """
app = "shop"
registry = { server = "registry.example" }
[services.web]
context = "web"
routed = true
[accessories.db]
image = "mariadb:11"
volumes = ["data:/var/lib/mysql"]

[environments.prod]
target = "ssh"
hosts = ["h1", "h2"]
"""


class Unreachable(FakeHost):
    def connect(self) -> "FakeHost":
        raise ConnectError(f"{self.host}: cannot connect (no route to host)")


@pytest.mark.parametrize("verb", ["boot", "stop", "remove"])
def test_an_unreachable_host_is_named_before_any_accessory_changes(tmp_path: Path, monkeypatch, capsys, verb) -> None:
    (tmp_path / "deploy.toml").write_text(CONFIG)
    reached, gone = FakeHost("h1"), Unreachable("h2")
    monkeypatch.setattr("deployctl.services.env.connectors_for", lambda loaded, env: [reached, gone])
    code = main(["--config", str(tmp_path / "deploy.toml"), "accessory", verb,
                 "db", "--env", "prod"])
    assert code == ExitCode.CONNECT
    assert "h2: cannot connect" in capsys.readouterr().err
    assert [text for call, text in reached.calls if call != "connect"] == []

