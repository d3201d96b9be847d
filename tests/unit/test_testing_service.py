"""The pure parts of `deployctl test`: command, database env, verdicts from reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.config.load import LoadedConfig, parse_config
from deployctl.errors import ExitCode, TestsFailedError, UsageError
from deployctl.secrets import Secret
from deployctl.services.pipeline.testing import DEFAULT_COMMAND, SuiteDatabase, SuiteResult, TestRequest, _command, _read_reports, raise_for_failures, select_services, summary_line

JUNIT = '<testsuites><testsuite tests="5" failures="{f}" errors="0" skipped="1"/></testsuites>'
COVERAGE = '<coverage lines-valid="100" lines-covered="{c}" branches-valid="0" branches-covered="0"/>'


def reports(tmp_path: Path, *, failures: int = 0, covered: int | None = 95) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "junit.xml").write_text(JUNIT.format(f=failures))
    if covered is not None:
        (tmp_path / "coverage.xml").write_text(COVERAGE.format(c=covered))
    return tmp_path


def verdict(tmp_path, *, status=0, floor=0.0, collected=True, **kw) -> SuiteResult:
    result = SuiteResult("api", status=status, floor=floor, reports=reports(tmp_path / "r", **kw))
    _read_reports(result, collected)
    return result


def test_a_passing_suite(tmp_path):
    result = verdict(tmp_path, floor=90)
    assert result.ok and result.coverage == 95.0
    assert (result.counts.passed, result.counts.skipped) == (4, 1)
    assert summary_line(result) == "4 passed, 0 failed, 1 skipped, coverage 95.0%"


def test_nonzero_exit_fails_even_with_reports(tmp_path):
    result = verdict(tmp_path, status=1, failures=1)
    assert result.problems == ["the suite exited 1"]


def test_coverage_floor(tmp_path):
    assert verdict(tmp_path, floor=96).problems == ["coverage 95.0% is below the floor of 96%"]
    assert verdict(tmp_path / "b", floor=50, covered=None).problems == ["no coverage.xml, but coverage_floor is 50%"]
    assert verdict(tmp_path / "c", floor=0, covered=None).ok  # no floor, no coverage needed


def test_missing_junit_means_the_suite_did_not_finish(tmp_path):
    result = verdict(tmp_path, collected=False)
    assert result.problems == ["no junit.xml: the suite did not run to the end"]


def test_raise_for_failures_lists_each_failed_service(tmp_path):
    ok = SuiteResult("web", status=0, reports=tmp_path / "web")
    bad = SuiteResult("api", status=1, reports=tmp_path / "api", problems=["the suite exited 1"])
    raise_for_failures([ok])
    with pytest.raises(TestsFailedError) as info:
        raise_for_failures([ok, bad])
    assert info.value.exit_code == ExitCode.BUILD_OR_TEST
    assert info.value.message == "tests failed for api\n  api: the suite exited 1"


def test_command_places_reports_and_uses_the_given_python():
    request = TestRequest(reports_dir=Path("/r"))
    command = _command(request, "/tmp/out", python="/venv/bin/python")
    assert command[0] == "/venv/bin/python" and command[1:3] == ["-m", "pytest"]
    assert "--junitxml=/tmp/out/junit.xml" in command
    assert "--cov-report=xml:/tmp/out/coverage.xml" in command
    assert "--cov-report=html:/tmp/out/htmlcov" in command
    assert len(command) == len(DEFAULT_COMMAND)


def test_database_environment_leaves_unset_values_to_the_suite():
    assert SuiteDatabase().environment() == {"TEST_DATABASE_HOST": "127.0.0.1"}
    full = SuiteDatabase("db", 3307, "tester", Secret("pw-1234"))
    assert full.environment(host="172.17.0.1") == {
        "TEST_DATABASE_HOST": "172.17.0.1", "TEST_DATABASE_PORT": "3307",
        "TEST_DATABASE_USER": "tester", "TEST_DATABASE_PASSWORD": "pw-1234"}
    assert "pw-1234" not in repr(full)


def test_select_services_skips_those_without_a_test_stage(tmp_path):
    config = parse_config("""
        app = "shop"
        [services.api]
        context = "api"
        test_target = "test"
        [services.worker]
        context = "worker"
        [services.web]
        context = "web"
        routed = true
        test_target = ""
        [environments.local]
        target = "local"
    """)
    loaded = LoadedConfig(tmp_path / "deploy.toml", config)
    # api names its test stage; worker has none (the default now) and web's "" means none.
    assert select_services(loaded, []) == ["api"]
    assert select_services(loaded, ["worker", "web"]) == []
    with pytest.raises(UsageError, match="did you mean 'api'"):
        select_services(loaded, ["apj"])


def test_a_test_command_that_wrote_no_junit_fails_naming_the_path(tmp_path):
    result = SuiteResult("web", "command", status=0, reports=tmp_path / "none")
    _read_reports(result, False, junit_from="/app/out/junit.xml")
    assert result.problems == ["no JUnit report at /app/out/junit.xml: the test command wrote none there"]


def test_without_reports_junit_the_exit_status_is_the_verdict(tmp_path):
    passed = SuiteResult("web", "command", status=0, reports=tmp_path / "a")
    _read_reports(passed, False, junit_required=False)
    assert passed.ok and passed.counts is None and summary_line(passed) == ""
    failed = SuiteResult("web", "command", status=2, reports=tmp_path / "b")
    _read_reports(failed, False, junit_required=False)
    assert failed.problems == ["the suite exited 2"]


def test_services_without_tests_are_reported_not_failed(tmp_path):
    from deployctl.events import Recorder
    from deployctl.services.pipeline.testing import run_tests

    config = parse_config("""
        app = "shop"
        [services.web]
        context = "web"
        routed = true
        [environments.local]
        target = "local"
    """)
    recorder = Recorder()
    results = run_tests(LoadedConfig(tmp_path / "deploy.toml", config), TestRequest(reports_dir=tmp_path / "r"),
                        emit=recorder)
    assert [(r.service, r.flow, r.note, r.ok) for r in results] == [("web", "none", "no tests", True)]
    assert summary_line(results[0]) == "no tests"
    raise_for_failures(results)  # not an error
    texts = [getattr(e, "text", "") for e in recorder.events]
    assert any(t.startswith("nothing to test: no service in deploy.toml has tests") for t in texts)
