"""Issue 11, items 6 and 7, against the real engine: any Dockerfile builds (single stage, no
target; a missing base image is one clear line, exit 5), and a service without a test stage
is tested by its [test] command in the shipped image, secrets rendered and never shown."""

from __future__ import annotations

import hashlib
import json
import secrets
import xml.etree.ElementTree as ET

import pytest

from deployctl.cli.main import main
from deployctl.errors import ExitCode
from tests.integration.tinyproject import (
    COMMAND_TEST_TABLE, UNITTEST_BROKEN, UNITTEST_SUITE, make_single_stage_project, remove_images, run_cli,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def projects(tmp_path, docker_client):
    made = []

    def make(**options):
        project = make_single_stage_project(tmp_path / f"proj{len(made)}", **options)
        made.append(project)
        return project

    yield make
    for project in made:
        remove_images(docker_client, project.app)


def build(capsys, project, standin_images, *extra):
    return run_cli(capsys, project, "build", "--build-arg", f"BASE_IMAGE={standin_images['python']}", *extra)


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# -- item 6: any Dockerfile builds -----------------------------------------------------------

def test_a_single_stage_dockerfile_builds_with_target_unset(capsys, projects, standin_images, docker_client):
    project = projects()
    run = build(capsys, project, standin_images)
    assert run.code == ExitCode.OK, (run.error, run.stderr)

    artifacts = json.loads((project.root / ".deployctl" / "build.json").read_text())
    assert list(artifacts["images"]) == ["web"]  # the built-in proxy is not built
    web = artifacts["images"]["web"]
    assert web["repository"] == f"{project.app}/web" and web["test_image"] is None
    image = docker_client.images.get(web["image_id"])
    assert image.labels["io.deployctl.service"] == "web"
    assert image.attrs["Config"]["Cmd"] == ["python", "app.py"]  # the (only, so last) stage shipped
    assert run.of("step_done", step="build", service="web")


def test_target_unset_ships_the_last_stage_of_a_multi_stage_dockerfile(capsys, projects, standin_images,
                                                                         docker_client):
    project = projects(dockerfile=(
        "ARG BASE_IMAGE=python:3.12-slim\n"
        "FROM ${BASE_IMAGE} AS builder\nRUN echo built > /built.txt\n"
        "FROM ${BASE_IMAGE}\nCOPY --from=builder /built.txt /shipped.txt\nCMD [\"cat\", \"/shipped.txt\"]\n"))
    run = build(capsys, project, standin_images)
    assert run.code == ExitCode.OK, (run.error, run.stderr)
    web = run.result["images"]["web"]
    assert docker_client.images.get(web["image_id"]).attrs["Config"]["Cmd"] == ["cat", "/shipped.txt"]
    assert docker_client.containers.run(web["image_id"], remove=True).strip() == b"built"


def test_a_missing_base_image_is_one_clear_line_and_exit_5(capsys, projects):
    project = projects()
    run = run_cli(capsys, project, "build", "--build-arg", "BASE_IMAGE=deployctl-standin/no-such-base:missing")
    assert run.code == ExitCode.BUILD_OR_TEST == 5
    (line,) = run.error["problems"]  # one line, no hint after it
    assert line.startswith("build failed: web: base image deployctl-standin/no-such-base:missing is not in the "
                           "engine and cannot be pulled (")
    assert line.endswith("); pull it, or pass a stand-in with --build-arg web:BASE_IMAGE=IMAGE")
    assert "\n" not in line and "Traceback" not in run.stderr
    assert not (project.root / ".deployctl" / "build.json").exists()

    # Plain output: the same single line on stderr, no traceback.
    code = main(["--config", str(project.config), "build", "--build-arg", "BASE_IMAGE=deployctl-standin/no-such-base:missing"])
    out, err = capsys.readouterr()
    assert code == 5
    errors = [l for l in err.splitlines() if l.startswith(("error:", "hint:"))]
    assert errors == [f"error: {line}"] and "Traceback" not in out + err


def test_a_literal_missing_from_says_to_pull_or_tag(capsys, projects):
    project = projects(dockerfile="FROM deployctl-standin/literal-missing:1\nCMD [\"true\"]\n")
    run = run_cli(capsys, project, "build")
    assert run.code == ExitCode.BUILD_OR_TEST
    (line,) = run.error["problems"]
    assert "base image deployctl-standin/literal-missing:1 is not in the engine and cannot be pulled" in line
    assert line.endswith("pull it, or tag a stand-in with its name (docker tag IMAGE deployctl-standin/literal-missing:1)")


# -- item 7: tests for any service ------------------------------------------------------------

@pytest.fixture
def secret_env(monkeypatch, mariadb):
    """A fresh secret in the environment (the `env` secret source) and the test DB password."""
    token = f"tok-{secrets.token_hex(12)}"
    monkeypatch.setenv("WEB_API_TOKEN", token)
    monkeypatch.setenv("TEST_DATABASE_PASSWORD", mariadb.password)
    return token


def command_project(projects, mariadb, token: str, extra: str = ""):
    suite = UNITTEST_SUITE.format(token_sha256=sha256(token), password_sha256=sha256(mariadb.password), extra=extra)
    database = (f'[test_database]\nhost = "{mariadb.host}"\nport = {mariadb.port}\nuser = "{mariadb.user}"\n')
    return projects(service_extra=COMMAND_TEST_TABLE, suite=suite, top_extra=database)


def test_a_test_command_runs_in_the_shipped_image_with_rendered_env(capsys, projects, standin_images, mariadb,
                                                                     secret_env, docker_client):
    token = secret_env
    project = command_project(projects, mariadb, token)
    built = build(capsys, project, standin_images)
    assert built.code == ExitCode.OK, built.error

    run = run_cli(capsys, project, "test", "--env", "local")
    assert run.code == ExitCode.OK, (run.error, run.events[-8:])
    (suite,) = run.result["suites"]
    assert (suite["service"], suite["flow"], suite["ok"], suite["exit_status"]) == ("web", "command", True, 0)
    assert (suite["passed"], suite["failed"], suite["skipped"]) == (3, 0, 1)
    assert run.result["tested"] == 1
    assert run.of("step_started", step="test", service="web", detail="in the shipped image")

    junit = ET.parse(project.root / "reports" / "web" / "junit.xml").getroot()
    assert junit.tag == "testsuite" and junit.get("tests") == "4"
    # The command saw the secret (its test compares a hash) and printed it; deployctl masked it.
    lines = [e["detail"] for e in run.of("step_progress", step="test", service="web")]
    assert any(line.endswith("the token is ***") for line in lines), lines
    assert token not in run.stdout + run.stderr and mariadb.password not in run.stdout + run.stderr
    # Never in the image: the env went to the test container only, and that is gone.
    assert token not in json.dumps(docker_client.images.get(built.result["images"]["web"]["image_id"]).attrs)
    assert not docker_client.containers.list(all=True, filters={"ancestor": built.result["images"]["web"]["image_id"]})

    # Plain output too.
    code = main(["--config", str(project.config), "test"])
    out, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    assert token not in out + err and mariadb.password not in out + err
    assert "web" in out and "3" in out


def test_a_failing_test_command_is_exit_5_with_the_failure_counted(capsys, projects, standin_images, mariadb,
                                                                    secret_env):
    project = command_project(projects, mariadb, secret_env, extra=UNITTEST_BROKEN)
    assert build(capsys, project, standin_images).code == ExitCode.OK
    run = run_cli(capsys, project, "test")
    assert run.code == ExitCode.BUILD_OR_TEST == 5
    (suite,) = run.result["suites"]
    assert (suite["ok"], suite["passed"], suite["failed"], suite["exit_status"]) == (False, 3, 1, 1)
    (failed,) = run.of("step_failed", step="test", service="web")
    assert any("deliberately broken" in line for line in failed["output"])
    assert "tests failed for web" in run.error["problems"][0]
    junit = ET.parse(project.root / "reports" / "web" / "junit.xml").getroot()
    assert junit.get("failures") == "1" and junit.find("testcase/failure") is not None


def test_a_command_that_writes_no_junit_fails_naming_the_path(capsys, projects, standin_images, mariadb, secret_env):
    table = ('[services.web.test]\ncommand = ["python", "-c", "print(\'all good, honest\')"]\n'
             'reports = { junit = "out/junit.xml" }\n')
    project = projects(service_extra=table)
    assert build(capsys, project, standin_images).code == ExitCode.OK
    run = run_cli(capsys, project, "test")
    assert run.code == ExitCode.BUILD_OR_TEST
    (suite,) = run.result["suites"]
    assert suite["exit_status"] == 0
    # A relative report path is taken from the image's WORKDIR, as the command would.
    assert suite["problems"] == ["no JUnit report at /home/app/out/junit.xml: the test command wrote none there"]


def test_a_missing_secret_fails_before_any_container_runs(capsys, projects, standin_images, mariadb, secret_env,
                                                          monkeypatch):
    project = command_project(projects, mariadb, secret_env)
    assert build(capsys, project, standin_images).code == ExitCode.OK
    monkeypatch.delenv("WEB_API_TOKEN")
    run = run_cli(capsys, project, "test")
    assert run.code == ExitCode.CONFIG
    assert run.error["problems"][0] == "secret 'WEB_API_TOKEN' is missing from the environment for test.env"
    assert not run.of("step_started", step="test")


def test_a_service_with_no_tests_is_reported_not_failed(capsys, projects, standin_images):
    project = projects()
    assert build(capsys, project, standin_images).code == ExitCode.OK
    run = run_cli(capsys, project, "test")
    assert run.code == ExitCode.OK, run.error
    (suite,) = run.result["suites"]
    assert (suite["service"], suite["flow"], suite["note"], suite["ok"]) == ("web", "none", "no tests", True)
    assert run.result["tested"] == 0
    (message,) = [e for e in run.events if e["event"] == "message" and e.get("level") == "warning"]
    assert message["text"].startswith("nothing to test: no service in deploy.toml has tests")
    assert run.of("step_skipped", step="test", service="web", reason="no tests")
