"""End to end: `deployctl init` on examples/bootcamp-users (an app not written for
deployctl), then `deployctl build` and `deployctl deploy --env local` with the file exactly as
init wrote it (only proxy_port and state_dir moved for the test), and the page served through
deployctl's proxy lists the seed row of the db accessory's init.sql.

NOTE (branch `example`): this needs the lead's built-in proxy (`proxy.context` unset ->
`proxy.image`), the per-release network where services reach each other by their deploy.toml
names, accessory `files` and `{{ secret.NAME }}` in env, which land in parallel. It is
marked xfail (not strict) until those are merged; the lead removes the marker after merging.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import uuid

import pytest

from tests.integration.deploy_fixtures import DEPLOYCTL, docker, free_port, remove_app
from tests.support.example_app import EXAMPLE, tag_official_names
from tests.support.net import direct, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.xfail(reason="needs the built-in proxy / per-release network landing in parallel; "
                             "remove this marker once merged", strict=False),
]


def cli(*argv: str, cwd, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([DEPLOYCTL, *argv], cwd=cwd, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=timeout)


def test_init_build_deploy_the_example(docker_client, standin_images, tmp_path):
    tag_official_names(docker_client)
    try:  # deployctl's proxy default image
        docker_client.images.get("nginx:1.27-alpine")
    except Exception:
        docker_client.images.get(standin_images["nginx"]).tag("nginx", "1.27-alpine")
    project = tmp_path / "bootcamp-users"
    shutil.copytree(EXAMPLE, project)
    for args in (["init"], ["add", "-A"], ["-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)
    app = "ex" + uuid.uuid4().hex[:8]
    port = free_port()
    env = {"DB_PASSWORD": secrets.token_urlsafe(12), "DOCKER_BUILDKIT": "0"}
    try:
        done = cli("init", "--app", app, cwd=project, env=env)
        assert done.returncode == 0, done.stderr
        toml = project / "deploy.toml"
        text = re.sub(r"(?m)^proxy_port = \d+.*$", f'proxy_port = {port}\nstate_dir = "{tmp_path / "state"}"',
                      toml.read_text())
        toml.write_text(text)
        build = cli("build", cwd=project, env=env)
        assert build.returncode == 0, build.stdout + build.stderr
        deploy = cli("deploy", "--env", "local", cwd=project, env=env)
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr

        def page() -> str:
            try:
                with direct.open(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    return response.read().decode()
            except OSError:
                return ""

        wait_until(lambda: "Ada Lovelace" in page(), timeout=120, what="the example through deployctl's proxy",
                   interval=1)
    finally:
        remove_app(app)
        for volume in docker("volume", "ls", "-q", "--filter", f"name={app}-", check=False).split():
            docker("volume", "rm", "-f", volume, check=False)
        for image in docker("images", "-q", "--filter", f"reference={app}/*", check=False).split():
            docker("rmi", "-f", image, check=False)
