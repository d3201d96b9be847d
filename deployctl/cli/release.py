"""`deployctl release`: the whole pipeline (build -> test -> push -> deploy) in one command,
on the `local` environment unless `--env` says otherwise; the last line is the app's URL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import ArtifactsOption, NoHooksOption, artifacts_path, finish, hooks_skipped_warning, table
from .config import EnvOption
from .context import AppContext
from .deploy import CanaryOpt, ForceUnlock, MessageOpt, NoGuard, ShadowOpt
from .unlock import ForceUnlockLive, Yes, unlock_policy


def release(
    ctx: typer.Context,
    env: EnvOption = "local",
    skip_tests: Annotated[bool, typer.Option(
        "--skip-tests", help="Do not run the test stage (said loudly in the output and the result).")] = False,
    build_arg: Annotated[Optional[list[str]], typer.Option(
        "--build-arg", metavar="[IMAGE:]KEY=VALUE",
        help="A build arg for every image, or for one image with IMAGE: in front; repeatable.")] = None,
    tag: Annotated[Optional[str], typer.Option(
        "--tag", metavar="TAG", help="Tag to build [default: the git revision, plus -dirty-HASH for uncommitted changes].")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Build every layer afresh.")] = False,
    reports: Annotated[Optional[Path], typer.Option(
        "--reports", metavar="DIR", help="Where test reports go, one folder per service [default: reports/ beside deploy.toml].")] = None,
    message: MessageOpt = "",
    force_unlock: ForceUnlock = False,
    force_unlock_live: ForceUnlockLive = False,
    yes: Yes = False,
    no_guard: NoGuard = False,
    canary: CanaryOpt = None,
    shadow: ShadowOpt = None,
    artifacts: ArtifactsOption = None,
    no_hooks: NoHooksOption = False,
) -> None:
    """Build, test, push and deploy in one go; stops at the first failed stage with its exit code.

    Push is skipped for the local target (its images are already in the engine).
    """
    from ..adapters.docker_engine import DockerEngine
    from ..plan.pipeline.build import parse_build_arg
    from ..services.pipeline.build import BuildRequest
    from ..services.lifecycle.deploy import DeployOptions
    from ..services.lifecycle.release import ReleaseRequest, run_release
    from .deploy import sigterm_interrupts

    app: AppContext = ctx.obj
    loaded = app.loaded
    app.env(env)  # an unknown environment fails before anything starts
    unlock = unlock_policy(force_unlock, force_unlock_live, yes)  # so does a question no one can answer
    path = artifacts_path(app, artifacts)
    build = BuildRequest(artifacts_path=path, tag=tag, build_args=[parse_build_arg(a) for a in build_arg or ()],
                         no_cache=no_cache, test_images=not skip_tests, exclude_from_git=[path],
                         hooks=not no_hooks, env_name=env)
    request = ReleaseRequest(build=build,
                             test=None if skip_tests else _test_request(app.env(env), reports),
                             deploy=DeployOptions(message=message, force_unlock=unlock, no_guard=no_guard,
                                                  canary=canary, shadow=shadow, hooks=not no_hooks))
    hooks_skipped_warning(app, no_hooks)
    engine = DockerEngine.connect(pool_size=len(loaded.config.services) + 2)
    result = run_release(app.env(env), request, engine=engine, emit=app.emit, guard_deploy=sigterm_interrupts)

    if app.mode == "json":
        finish(app, "release", {
            "environment": env, "tag": result.tag, "revision": result.revision, "release": result.release,
            "tests_skipped": result.tests_skipped, "url": result.urls[0] if result.urls else None,
            "urls": result.urls, "stages": [vars(s) for s in result.stages],
            "hosts": [vars(h) for h in result.hosts], **({"verdicts": result.verdicts} if result.verdicts else {})})
        return
    app.emit.close()
    table(app, f"Released {result.release} to {env}", ["stage", "outcome", "seconds", "detail"],
          [[s.stage, s.outcome.upper() if s.outcome != "ok" else "ok", f"{s.seconds:.1f}", s.detail]
           for s in result.stages])
    if result.tests_skipped:
        app.out("[bold yellow]WARNING: tests were skipped (--skip-tests): this release is untested.[/]")
    for url in result.urls:
        app.out(f"The app answers at [bold]{url}[/]")


def _test_request(env, reports: Path | None):  # type: ignore[no-untyped-def]
    """As `deployctl test --env ENV`: the suites in the test images (or [test] commands in the
    shipped images, their {{ secret.NAME }} from the release environment's secret source), the
    database from [test_database] or TEST_DATABASE_HOST/PORT/USER, the password from the environment."""
    from ..services.pipeline.testing import SuiteDatabase, TestRequest
    from .test import _password, _secret_source

    loaded = env.loaded
    config = loaded.config.test_database
    port = os.environ.get("TEST_DATABASE_PORT")
    database = SuiteDatabase(host=os.environ.get("TEST_DATABASE_HOST") or config.host,
                             port=int(port) if port and port.isdigit() else config.port,
                             user=os.environ.get("TEST_DATABASE_USER") or config.user,
                             password=_password(config.password_secret))
    return TestRequest(reports_dir=reports.resolve() if reports else loaded.root / "reports", database=database,
                       secret_source=_secret_source(env))
