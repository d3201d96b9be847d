"""`deployctl test`: run each service's tests: pytest in its built test image (test_target),
its [test] command in the shipped image, or on this machine (--local)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import ArtifactsOption, ServiceOption, artifacts_path, finish, table
from .context import AppContext


def test(
    ctx: typer.Context,
    service: ServiceOption = None,
    local: Annotated[bool, typer.Option(
        "--local", help="Run the suites with this machine's Python instead of in the test images.")] = False,
    db_host: Annotated[Optional[str], typer.Option(
        "--db-host", envvar="TEST_DATABASE_HOST", metavar="HOST",
        help="Test database host [default: test_database.host; loopback means the bridge gateway in a container].")] = None,
    db_port: Annotated[Optional[int], typer.Option(
        "--db-port", envvar="TEST_DATABASE_PORT", metavar="PORT", min=1, max=65535,
        help="Test database port [default: test_database.port].")] = None,
    db_user: Annotated[Optional[str], typer.Option(
        "--db-user", envvar="TEST_DATABASE_USER", metavar="USER",
        help="Test database user [default: test_database.user]. The password is read from the "
             "environment variable named by test_database.password_secret, never from the command line.")] = None,
    reports: Annotated[Optional[Path], typer.Option(
        "--reports", metavar="DIR", help="Where reports go, one folder per service [default: reports/ beside deploy.toml].")] = None,
    timeout: Annotated[Optional[float], typer.Option(
        "--timeout", min=1, metavar="SECONDS",
        help="Per suite [default: test.timeout for a [test] command, else 1800].")] = None,
    env: Annotated[Optional[str], typer.Option(
        "--env", "-e", metavar="ENV",
        help="Take {{ secret.NAME }} in test.env from this environment's secret source "
             "[default: environment variables].")] = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Run each service's tests: pytest in its test-stage image (test_target), or its [test]
    command in the shipped image; write JUnit and coverage reports under reports/<service>/."""
    from ..services.pipeline.testing import SuiteDatabase, TestRequest, raise_for_failures, run_tests

    app: AppContext = ctx.obj
    loaded = app.loaded
    config = loaded.config.test_database
    request = TestRequest(
        reports_dir=reports.resolve() if reports else loaded.root / "reports",
        services=service or (),
        local=local,
        database=SuiteDatabase(host=db_host or config.host, port=db_port or config.port,
                               user=db_user or config.user, password=_password(config.password_secret)),
        timeout=timeout,
        secret_source=_secret_source(app.env(env) if env is not None else None),
    )
    engine = artifacts_file = None
    if not local:
        from ..adapters.docker_engine import DockerEngine
        from ..artifacts import read_artifacts

        artifacts_file = read_artifacts(artifacts_path(app, artifacts), app=loaded.config.app)
        engine = DockerEngine.connect()
    results = run_tests(loaded, request, emit=app.emit, engine=engine, artifacts=artifacts_file)

    if app.mode == "json":
        suites = [{
            "service": r.service, "ok": r.ok, "flow": r.flow, "note": r.note, "exit_status": r.status, "problems": r.problems,
            "passed": r.counts.passed if r.counts else None, "failed": r.counts.failed if r.counts else None,
            "skipped": r.counts.skipped if r.counts else None, "coverage": r.coverage,
            "coverage_floor": r.floor, "reports": str(r.reports),
        } for r in results]
        finish(app, "test", {"ok": all(r.ok for r in results), "tested": sum(r.note is None for r in results),
                             "suites": suites})
    else:
        app.emit.close()
        rows = [[r.service, r.note if r.note else "ok" if r.ok else "FAILED",
                 *(str(n) for n in ((r.counts.passed, r.counts.failed, r.counts.skipped) if r.counts else ("-",) * 3)),
                 f"{r.coverage:.1f}%" if r.coverage is not None else "-",
                 f"{r.floor:g}%" if r.floor else "-"] for r in results]
        table(app, "Tests", ["service", "result", "passed", "failed", "skipped", "coverage", "floor"], rows)
    raise_for_failures(results)


def _secret_source(env):  # type: ignore[no-untyped-def]
    """The resolved environment's secret source (services/env.Env); None (process
    environment variables) without --env."""
    if env is None:
        return None
    from ..services.secret_sources import environment_source

    return environment_source(env.config, env.settings)


def _password(name: str):  # type: ignore[no-untyped-def]
    """The test database password from the environment, masked in all our output."""
    import os

    from ..secrets import Secret, redactor

    value = os.environ.get(name)
    if not value:
        return None
    redactor.add(value)
    return Secret(value)
