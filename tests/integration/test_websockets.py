"""WebSockets through deployctl's proxy across a deploy, on this machine's engine: a
connection opened on release 1 keeps answering from release 1 after the switch, while new
connections reach release 2; the connection ends when release 1 is stopped after its drain."""

from __future__ import annotations

import threading
import time

import pytest

from deployctl.config import load_config
from deployctl.events import Recorder
from deployctl.plan.proxy_config import RELEASE_HEADER
from deployctl.secrets import Secret
from deployctl.services.deploy import deploy
from deployctl.services.release_images import ReleaseImages
from tests.integration.deploy_fixtures import free_port, probe_config, remove_app, unique_app
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


def test_an_open_websocket_stays_on_its_release_across_a_deploy_and_new_ones_reach_the_new(tmp_path, probe_images):
    app, port = unique_app(), free_port()
    # warm_window 0: the old release stops after its drain, which is what ends its connections.
    path = probe_config(tmp_path, app, port=port, drain=DRAIN, rollout={"warm_window": 0})
    images = lambda revision: ReleaseImages({"backend": probe_images.good, "frontend": probe_images.good}, revision)  # noqa: E731
    try:
        v1 = deploy(load_config(path), "local", images("1111111aaaa"), SECRETS, Recorder()).release
        old = WebSocket("127.0.0.1", port)
        assert old.ask("hello") == f"{v1}:hello"
        result: dict = {}
        second = threading.Thread(target=lambda: result.update(
            v2=deploy(load_config(path), "local", images("2222222bbbb"), SECRETS, Recorder()).release))
        second.start()
        try:
            wait_until(lambda: _serving(port) not in (None, v1), 60, "the second release serving")
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
    finally:
        remove_app(app)
