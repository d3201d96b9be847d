"""`deployctl remove` on this machine's engine, with two apps on it: the removed one's every
container (live and kept release, proxy), network, state directory and, only with
--volumes, labelled volume go, while the other app answers every request; a second run says
there is nothing to remove and exits 0."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from deployctl.config import load_config
from deployctl.events import Recorder
from deployctl.secrets import Secret
from deployctl.services.deploy import deploy
from deployctl.services.release_images import ReleaseImages
from tests.integration.deploy_fixtures import DEPLOYCTL, docker, free_port, probe_config, remove_app_with_data, unique_app
from tests.support.traffic import Traffic

pytestmark = pytest.mark.integration
SECRETS = {"PROBE_DB_PASSWORD": Secret("probe-password-value")}


def cli(config, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DEPLOYCTL, "--config", str(config), *args], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1"}, timeout=180, stdin=subprocess.DEVNULL)


def left_of(app: str) -> dict:
    label = f"label=io.deployctl.app={app}"
    return {"containers": docker("ps", "-aq", "--filter", label).split(),
            "networks": docker("network", "ls", "-q", "--filter", label).split(),
            "volumes": docker("volume", "ls", "-q", "--filter", label).split()}


def test_remove_takes_one_app_off_the_engine_while_the_other_serves(tmp_path, probe_images):
    a, b = unique_app(), unique_app()
    port_a, port_b = free_port(), free_port()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    path_a = probe_config(tmp_path / "a", a, port=port_a, state_dir=str(tmp_path / "state"))
    path_b = probe_config(tmp_path / "b", b, port=port_b, state_dir=str(tmp_path / "state"))
    images = ReleaseImages({"backend": probe_images.good, "frontend": probe_images.good}, "1111111aaaa")
    try:
        live_a = deploy(load_config(path_a), "local", images, SECRETS, Recorder()).release
        deploy(load_config(path_b), "local", images, SECRETS, Recorder())
        deploy(load_config(path_b), "local", ReleaseImages(images.images, "2222222bbbb"), SECRETS, Recorder())
        volume = f"{b}-local-db-data"  # as `accessory boot` labels an accessory's volume
        docker("volume", "create", "--label", f"io.deployctl.app={b}", "--label", "io.deployctl.env=local",
               "--label", "io.deployctl.role=accessory", volume)
        before = left_of(b)
        assert len(before["containers"]) >= 6 and len(before["networks"]) == 3  # 2 releases, proxy; app + 2 release nets

        dry = cli(path_b, "remove", "--env", "local", "--volumes", "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        result = json.loads(dry.stdout.splitlines()[-1])
        [host] = result["hosts"]
        assert host["removed"]["volumes"] == [volume]
        assert [s["step"] for s in host["steps"]] == ["containers", "networks", "volumes", "state"]
        assert left_of(b) == before  # the dry run changed nothing

        with Traffic(f"http://127.0.0.1:{port_a}/version", workers=2, max_seconds=60) as traffic:
            time.sleep(0.3)
            removed = cli(path_b, "remove", "--env", "local", "--yes")
            time.sleep(0.3)
        assert removed.returncode == 0, removed.stderr
        report = traffic.report
        assert report.total > 20 and report.failures == [], report.summary()
        assert set(report.releases()) == {live_a}
        assert left_of(b) == {"containers": [], "networks": [], "volumes": [volume]}  # data kept without --volumes
        assert not (tmp_path / "state" / b / "local").exists()
        assert (tmp_path / "state" / a / "local" / "current").read_text().strip() == live_a

        again = cli(path_b, "remove", "--env", "local", "--yes", "--json")
        assert again.returncode == 0, again.stderr
        [host] = json.loads(again.stdout.splitlines()[-1])["hosts"]
        assert host["nothing_to_remove"] is True  # volumes are only looked at with --volumes
        assert host["removed"] == {"containers": [], "networks": [], "volumes": [], "state_dir": None}

        data = cli(path_b, "remove", "--env", "local", "--yes", "--volumes")
        assert data.returncode == 0 and left_of(b)["volumes"] == [], data.stderr
        last = cli(path_b, "remove", "--env", "local", "--yes", "--volumes")
        assert last.returncode == 0 and "nothing to remove" in last.stdout + last.stderr, last.stdout + last.stderr
        assert not (tmp_path / "state" / b).joinpath("local").exists()
    finally:
        remove_app_with_data(a)
        remove_app_with_data(b)
