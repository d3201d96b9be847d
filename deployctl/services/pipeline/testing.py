"""`deployctl test`: each service's tests, reports copied to reports/<service>/, a summary and
a coverage floor. Which tests a service has is plan/pipeline/testing.py's `flow_of`:

- "stage" (test_target set): the suite runs inside the built test-stage image (or on this
  machine with `local=True`). The contract with the app: the test stage's working directory
  holds the suite and its pytest/coverage configuration, with pytest and pytest-cov installed;
  deployctl runs `command` there with `{reports}` replaced by a directory to write junit.xml,
  coverage.xml and htmlcov/ into.
- "command" ([services.NAME.test]): its command runs in the shipped image (test_command.py).
- "none": reported as "no tests", not an error.
"""

from __future__ import annotations

import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ...artifacts import Artifacts
from ...config.load import LoadedConfig
from ...errors import DeployctlError, TestsFailedError, UsageError
from ...events import Emit, Message, StepProgress, StepSkipped, Timer, serialized
from ...plan.pipeline.testing import COMMAND, NO_TESTS, STAGE, flow_of
from ...reports import ReportError, TestCounts, parse_coverage, parse_junit
from ...secrets import Secret
from . import test_command
from .test_command import SuiteDatabase  # noqa: F401 - its home is below this module; callers import it here

# Inside the container: /tmp is writable by the image's (non-root) user whatever it is.
CONTAINER_REPORTS = "/tmp/deployctl-reports"
DEFAULT_COMMAND = (
    "python", "-m", "pytest", "-p", "no:cacheprovider",
    "--junitxml={reports}/junit.xml",
    "--cov", "--cov-report=xml:{reports}/coverage.xml", "--cov-report=html:{reports}/htmlcov",
    "--cov-report=term",
)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class TestRequest:
    reports_dir: Path
    services: Sequence[str] = ()
    local: bool = False
    database: SuiteDatabase = SuiteDatabase()
    timeout: float | None = None  # None: test.timeout for a [test] command, else 1800 s
    command: Sequence[str] = DEFAULT_COMMAND
    # Where {{ secret.NAME }} in test.env is looked up (a secret_sources.SecretSource);
    # None: process environment variables, as the `env` source reads them.
    secret_source: Any = None
    __test__ = False

    @property
    def suite_timeout(self) -> float:
        return self.timeout or 1800.0


@dataclass
class SuiteResult:
    service: str
    flow: str = STAGE
    note: str | None = None  # why nothing ran ("no tests"), when nothing did
    status: int | None = None
    counts: TestCounts | None = None
    coverage: float | None = None
    floor: float = 0.0
    reports: Path | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


NO_TESTS_NOTE = "no tests"
LOCAL_NOTE = "not run with --local: its [test] command runs in the shipped image"


def select_services(loaded: LoadedConfig, names: Sequence[str]) -> list[str]:
    """The selected services that have tests (a test stage or a [test] command), in config order."""
    return [n for n in _selected(loaded, names) if flow_of(loaded.config.services[n]) != NO_TESTS]


def _selected(loaded: LoadedConfig, names: Sequence[str]) -> list[str]:
    from ...config.problems import suggest

    services = loaded.config.services
    for name in names:
        if name not in services:
            raise UsageError(f"--service {name!r}: no such service (services: {', '.join(services)}){suggest(name, services)}")
    return [n for n in services if not names or n in names]


