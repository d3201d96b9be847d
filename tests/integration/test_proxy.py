"""deployctl's own proxy: the configuration it renders passes `nginx -t` in the nginx image;
a changed configuration and a changed proxy image both reach the host with the next deploy
under continuous traffic without a failed request; a project's own proxy image extends it
through its snippet folders."""

from __future__ import annotations

import json
import time

import pytest

from deployctl.config import load_config
from deployctl.events import Recorder
from deployctl.plan.edge.proxy_config import RELEASE_HEADER, render_proxy_config
from deployctl.plan.lifecycle.release_spec import ProxySpec
from deployctl.secrets import Secret
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.env import Env
from tests.integration.deploy_fixtures import (PROXY_STANDIN, docker, free_port, probe_config,
                                               remove_app, unique_app)
from tests.support.net import direct
from tests.support.traffic import Traffic

pytestmark = pytest.mark.integration
SECRETS = {"PROBE_DB_PASSWORD": Secret("probe-password-value")}



def test_the_rendered_configuration_passes_nginx_t_in_the_image(tmp_path, standin_images):
    spec = ProxySpec("nginx", False, listen_port=8080, health_path="/up", connect_timeout=2.5, read_timeout=30,
                     max_body_size="10m")
    (tmp_path / "nginx.conf").write_text(render_proxy_config(spec, "r2", {"r1": "127.0.0.1:9001",
                                                                          "r2": "127.0.0.1:9002"}))
    (tmp_path / "empty.conf").write_text(render_proxy_config(spec, None, {}))
    for name in ("nginx.conf", "empty.conf"):
        out = docker("run", "--rm", "-v", f"{tmp_path}:/etc/deployctl/proxy:ro", "--entrypoint", "nginx",
                     standin_images["nginx"], "-t", "-c", f"/etc/deployctl/proxy/{name}")
        assert "failed" not in out


def _images(probe, revision: str) -> ReleaseImages:
    return ReleaseImages({"backend": probe.good, "frontend": probe.good}, revision)


def test_a_changed_proxy_configuration_and_image_deploy_under_traffic_without_a_failure(tmp_path, probe_images):
    app, port = unique_app(), free_port()
    path = probe_config(tmp_path, app, port=port)
    try:
        v1 = deploy(Env.resolve(load_config(path), "local"), _images(probe_images, "1111111aaaa"), SECRETS, Recorder()).release
        nginx_before = docker("ps", "--filter", f"label=io.deployctl.app={app}",
                              "--filter", "label=io.deployctl.role=proxy-nginx", "--format", "{{.Names}}")
        # Another image name for the same nginx: a different proxy image as far as deployctl knows.
        other = f"deployctl-test/nginx-{app}:other"
        docker("tag", PROXY_STANDIN, other)
        with Traffic(f"http://127.0.0.1:{port}/version", workers=4, max_seconds=180) as traffic:
            time.sleep(0.5)
            path.write_text(path.read_text().replace("[proxy]\n", "[proxy]\nmax_body_size = \"2m\"\nread_timeout = 20\n"))
            v2 = deploy(Env.resolve(load_config(path), "local"), _images(probe_images, "2222222bbbb"), SECRETS, Recorder()).release
            config = (tmp_path / "state" / app / "local" / "proxy" / "nginx.conf").read_text()
            assert "client_max_body_size 2m;" in config and "proxy_read_timeout 20000ms;" in config
            time.sleep(0.5)
            path.write_text(path.read_text().replace(f'image = "{PROXY_STANDIN}"', f'image = "{other}"'))
            v3 = deploy(Env.resolve(load_config(path), "local"), _images(probe_images, "3333333cccc"), SECRETS, Recorder()).release
            time.sleep(0.5)
        report = traffic.report
        assert report.total > 100, report.summary()
        assert report.failures == [], report.summary() + repr(report.failures[:3])
        assert {v1, v2, v3} <= set(report.releases()) | {v1}
        nginx_after = docker("ps", "--all", "--filter", f"label=io.deployctl.app={app}",
                             "--filter", "label=io.deployctl.role=proxy-nginx", "--format", "{{.Names}} {{.Image}}")
        assert nginx_after.splitlines() != [] and nginx_before not in nginx_after  # the old nginx is gone
        assert [line.split()[1] for line in nginx_after.splitlines()] == [other]
        with direct.open(f"http://127.0.0.1:{port}/version", timeout=5) as response:
            assert response.headers[RELEASE_HEADER] == v3
            assert json.loads(response.read())["frontend"]["release"] == v3
    finally:
        remove_app(app)
        docker("rmi", f"deployctl-test/nginx-{app}:other", check=False)


def test_a_project_proxy_image_extends_the_configuration_with_its_snippets(tmp_path, probe_images):
    """This repository's nginx/ image: its deployctl.d/ security headers and /api refusal are
    served by the proxy deployctl configures, beside deployctl's own release stamp."""
    app, port = unique_app(), free_port()
    path = probe_config(tmp_path, app, port=port)
    path.write_text(path.read_text().replace("[proxy]\n", "[proxy]\ncontext = \"nginx\"\n"))
    try:
        images = ReleaseImages({"backend": probe_images.good, "frontend": probe_images.good,
                                "proxy": probe_images.proxy}, "4444444dddd")
        v1 = deploy(Env.resolve(load_config(path), "local"), images, SECRETS, Recorder()).release
        with direct.open(f"http://127.0.0.1:{port}/version", timeout=5) as response:
            assert response.headers[RELEASE_HEADER] == v1
            assert response.headers["X-Frame-Options"] == "DENY"
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        try:
            direct.open(f"http://127.0.0.1:{port}/api/users", timeout=5)
            raise AssertionError("/api must not be proxied")
        except OSError as exc:
            assert getattr(exc, "code", None) == 404
    finally:
        remove_app(app)
