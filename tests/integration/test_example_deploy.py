"""End to end with an app we did not write (examples/bootcamp-users: hostname calls,
DATABASE_URI from env, no health or version endpoint, single-stage Dockerfiles, mysql with
an init SQL file, no proxy directory): `deployctl init` on its compose file, then build,
deploy, a second release and a rollback under continuous traffic through deployctl's proxy,
on the local target and on an SSH host. Nothing in deploy.toml is edited by hand but the
test's port and state directory (and, for SSH, the environment and registry appended).

Zero failed requests, and after each switch every answer comes from the switched-to
release (the proxy's X-Deployctl-Release stamp: the app itself never names a release).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.deploy_fixtures import DEPLOYCTL, docker, free_port, remove_app
from tests.support.example_app import EXAMPLE, tag_official_names
from tests.support.net import direct, wait_until
from tests.support.traffic import Traffic

pytestmark = pytest.mark.integration


def cli(*argv: str, cwd, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([DEPLOYCTL, *argv], cwd=cwd, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=timeout)


def events(done: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def step_done_at(done: subprocess.CompletedProcess, step: str) -> float:
    return next(e["at"] for e in events(done) if e.get("event") == "step_done" and e.get("step") == step)


def switched_at(done: subprocess.CompletedProcess) -> float:
    return step_done_at(done, "switch")


def result(done: subprocess.CompletedProcess) -> dict:
    return events(done)[-1]


def git(project: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=project, check=True,
                   capture_output=True)


def page(port: int) -> str:
    return page_at(f"http://127.0.0.1:{port}")


def page_at(url: str) -> str:
    """The example's page at `url` (a proxy, a load balancer), "" while nothing answers."""
    try:
        with direct.open(f"{url}/", timeout=5) as response:
            return response.read().decode()
    except OSError:
        return ""


@pytest.fixture
def example(docker_client, standin_images, tmp_path):
    """A git checkout of the example with the deploy.toml `deployctl init` wrote."""
    tag_official_names(docker_client)
    try:  # deployctl's proxy default image
        docker_client.images.get("nginx:1.27-alpine")
    except Exception:
        docker_client.images.get(standin_images["nginx"]).tag("nginx", "1.27-alpine")
    project = tmp_path / "bootcamp-users"
    shutil.copytree(EXAMPLE, project)
    git(project, "init", "-q")
    app = "ex" + uuid.uuid4().hex[:8]
    env = {"DB_PASSWORD": secrets.token_urlsafe(12), "DOCKER_BUILDKIT": "0"}
    done = cli("init", "--app", app, cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    git(project, "add", "-A")
    git(project, "commit", "-qm", "v1")
    yield project, app, env
    remove_app(app)
    for volume in docker("volume", "ls", "-q", "--filter", f"name={app}-", check=False).split():
        docker("volume", "rm", "-f", volume, check=False)
    for image in docker("images", "-q", "--filter", f"reference=*/{app}/*", check=False).split() + \
            docker("images", "-q", "--filter", f"reference={app}/*", check=False).split():
        docker("rmi", "-f", image, check=False)


def a_second_revision(project: Path) -> None:
    template = project / "frontend" / "templates" / "index.html"
    template.write_text(template.read_text().replace("</body>", "<p>v2</p></body>"))
    git(project, "commit", "-qam", "v2")


def ok(project: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    """`deployctl ARGV` in the project, which must succeed."""
    done = cli(*argv, cwd=project, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    return done


def release_cycle(project: Path, env: dict, port: int, deploy_args: list[str], build: list[list[str]]) -> None:
    """deploy v1; under traffic: deploy v2, roll back to v1; check every answer."""
    for argv in build:
        ok(project, env, *argv)
    first = ok(project, env, *deploy_args, "--json")
    v1 = result(first)["release"]
    assert env["DB_PASSWORD"] not in first.stdout + first.stderr
    wait_until(lambda: "Ada Lovelace" in page(port), timeout=120, what="the example through deployctl's proxy",
               interval=1)
    a_second_revision(project)
    with Traffic(f"http://127.0.0.1:{port}/", workers=4, max_seconds=300) as traffic:
        time.sleep(1)
        for argv in build:
            ok(project, env, *argv)
        second = ok(project, env, *deploy_args, "--json")
        v2 = result(second)["release"]
        time.sleep(1)
        env_name = deploy_args[deploy_args.index("--env") + 1]
        rollback_started = time.time()
        back = ok(project, env, "rollback", "--env", env_name, "--json")
        time.sleep(1)
    report = traffic.report
    assert report.total > 50, report.summary()
    assert report.failures == [], report.summary() + repr(report.failures[:3])
    to_v2, to_v1 = switched_at(second), switched_at(back)
    assert [s for s in report.samples if to_v2 <= s.started < rollback_started and set(s.releases) != {v2}] == []
    assert report.wrong_release_after(to_v1, v1) == []
    assert {v1, v2} <= set(report.releases()), report.summary()
    assert "<p>v2</p>" not in page(port)  # v1's page again
    assert "Ada Lovelace" in page(port)  # the data outlived both switches (the db accessory)


def test_init_then_release_and_rollback_locally_under_traffic(example, tmp_path):
    project, app, env = example
    port = free_port()
    toml = project / "deploy.toml"
    toml.write_text(re.sub(r"(?m)^proxy_port = \d+.*$", f'proxy_port = {port}\nstate_dir = "{tmp_path / "state"}"',
                           toml.read_text()) + '\n[environments.local.rollout]\nguard_window = 0\n')
    git(project, "commit", "-qam", "test port")
    release_cycle(project, env, port, ["deploy", "--env", "local"], [["build"]])


def test_init_then_release_and_rollback_over_ssh_under_traffic(example, ssh_host, registry, tmp_path):
    project, app, env = example
    port = free_port()
    toml = project / "deploy.toml"
    text = toml.read_text().replace(f'app = "{app}"', f'app = "{app}"\n\n[registry]\nserver = "{registry.address}"\n'
                                                      f'namespace = "{app}"', 1)
    text += (f'\n[environments.staging]\ntarget = "ssh"\nhosts = ["{ssh_host.host}:{ssh_host.port}"]\n'
             f'proxy_port = {port}\nstate_dir = "{tmp_path / "state"}"\naccessories = ["db"]\n'
             f'[environments.staging.ssh]\nuser = "{ssh_host.user}"\nkey_file = "{ssh_host.key_file}"\n'
             f'known_hosts = "{ssh_host.known_hosts_file}"\n'
             '[environments.staging.rollout]\nguard_window = 0\n')
    toml.write_text(text)
    git(project, "commit", "-qam", "staging")
    release_cycle(project, env, port, ["deploy", "--env", "staging"], [["build"], ["push"]])
