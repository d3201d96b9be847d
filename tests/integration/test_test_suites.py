"""`deployctl test`: suites run inside the built test images (and --local), reports copied out."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

import pytest

from deployctl.errors import ExitCode
from tests.integration.tinyproject import FAILING_SUITE, make_project, remove_images, run_cli, standin_args

pytestmark = pytest.mark.integration


@pytest.fixture
def make(tmp_path, docker_client, capsys, standin_images):
    made = []

    def make_built(**options):
        project = make_project(tmp_path / f"proj{len(made)}", **options)
        made.append(project)
        run = run_cli(capsys, project, "build", *standin_args(standin_images), "-s", "api")
        assert run.code == ExitCode.OK, (run.error, run.stderr)
        return project

    yield make_built
    for project in made:
        remove_images(docker_client, project.app)


def db_args(mariadb):
    return ["--db-host", mariadb.host, "--db-port", str(mariadb.port), "--db-user", mariadb.user]


def test_passing_suite_in_the_test_image(capsys, make, mariadb, monkeypatch):
    monkeypatch.setenv("TEST_DATABASE_PASSWORD", mariadb.password)
    project = make(coverage_floor=30)
    run = run_cli(capsys, project, "test", *db_args(mariadb))
    assert run.code == ExitCode.OK, (run.error, run.events[-5:])

    (suite,) = run.result["suites"]
    assert (suite["service"], suite["ok"], suite["exit_status"]) == ("api", True, 0)
    assert (suite["passed"], suite["failed"], suite["skipped"]) == (2, 0, 1)
    assert 30 <= suite["coverage"] < 100 and suite["coverage_floor"] == 30

    reports = project.root / "reports" / "api"
    assert ET.parse(reports / "junit.xml").getroot().tag == "testsuites"
    assert ET.parse(reports / "coverage.xml").getroot().tag == "coverage"
    assert (reports / "htmlcov" / "index.html").is_file()
    # The suite's output streamed as progress; the password never appears in it.
    lines = [e["detail"] for e in run.of("step_progress", step="test", service="api")]
    assert any("2 passed, 1 skipped" in line for line in lines)
    assert mariadb.password not in run.stdout + run.stderr


def test_failing_suite_is_exit_5_with_the_summary(capsys, make, mariadb):
    project = make(suite=FAILING_SUITE)
    run = run_cli(capsys, project, "test", *db_args(mariadb))
    assert run.code == ExitCode.BUILD_OR_TEST == 5
    (suite,) = run.result["suites"]
    assert (suite["ok"], suite["passed"], suite["failed"]) == (False, 1, 1)
    assert suite["exit_status"] == 1
    (failed,) = run.of("step_failed", step="test")
    assert any("deliberately broken" in line for line in failed["output"])
    assert "tests failed for api" in run.error["problems"][0]
    assert (project.root / "reports" / "api" / "junit.xml").is_file()  # reports even when it fails


def test_coverage_below_the_floor_fails_the_stage(capsys, make, mariadb):
    project = make(coverage_floor=99)
    run = run_cli(capsys, project, "test", *db_args(mariadb))
    assert run.code == ExitCode.BUILD_OR_TEST
    (suite,) = run.result["suites"]
    assert suite["failed"] == 0 and suite["coverage"] < 99
    assert any("below the floor of 99%" in p for p in suite["problems"])


def test_local_runs_the_same_suite_on_this_machine(capsys, tmp_path, mariadb, monkeypatch):
    project = make_project(tmp_path / "proj")
    monkeypatch.setenv("TEST_DATABASE_PASSWORD", mariadb.password)
    run = run_cli(capsys, project, "test", "--local", *db_args(mariadb))
    assert run.code == ExitCode.OK, (run.error, run.events[-5:])
    (suite,) = run.result["suites"]
    assert (suite["passed"], suite["skipped"]) == (2, 1)
    assert (project.root / "reports" / "api" / "coverage.xml").is_file()
    assert run.of("step_started", step="test", detail="on this machine")
    assert sys.executable  # the host interpreter ran it (no image was built for this project)


def test_without_a_build_the_user_is_told_to_build(capsys, tmp_path):
    project = make_project(tmp_path / "proj")
    run = run_cli(capsys, project, "test")
    assert run.code == ExitCode.USAGE
    assert "no artifacts file" in run.error["problems"][0]
