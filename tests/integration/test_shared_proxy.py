"""Two apps (separate deploy.toml files) on this machine's engine behind one shared proxy
(docs/proxy.md, "Several apps on one host"), walked in phases: both deployed at once and
answering by Host header on the one port; B redeployed and rolled back under traffic to both with 0
failed requests; a B whose proxy configuration nginx refuses (a broken snippet in its proxy
image) refused with A's traffic untouched and B still serving; a host name A routes refused
for a third app; `deployctl remove` of B (dry run, then for real while A serves every
request, its data only with --volumes, a second run finding nothing), its host name then
answered 404 by the shared proxy."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from deployctl.config import load_config
from deployctl.errors import ConfigError, DeployError
from deployctl.events import Recorder
from deployctl.plan.edge.proxy_config import RELEASE_HEADER
from deployctl.secrets import Secret
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.lifecycle.rollback import rollback
from deployctl.services.env import Env
from tests.integration.deploy_fixtures import (DEPLOYCTL, PROXY_STANDIN, docker, free_port, probe_config,
                                               remove_app_with_data, unique_app)
from tests.support.traffic import Traffic

pytestmark = pytest.mark.integration
SECRETS = {"PROBE_DB_PASSWORD": Secret("probe-password-value")}


def ask(port: int, host: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/version", headers={"Host": host, "Connection": "close"})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader(RELEASE_HEADER) or ""
    finally:
        conn.close()


def cli(config, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DEPLOYCTL, "--config", str(config), *args], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1"}, timeout=180, stdin=subprocess.DEVNULL)


def left_of(app: str) -> dict:
    label = f"label=io.deployctl.app={app}"
    return {"containers": docker("ps", "-aq", "--filter", label).split(),
            "networks": docker("network", "ls", "-q", "--filter", label).split(),
            "volumes": docker("volume", "ls", "-q", "--filter", label).split()}


def shared_config(tmp_path, app: str, name: str, edge: int, host: str, **kwargs):  # type: ignore[no-untyped-def]
    folder = tmp_path / app
    folder.mkdir()
    path = probe_config(folder, app, port=free_port(), state_dir=str(tmp_path / "state"),
                        extra_env=f'shared_proxy = "{name}"\nshared_proxy_port = {edge}', **kwargs)
    path.write_text(path.read_text().replace("[proxy]\n", f'[proxy]\nhosts = ["{host}"]\n', 1))
    return path


def test_two_apps_share_one_proxy_each_deploys_rolls_back_and_is_removed_on_its_own(tmp_path, probe_images, monkeypatch):
    a, b, c = unique_app(), unique_app(), unique_app()
    name, edge = "e" + uuid.uuid4().hex[:8], free_port()
    path_a = shared_config(tmp_path, a, name, edge, f"{a}.test")
    path_b = shared_config(tmp_path, b, name, edge, f"{b}.test")
    images = ReleaseImages({"backend": probe_images.good, "frontend": probe_images.good}, "1111111aaaa")
    broken = f"deployctl-test/broken-proxy:{name}"
    try:
        # Phase 1: both deployed at once (each under its own lock; their first routes meet
        # at the shared proxy's lock, one starts it, the other's route is tested and
        # reloaded in); each answers on the shared port for its own host name only.
        with ThreadPoolExecutor(2) as pool:
            # (other revisions: the two first release ids may fall in the same second)
            first = [pool.submit(deploy, Env.resolve(load_config(p), "local"), ReleaseImages(images.images, revision),
                                 SECRETS, Recorder())
                     for p, revision in ((path_a, "aaaaaaa0000"), (path_b, "1111111aaaa"))]
            live_a, b1 = (f.result().release for f in first)
        routes = tmp_path / "state" / "shared-proxy" / name / "routes"
        seen = {p.name: p.read_text() for p in routes.iterdir()}
        assert ask(edge, f"{a}.test") == (200, live_a), (seen, docker("logs", "--tail", "30", f"deployctl-shared-proxy-{name}"))
        assert ask(edge, f"{b}.test") == (200, b1)
        assert ask(edge, "nobody.test")[0] == 404
        assert len(docker("ps", "-q", "--filter", f"label=io.deployctl.shared-proxy={name}").split()) == 1

        # Phase 2: B redeployed, then rolled back, under traffic to both: no failed request.
        with Traffic(f"http://127.0.0.1:{edge}/version", workers=2, host_header=f"{a}.test") as traffic_a, \
                Traffic(f"http://127.0.0.1:{edge}/version", workers=2, host_header=f"{b}.test") as traffic_b:
            traffic_a.wait_for(20)
            b2 = deploy(Env.resolve(load_config(path_b), "local"), ReleaseImages(images.images, "2222222bbbb"), SECRETS,
                        Recorder()).release
            assert ask(edge, f"{b}.test") == (200, b2)
            traffic_b.wait_for(20)
            rollback(Env.resolve(load_config(path_b), "local"), Recorder())
            traffic_b.wait_for(20)
        for report in (traffic_a.report, traffic_b.report):
            assert report.total > 40 and report.failures == [], report.summary()
        assert set(traffic_a.report.releases()) == {live_a}
        assert {b1, b2} <= set(traffic_b.report.releases()) and live_a not in traffic_b.report.releases()
        assert ask(edge, f"{b}.test") == (200, b1)

        # Phase 3: a proxy configuration of B that nginx refuses: B's deploy fails, B still
        # serves b1, A never noticed.
        subprocess.run(["docker", "build", "-q", "-t", broken, "-"], check=True, capture_output=True, text=True,
                       input=f"FROM {PROXY_STANDIN}\nRUN mkdir -p /etc/deployctl/proxy.d/http && "
                             "echo 'this_is_not_a_directive on;' > /etc/deployctl/proxy.d/http/broken.conf\n")
        path_b.write_text(path_b.read_text().replace(f'image = "{PROXY_STANDIN}"', f'image = "{broken}"'))
        # Its nginx exits at once (the restart policy brings it back to exit again): the
        # deploy need not wait the whole start timeout to say so.
        monkeypatch.setattr("deployctl.services.edge.proxy.START_TIMEOUT", 3.0)
        with Traffic(f"http://127.0.0.1:{edge}/version", workers=2, host_header=f"{a}.test") as traffic_a:
            traffic_a.wait_for(10)
            with pytest.raises(DeployError, match="nginx did not start"):
                deploy(Env.resolve(load_config(path_b), "local"), ReleaseImages(images.images, "3333333cccc"), SECRETS, Recorder())
            traffic_a.wait_for(10)
        assert traffic_a.report.failures == [] and set(traffic_a.report.releases()) == {live_a}
        assert ask(edge, f"{b}.test") == (200, b1)

        # A host name A routes, claimed by a third app: refused before anything changes.
        path_c = shared_config(tmp_path, c, name, edge, f"{a}.test")
        with pytest.raises(ConfigError, match=f"{a}.test is routed to {a} local"):
            deploy(Env.resolve(load_config(path_c), "local"), images, SECRETS, Recorder())
        assert docker("ps", "-aq", "--filter", f"label=io.deployctl.app={c}") == ""

        # Phase 4: `deployctl remove` of B (the CLI) while A serves every request: its dry
        # run first, then everything of B but its data, which goes with --volumes only; a
        # second run finds nothing.
        volume = f"{b}-local-db-data"  # as `accessory boot` labels an accessory's volume
        docker("volume", "create", "--label", f"io.deployctl.app={b}", "--label", "io.deployctl.env=local", volume)
        before = left_of(b)
        assert len(before["containers"]) >= 6 and len(before["networks"]) == 3  # app net + b1, b2 (b3 failed)
        dry = cli(path_b, "remove", "--env", "local", "--volumes", "--dry-run", "--json")
        [host] = json.loads(dry.stdout.splitlines()[-1])["hosts"]
        assert [s["step"] for s in host["steps"]] == ["routes", "routes", "containers", "networks", "volumes", "state"]
        assert host["removed"]["volumes"] == [volume] and left_of(b) == before  # the dry run changed nothing
        with Traffic(f"http://127.0.0.1:{edge}/version", workers=2, host_header=f"{a}.test") as traffic_a:
            traffic_a.wait_for(10)
            removed = cli(path_b, "remove", "--env", "local", "--yes")
            traffic_a.wait_for(10)
        assert removed.returncode == 0, removed.stderr
        assert traffic_a.report.failures == [] and set(traffic_a.report.releases()) == {live_a}
        assert ask(edge, f"{b}.test")[0] == 404
        assert left_of(b) == {"containers": [], "networks": [], "volumes": [volume]}
        assert not (tmp_path / "state" / b / "local").exists()
        assert sorted(p.name for p in (tmp_path / "state" / "shared-proxy" / name / "routes").iterdir()) == [
            f"z__{a}__local.map"]
        assert ask(edge, f"{a}.test") == (200, live_a)
        data = cli(path_b, "remove", "--env", "local", "--yes", "--volumes")
        assert data.returncode == 0 and left_of(b)["volumes"] == [], data.stderr
        again = cli(path_b, "remove", "--env", "local", "--yes", "--volumes")
        assert again.returncode == 0 and "nothing to remove" in again.stdout + again.stderr, again.stdout + again.stderr
    finally:
        for app in (a, b, c):
            remove_app_with_data(app)
        docker("rm", "-f", f"deployctl-shared-proxy-{name}", check=False)
        docker("rmi", broken, check=False)