def run_tests(loaded: LoadedConfig, request: TestRequest, *, emit: Emit, engine: Any = None,
              artifacts: Artifacts | None = None) -> list[SuiteResult]:
    """Runs every selected suite (all at once) and returns their results, one per selected
    service (those without tests as "no tests"); never raises for a failing suite, so the
    caller can show the whole summary first (see `raise_for_failures`)."""
    selected = _selected(loaded, request.services)
    flows = {name: flow_of(loaded.config.services[name]) for name in selected}
    skipped = {name: NO_TESTS_NOTE for name in selected if flows[name] == NO_TESTS}
    if request.local:
        skipped.update({name: LOCAL_NOTE for name in selected if flows[name] == COMMAND})
    names = [name for name in selected if name not in skipped]
    emit = serialized(emit)
    for name, note in skipped.items():
        emit(StepSkipped("test", note, service=name))
    if not names:
        emit(Message(_nothing_to_test(loaded, request, skipped), level="warning"))
        return [SuiteResult(name, flows[name], note=skipped[name]) for name in selected]
    secrets = test_command.fetch_test_secrets(loaded, names, request.secret_source)
    junit_paths: dict[str, str | None] = {}  # a [test] command's JUnit path in its container
    if request.local:
        runners = {name: _local_runner(loaded, name, request) for name in names}
    else:
        if engine is None or artifacts is None:
            raise ValueError("container tests need an engine and the build's artifacts")
        gateway = engine.bridge_gateway()
        runners = {}
        for name in names:
            if flows[name] == COMMAND:
                runners[name], junit_paths[name] = _command_runner(engine, artifacts, loaded, name, request,
                                                                    gateway, secrets)
            else:
                runners[name] = _container_runner(engine, artifacts, name, request, gateway)
    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="test") as pool:
        futures = {name: pool.submit(_run_suite, loaded, name, request, runners[name], emit, flows[name],
                                     junit_paths.get(name))
                   for name in names}
        return [futures[name].result() if name in futures else SuiteResult(name, flows[name], note=skipped[name])
                for name in selected]


def _nothing_to_test(loaded: LoadedConfig, request: TestRequest, skipped: dict[str, str]) -> str:
    which = "the selected services have" if request.services else "no service in deploy.toml has"
    if any(note == LOCAL_NOTE for note in skipped.values()):
        return f"nothing to test with --local: {which} no test_target (only [test] commands, which run in the images)"
    return (f"nothing to test: {which} tests (set test_target to a Dockerfile stage that runs pytest, "
            "or give a [services.NAME.test] command)")


Runner = Callable[[Path, Callable[[str], None]], tuple[int, bool]]


def _run_suite(loaded: LoadedConfig, name: str, request: TestRequest, runner: Runner, emit: Emit,
               flow: str = STAGE, junit_path: str | None = None) -> SuiteResult:
    reports = request.reports_dir / name
    result = SuiteResult(name, flow, floor=loaded.config.services[name].coverage_floor, reports=reports)
    shutil.rmtree(reports, ignore_errors=True)  # stale reports must never pass for this run's
    reports.parent.mkdir(parents=True, exist_ok=True)
    where = ("on this machine" if request.local else
             "in the shipped image" if flow == COMMAND else "in the test image")
    timer = Timer(emit, "test", service=name, detail=where)
    tail: list[str] = []

    def on_line(line: str) -> None:
        tail.append(line)
        del tail[:-20]
        emit(StepProgress("test", line, service=name))

    try:
        result.status, collected = runner(reports, on_line)
    except DeployctlError as exc:
        result.problems.append(exc.message)
        timer.failed(exc.message, tuple(tail))
        return result
    if flow == COMMAND:
        _read_reports(result, collected, junit_from=junit_path, junit_required=junit_path is not None)
    else:
        _read_reports(result, collected)
    if result.ok:
        timer.done(summary_line(result))
    else:
        timer.failed("; ".join(result.problems), tuple(tail))
    return result


def _read_reports(result: SuiteResult, collected: bool, *, junit_from: str | None = None,
                  junit_required: bool = True) -> None:
    """The verdict from the exit status and the reports. `junit_from` names where a [test]
    command was told to write its JUnit report (for the message when it wrote none)."""
    assert result.reports is not None
    junit, coverage = result.reports / "junit.xml", result.reports / "coverage.xml"
    if result.status != 0:
        result.problems.append(f"the suite exited {result.status}")
    if not junit_required and not junit.is_file():
        pass  # no reports.junit: the exit status is the verdict
    elif not collected or not junit.is_file():
        result.problems.append(f"no JUnit report at {junit_from}: the test command wrote none there" if junit_from
                               else "no junit.xml: the suite did not run to the end")
    else:
        try:
            result.counts = parse_junit(junit.read_bytes())
        except ReportError as exc:
            result.problems.append(f"junit.xml: {exc}")
    if coverage.is_file():
        try:
            result.coverage = parse_coverage(coverage.read_bytes())
        except ReportError as exc:
            result.problems.append(f"coverage.xml: {exc}")
    if result.floor > 0:
        if result.coverage is None:
            result.problems.append(f"no coverage.xml, but coverage_floor is {result.floor:g}%")
        elif result.coverage < result.floor:
            result.problems.append(f"coverage {result.coverage:.1f}% is below the floor of {result.floor:g}%")


