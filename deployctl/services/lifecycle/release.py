"""`deployctl release`: build -> test -> push -> deploy in one command, composed from the
stage services (build.py, testing.py, push.py, deploy.py); nothing here builds, tests,
pushes or deploys by itself.

The first stage that fails stops the release and its error (with its own exit code: 5 for
build and test, 4 for an unreachable registry, 6 for a failed deploy...) is what the
command fails with. Secrets and the RDS endpoint are fetched before the build, so a missing
secret costs seconds, not a build. Push is skipped for the `local` target: its images are
already in the engine deploy uses. Each stage is a `stage NAME` step in the event stream.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager

from ...errors import DeployctlError
from ...events import Emit, Message, StepSkipped, Timer
from ..env import Env
from ..pipeline.build import BuildRequest, BuildResult, build_images
from .deploy_result import DeployOptions, DeployResult, HostOutcome
from ..pipeline.testing import TestRequest, raise_for_failures, run_tests, summary_line

STAGES = ("build", "test", "push", "deploy")
OK, FAILED, SKIPPED = "ok", "failed", "skipped"
LOCAL_PUSH_SKIPPED = "local target: the images are already in the engine"
TESTS_SKIPPED = "--skip-tests: this release is deployed UNTESTED"


@dataclass(frozen=True)
class ReleaseRequest:
    build: BuildRequest  # its artifacts_path is the file every later stage reads
    test: TestRequest | None  # None: --skip-tests
    deploy: DeployOptions = DeployOptions()


@dataclass
class StageResult:
    stage: str
    outcome: str  # ok | failed | skipped
    seconds: float = 0.0
    detail: str = ""
    exit_code: int | None = None


@dataclass
class ReleaseResult:
    environment: str
    tag: str | None = None
    revision: str | None = None
    release: str | None = None
    urls: list[str] = field(default_factory=list)
    stages: list[StageResult] = field(default_factory=list)
    hosts: list[HostOutcome] = field(default_factory=list)
    verdicts: dict = field(default_factory=dict)  # the deploy's (DeployResult.verdicts)

    @property
    def tests_skipped(self) -> bool:
        return any(s.stage == "test" and s.outcome == SKIPPED for s in self.stages)


class Release:
    def __init__(self, env: Env, request: ReleaseRequest, *, engine: Any, emit: Emit,
                 guard_deploy: Callable[[], ContextManager[None]] = contextlib.nullcontext) -> None:
        self.env, self.request, self.engine, self.emit = env, request, engine, emit
        self.loaded = env.loaded  # for the build, test and push stages, which take the whole config
        self.guard_deploy = guard_deploy  # the CLI's SIGTERM handling, around the deploy only
        self.environment = env.settings
        self.result = ReleaseResult(env.name)

    def run(self) -> ReleaseResult:
        from .deploy_inputs import deploy_inputs

        env = self.env.name
        if self.request.test is None:
            self.emit(Message("TESTS SKIPPED (--skip-tests): this release is deployed untested", level="warning"))
        # Before the build: a missing secret or RDS instance fails in seconds (exit 3).
        timer = Timer(self.emit, "fetch secrets", detail=f"environment {env!r}")
        inputs = deploy_inputs(self.env)
        timer.done(f"{len(inputs.secrets)} fetched")

        built: BuildResult = self._stage("build", self._build)
        self.result.tag, self.result.revision = built.artifacts.tag, built.artifacts.revision
        if self.request.test is None:
            self._skip("test", TESTS_SKIPPED)
        else:
            self._stage("test", lambda: self._test(built))
        if self.environment.target == "local":
            self._skip("push", LOCAL_PUSH_SKIPPED)
        else:
            self._stage("push", self._push)
        deployed: DeployResult = self._stage("deploy", lambda: self._deploy(inputs))
        self.result.release, self.result.hosts = deployed.release, deployed.hosts
        self.result.verdicts = deployed.verdicts
        self.result.urls = app_urls(inputs.env, deployed)
        return self.result

    # -- the stages: each returns (its result, a one-line summary) -------------------------

    def _build(self) -> tuple[BuildResult, str]:
        built = build_images(self.loaded, self.request.build, engine=self.engine, emit=self.emit)
        return built, f"{built.artifacts.tag}: {', '.join(built.artifacts.images)}"

    def _test(self, built: BuildResult) -> tuple[None, str]:
        assert self.request.test is not None
        results = run_tests(self.loaded, self.request.test, emit=self.emit, engine=self.engine,
                            artifacts=built.artifacts)
        raise_for_failures(results)
        return None, "; ".join(f"{r.service} {summary_line(r)}" for r in results)

    def _push(self) -> tuple[None, str]:
        from ..pipeline.push import push_images

        pushed = push_images(self.loaded, self.request.build.artifacts_path, engine=self.engine, emit=self.emit,
                             environment=self.environment)
        return None, ", ".join(p.pinned for p in pushed.pushed)

    def _deploy(self, inputs) -> tuple[DeployResult, str]:  # type: ignore[no-untyped-def]
        from .deploy import deploy
        from .deploy_inputs import env_to_deploy, release_images

        images = release_images(inputs, self.request.build.artifacts_path)
        with self.guard_deploy():
            deployed = deploy(env_to_deploy(inputs, images), images, inputs.secrets, self.emit,
                              options=self.request.deploy, registry_password=inputs.registry_password,
                              registry_username=inputs.registry_username)
        return deployed, f"{deployed.release} live on {len(deployed.hosts)} host{'s' if len(deployed.hosts) != 1 else ''}"

    # -- bookkeeping -----------------------------------------------------------------------

    def _stage(self, name: str, run: Callable[[], tuple[Any, str]]) -> Any:
        timer = Timer(self.emit, f"stage {name}")
        try:
            value, detail = run()
        except DeployctlError as exc:
            timer.failed(exc.message.splitlines()[0])
            self.result.stages.append(StageResult(name, FAILED, round(timer.elapsed, 3), exc.message.splitlines()[0],
                                                  int(exc.exit_code)))
            raise
        except BaseException as exc:
            timer.failed(f"{type(exc).__name__}: {exc}")
            raise
        self.result.stages.append(StageResult(name, OK, timer.done(detail), detail))
        return value

    def _skip(self, name: str, reason: str) -> None:
        self.emit(StepSkipped(f"stage {name}", reason))
        self.result.stages.append(StageResult(name, SKIPPED, 0.0, reason))


def app_urls(env: Env, deployed: DeployResult | None = None) -> list[str]:
    """Where the app answers: with HTTPS on, its names ([proxy] hosts) on the HTTPS port (HTTP
    only redirects there); else on the local target the proxy's published port as the engine
    reports it (proxy_port 0 lets the engine choose), on ssh hosts the configured port."""
    from ...config.models import split_host

    proxy = env.config.proxy
    if env.tls_port is not None and proxy.hosts:
        port = env.settings.shared_proxy_tls_port if env.settings.shared_proxy is not None else env.tls_port
        suffix = "" if port == 443 else f":{port}"
        return [f"https://{name}{suffix}/" for name in proxy.hosts]
    if env.target == "local":
        from ...adapters.local import LocalConnector
        from ..edge.proxy import HostProxy

        port = HostProxy(LocalConnector(), env.names, env.layout, lambda e: None).port(proxy.port)
        return [f"http://127.0.0.1:{port}/"] if port else []
    port = env.proxy_port
    hosts = [h.host for h in deployed.hosts] if deployed else list(env.settings.hosts)
    suffix = "" if port == 80 else f":{port}"
    return [f"http://{_url_host(split_host(h)[0])}{suffix}/" for h in hosts] if port else []


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def run_release(env: Env, request: ReleaseRequest, *, engine: Any, emit: Emit,
                guard_deploy: Callable[[], ContextManager[None]] = contextlib.nullcontext) -> ReleaseResult:
    """`env`: the environment released to, resolved once by the caller (the CLI: AppContext.env)."""
    return Release(env, request, engine=engine, emit=emit, guard_deploy=guard_deploy).run()

