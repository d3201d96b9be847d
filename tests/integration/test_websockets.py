"""The site features of deployctl's proxy on this machine's engine, in one walk (two
deploys): WebSockets across a deploy (a connection opened on release 1 keeps answering
from release 1 after the switch while new connections reach release 2; it ends when
release 1 is stopped after its drain); each release network on a /26 of the deployctl
pool; maintenance mode on and off through the CLI (503, Retry-After, the given page, the
health check still 200, `status --json` says so)."""

from __future__ import annotations

import ipaddress
import json
import threading
import time
import urllib.error

import pytest

from deployctl.cli.main import main
from deployctl.config import load_config
from deployctl.events import Recorder
from deployctl.plan.edge.proxy_config import RELEASE_HEADER
from deployctl.secrets import Secret
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.env import Env
from tests.integration.deploy_fixtures import docker, free_port, probe_config, remove_app, unique_app
from tests.support.net import direct, wait_until
from tests.support.websocket import WebSocket

pytestmark = pytest.mark.integration
SECRETS = {"PROBE_DB_PASSWORD": Secret("probe-password-value")}
DRAIN = 4.0


def _serving(port: int) -> str | None:
    try:
        with direct.open(f"http://127.0.0.1:{port}/version", timeout=2) as response:
            return response.headers.get(RELEASE_HEADER)
    except OSError:
        return None


def test_websockets_across_a_deploy_release_subnets_and_maintenance_mode(tmp_path, probe_images, capsys):
    app, port = unique_app(), free_port()
    # warm_window 0: the old release stops after its drain, which is what ends its connections.
    path = probe_config(tmp_path, app, port=port, drain=DRAIN, rollout={"warm_window": 0}, health_timeout=30)
    images = lambda revision: ReleaseImages({"backend": probe_images.good, "frontend": probe_images.good}, revision)  # noqa: E731
    try:
        v1 = deploy(Env.resolve(load_config(path), "local"), images("1111111aaaa"), SECRETS, Recorder()).release
        old = WebSocket("127.0.0.1", port)
        assert old.ask("hello") == f"{v1}:hello"
        result: dict = {}
        second = threading.Thread(target=lambda: result.update(
            v2=deploy(Env.resolve(load_config(path), "local"), images("2222222bbbb"), SECRETS, Recorder()).release))
        second.start()
        try:
            wait_until(lambda: _serving(port) not in (None, v1), 60, "the second release serving")
            # Then steadily: right after a reload nginx's old workers still accept for a moment
            # with the old configuration, so one answer from release 2 did not mean a new
            # connection goes there yet (a CI rehearsal opened one that landed on release 1).
            wait_until(lambda: all(_serving(port) not in (None, v1) for _ in range(5)), 30,
                       "the second release serving every request")
            v2 = _serving(port)
            # The switch happened and the drain is under way: the open connection is still
            # on release 1, a new one is on release 2, and both go on answering.
            new = WebSocket("127.0.0.1", port)
            for n in range(3):
                assert old.ask(f"m{n}") == f"{v1}:m{n}"
                assert new.ask(f"m{n}") == f"{v2}:m{n}"
                time.sleep(0.2)
        finally:
            second.join(120)
        assert result["v2"] == v2
        # Release 1 was stopped after the drain: its connection is closed, the new one is not.
        with pytest.raises(OSError):
            old.ask("after")
        assert new.ask("after") == f"{v2}:after"
        assert WebSocket("127.0.0.1", port).ask("later") == f"{v2}:later"
        new.close()

        # Each release network is a /26 of the deployctl pool (Docker's ~30 pools stay free).
        subnet = ipaddress.ip_network(docker("network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
                                             f"{app}-local-{v2}"))
        assert subnet.prefixlen == 26 and subnet.subnet_of(ipaddress.ip_network("10.213.0.0/16"))

        # Maintenance: the CLI, a page of ours; every request 503 with Retry-After, the
        # proxy's health check still 200, WebSocket upgrades refused too; off serves again.
        page = tmp_path / "down.html"
        page.write_text("<h1>back at noon</h1>")

        def cli(*args: str) -> str:
            capsys.readouterr()
            code = main(["--config", str(path), *args])
            out, err = capsys.readouterr()
            assert code == 0, out + err
            return out

        cli("maintenance", "on", "--env", "local", "--page", str(page), "--retry-after", "60")
        with pytest.raises(urllib.error.HTTPError) as info:
            direct.open(f"http://127.0.0.1:{port}/version", timeout=5)
        assert info.value.code == 503 and info.value.headers["Retry-After"] == "60"
        assert info.value.read() == b"<h1>back at noon</h1>"
        with direct.open(f"http://127.0.0.1:{port}/nginx-health", timeout=5) as health:
            assert health.status == 200
        with pytest.raises(ConnectionError, match="503"):
            WebSocket("127.0.0.1", port)
        shown = json.loads(cli("--json", "status", "--env", "local").strip().splitlines()[-1])
        assert shown["hosts"][0]["maintenance"].startswith("on since") and shown["hosts"][0]["proxy_routes"] == v2
        cli("maintenance", "off", "--env", "local")
        assert _serving(port) == v2
        assert json.loads(cli("--json", "status", "--env", "local").strip().splitlines()[-1])["hosts"][0][
            "maintenance"] is None
    finally:
        remove_app(app)