def summary_line(result: SuiteResult) -> str:
    if result.note:
        return result.note
    parts = []
    if result.counts:
        c = result.counts
        parts.append(f"{c.passed} passed, {c.failed} failed, {c.skipped} skipped")
    if result.coverage is not None:
        parts.append(f"coverage {result.coverage:.1f}%")
    return ", ".join(parts)


def raise_for_failures(results: Sequence[SuiteResult]) -> None:
    failed = [r for r in results if not r.ok]
    if failed:
        raise TestsFailedError(
            f"tests failed for {', '.join(r.service for r in failed)}\n"
            + "\n".join(f"  {r.service}: {'; '.join(r.problems)}" for r in failed),
            hint=f"reports are in {failed[0].reports.parent}/<service>/" if failed[0].reports else None,
        )


def _command(request: TestRequest, reports: str, python: str = "python") -> list[str]:
    command = [part.replace("{reports}", reports) for part in request.command]
    if command and command[0] == "python":
        command[0] = python
    return command


def _container_runner(engine: Any, artifacts: Artifacts, name: str, request: TestRequest, gateway: str) -> Runner:
    image = artifacts.images.get(name)
    if image is None or image.test_image is None:
        raise UsageError(f"the artifacts file has no test image for {name}",
                         hint="run `deployctl build` (with test images, the default) first")
    test_image = image.test_image
    if engine.image_id(test_image.image_id) is None:
        raise UsageError(f"{name}: the test image {test_image.reference} ({test_image.image_id[:19]}) is not on this engine",
                         hint="run `deployctl build` on this machine before `deployctl test`")
    # The host's loopback is not the container's: the host's MariaDB is at the bridge gateway.
    db_host = gateway if request.database.host in LOOPBACK else request.database.host
    environment = request.database.environment(host=db_host)

    def run(reports: Path, on_line: Callable[[str], None]) -> tuple[int, bool]:
        return engine.run_and_collect(
            image=test_image.image_id, command=_command(request, CONTAINER_REPORTS), environment=environment,
            collect=CONTAINER_REPORTS, into=reports, on_line=on_line, timeout=request.suite_timeout)

    return run


def _command_runner(engine: Any, artifacts: Artifacts, loaded: LoadedConfig, name: str, request: TestRequest,
                    gateway: str, secrets: dict[str, Secret]) -> tuple[Runner, str | None]:
    """The runner, and where in the container the command writes its JUnit report (if it does)."""
    # As for the test stage: the host's loopback is the bridge gateway from a container.
    db_host = gateway if request.database.host in LOOPBACK else request.database.host
    environment = test_command.command_env(loaded, name, secrets,
                                           test_command.database_values(request.database, db_host))
    runner, files = test_command.command_runner(engine, artifacts, loaded, name, environment, request.timeout)
    return runner, files.get("junit.xml")


def _local_runner(loaded: LoadedConfig, name: str, request: TestRequest) -> Runner:
    from ...adapters.process import run_streaming

    cwd = (loaded.root / loaded.config.services[name].context).resolve()
    environment = {**os.environ, **request.database.environment()}

    def run(reports: Path, on_line: Callable[[str], None]) -> tuple[int, bool]:
        reports.mkdir(parents=True, exist_ok=True)
        status = run_streaming(_command(request, str(reports), python=sys.executable), cwd=cwd,
                               environment=environment, on_line=on_line, timeout=request.suite_timeout)
        return status, True

    return run

