"""`deployctl push` against real registries (htpasswd, open, ECR via moto): digests recorded
in the artifacts file must be what the registry itself serves."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from deployctl.errors import ExitCode
from tests.support.net import free_port, http_status, wait_until
from tests.support.registry import start_registry
from tests.integration.tinyproject import (
    SCRATCH_DOCKERFILE, SCRATCH_PROXY_DOCKERFILE, make_project, remove_images, run_cli,
)

pytestmark = pytest.mark.integration

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def registry_digest(url: str, name: str, tag: str, auth: tuple[str, str] | None = None) -> str:
    """The manifest digest as the registry's API reports it (Docker-Content-Digest)."""
    request = urllib.request.Request(f"{url}/v2/{name}/manifests/{tag}", method="HEAD",
                                     headers={"Accept": MANIFEST_V2})
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["Docker-Content-Digest"]


def artifacts_of(project) -> dict:
    return json.loads((project.root / ".deployctl" / "build.json").read_text())


@pytest.fixture
def built(tmp_path, capsys, docker_client):
    """make(registry=..., registry_extra=...) -> a project whose (tiny) images are built for
    that registry. Building the stand-in based images is covered by the build tests and
    the real app's test; here the registry side is what is under test."""
    made = []

    def make(**options):
        project = make_project(tmp_path / f"proj{len(made)}", api_dockerfile=SCRATCH_DOCKERFILE,
                               proxy_dockerfile=SCRATCH_PROXY_DOCKERFILE, **options)
        made.append(project)
        run = run_cli(capsys, project, "build", "--no-test-images")
        assert run.code == ExitCode.OK, (run.error, run.stderr)
        return project

    yield make
    for project in made:
        remove_images(docker_client, project.app)


def test_build_push_round_trip_with_basic_auth(capsys, built, auth_registry, monkeypatch):
    project = built(registry=auth_registry.address, registry_extra=f'username = "{auth_registry.username}"')
    monkeypatch.setenv("DEPLOYCTL_REGISTRY_PASSWORD", auth_registry.password)
    run = run_cli(capsys, project, "push")
    assert run.code == ExitCode.OK, (run.error, run.stderr)
    assert auth_registry.password not in run.stdout + run.stderr

    artifacts = artifacts_of(project)
    auth = (auth_registry.username, auth_registry.password)
    for name in ("api", "proxy"):
        image = artifacts["images"][name]
        served = registry_digest(auth_registry.url, f"itest/{name}", image["tag"], auth)
        assert image["digest"] == served
        assert image["pinned"] == f"{auth_registry.address}/itest/{name}@{served}"
        assert run.of("step_done", step="push", service=name)
    assert {p["image"]: p["pinned"] for p in run.result["pushed"]} == {
        n: artifacts["images"][n]["pinned"] for n in ("api", "proxy")}

    # Pushing again transfers nothing, and says so.
    again = run_cli(capsys, project, "push")
    assert again.code == ExitCode.OK
    assert all(p["layers_pushed"] == 0 and p["layers_existing"] > 0 for p in again.result["pushed"])
    assert all("nothing transferred" in e["detail"] for e in again.of("step_done", step="push"))
    assert artifacts_of(project) == artifacts


def test_wrong_password_is_exit_4_and_records_nothing(capsys, built, auth_registry, monkeypatch):
    project = built(registry=auth_registry.address, registry_extra=f'username = "{auth_registry.username}"')
    monkeypatch.setenv("DEPLOYCTL_REGISTRY_PASSWORD", "not-the-password")
    before = artifacts_of(project)
    run = run_cli(capsys, project, "push")
    assert run.code == ExitCode.CONNECT == 4
    assert "refused the credentials" in run.error["problems"][0]
    assert artifacts_of(project) == before
    assert all(image["digest"] is None for image in before["images"].values())
    assert "not-the-password" not in run.stdout + run.stderr


def test_missing_password_is_a_config_error(capsys, built, auth_registry, monkeypatch):
    project = built(registry=auth_registry.address, registry_extra='username = "someone"')
    monkeypatch.delenv("DEPLOYCTL_REGISTRY_PASSWORD", raising=False)
    run = run_cli(capsys, project, "push")
    assert run.code == ExitCode.CONFIG
    assert "DEPLOYCTL_REGISTRY_PASSWORD" in run.error["problems"][0]


def test_registry_down_is_exit_4_and_records_nothing(capsys, built):
    project = built(registry=f"127.0.0.1:{free_port()}")  # nothing listens there
    run = run_cli(capsys, project, "push")
    assert run.code == ExitCode.CONNECT
    assert run.error["problems"][0].startswith("cannot reach the registry 127.0.0.1:")
    assert all(image["digest"] is None for image in artifacts_of(project)["images"].values())


def test_open_registry_needs_no_credentials(capsys, built, registry):
    project = built(registry=registry.address)
    run = run_cli(capsys, project, "push", "--service", "proxy")
    assert run.code == ExitCode.OK, run.error
    images = artifacts_of(project)["images"]
    assert images["proxy"]["digest"] == registry_digest(registry.url, "itest/proxy", images["proxy"]["tag"])
    assert images["api"]["digest"] is None  # not pushed, not recorded


# -- ECR: the token comes from moto's GetAuthorizationToken, the push goes to a real registry


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory):
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    try:
        wait_until(lambda: http_status(f"http://127.0.0.1:{port}/moto-api/") is not None, 60, "moto_server")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture(scope="module")
def ecr_registry(tmp_path_factory):
    """A real registry that accepts what moto's token decodes to (user AWS, password
    '<account>-auth-token'), so the whole ECR login path is exercised."""
    server = start_registry(tmp_path_factory.mktemp("ecr-registry"), username="AWS",
                            password="123456789012-auth-token")
    yield server.address
    server.stop()


def test_ecr_login_from_get_authorization_token(capsys, built, moto_endpoint, ecr_registry, monkeypatch):
    monkeypatch.setenv("DEPLOYCTL_AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    project = built(registry=ecr_registry, registry_extra='provider = "ecr"\nregion = "eu-west-1"')
    run = run_cli(capsys, project, "push", "-s", "api")
    assert run.code == ExitCode.OK, (run.error, run.stderr)
    assert run.of("step_done", step="login")
    assert "123456789012-auth-token" not in run.stdout + run.stderr
    image = artifacts_of(project)["images"]["api"]
    assert image["digest"] == registry_digest(f"http://{ecr_registry}", "itest/api", image["tag"],
                                              ("AWS", "123456789012-auth-token"))


def test_ecr_unreachable_is_exit_4(capsys, built, monkeypatch):
    monkeypatch.setenv("DEPLOYCTL_AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    project = built(registry_extra='provider = "ecr"\nregion = "eu-west-1"')
    run = run_cli(capsys, project, "push")
    assert run.code == ExitCode.CONNECT
    problem = run.error["problems"][0]
    assert "cannot reach" in problem and "ECR" in problem
