"""`deployctl deploy`: the release model of docs/design (design.md, "The release model").

Per host, under the host's lock: pull by digest, upload secrets as 0600 files, migrate once,
start the new release beside the old one, wait for health, switch nginx, verify through
nginx, drain, stop the old release (kept for rollback), record, prune. A failure before the
switch removes the new containers; after the switch, it switches back. Either way the old
release keeps serving and the command fails with exit 6.

Across hosts (docs/fleet.md) the steps are split so services/rollout.py can order them:
every host is checked and locked first, every host pulls and uploads, migrations run once,
then hosts switch in batches; a stopped rollout reverts the hosts it already switched.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..adapters.connector import check
from ..config import LoadedConfig
from ..errors import DeployctlError, DeployError, ExitCode, HealthCheckError, RollbackError, RolloutError
from ..events import Emit, Message, StepFailed, Timer, serialized
from ..plan import docker_commands as dc
from ..plan import rollout as plan
from ..plan.build import rfc3339
from ..plan.containers import release_containers
from ..plan.images import PROXY
from ..plan.lock import LockRecord
from ..plan.releases import FAILED, LIVE, REVERTED, SKIPPED, UNCERTAIN, ReleaseRecord, new_release_id
from ..secrets import Secret
from . import preflight
from .accessories import ensure_accessories
from .host_state import HostState
from .hosts import connectors_for, layout_for, names_for, proxy_port, who
from .prune import prune
from .release_images import ReleaseImages
from .host_calls import on_every_host
from .host_calls import why as _why
from .rollout import Cancel, Interrupted, Rollout, unexpected  # noqa: F401 - Interrupted: for the CLI
from .switch import HealthTarget, HostSwitch


@dataclass(frozen=True)
class DeployOptions:
    message: str = ""
    force_unlock: bool = False


@dataclass
class HostOutcome:
    host: str
    release: str
    previous: str | None
    outcome: str
    seconds: float
    error: str = ""


@dataclass
class DeployResult:
    release: str
    revision: str | None
    hosts: list[HostOutcome] = field(default_factory=list)


def deploy(loaded: LoadedConfig, env_name: str, images: ReleaseImages, secrets: dict[str, Secret],
           emit: Emit, *, options: DeployOptions = DeployOptions(), registry_password: Secret | None = None,
           registry_username: str | None = None, connectors: list | None = None,
           now: float | None = None) -> DeployResult:
    """`registry_username` overrides registry.username (ECR: the token's user, "AWS")."""
    config, environment = loaded.config, loaded.environment(env_name)
    login_user = registry_username or (config.registry.username if config.registry else None)
    emit = serialized(emit)  # hosts report from worker threads
    conns = connectors if connectors is not None else connectors_for(loaded, env_name)
    layout = layout_for(loaded, env_name)

    def check_host(conn) -> set[str]:  # type: ignore[no-untyped-def]
        preflight.connect(conn, emit)
        if environment.target == "local":
            preflight.local_images_present(conn, emit, list(images.images.values()))
        elif config.registry and login_user and registry_password is not None:
            preflight.registry_login(conn, emit, config.registry.server, login_user, registry_password)
        return HostState(conn, layout).history().ids()

    try:
        # Preflight on every host before any host changes; one error names every bad host.
        taken = set().union(*on_every_host(conns, check_host, environment.rollout.parallel))
        # The environment's accessories (its database, say) are up before any release work,
        # as migrations need them: absent ones are booted, existing ones never recreated.
        on_every_host(conns, lambda conn: ensure_accessories(loaded, env_name, conn, secrets, emit),
                      environment.rollout.parallel)
        release = new_release_id(time.time() if now is None else now, images.revision, taken)
        emit(Message(f"release {release} to {env_name} ({len(conns)} host{'s' if len(conns) != 1 else ''})"))
        cancel = Cancel()
        jobs = [HostDeploy(loaded, env_name, conn, emit, release, images, secrets, options, cancel=cancel)
                for conn in conns]
        results = Rollout(jobs, environment.rollout, emit, action="deploy", cancel=cancel,
                          first_step=lambda job: job.migrate()).run()
        hosts = [HostOutcome(job.host, release, job.previous, results[job.host].outcome,
                             results[job.host].seconds, results[job.host].error) for job in jobs]
        verdict = plan.verdict({h.host: h.outcome for h in hosts})
        if not verdict.ok:
            raise _failure(release, results, hosts, verdict) from unexpected(results)
        return DeployResult(release, images.revision, hosts)
    finally:
        for conn in conns:
            conn.close()


def _failure(release: str, results: dict, hosts: list[HostOutcome], verdict: plan.Verdict) -> DeployctlError:
    """The error a stopped rollout ends with. One host keeps its own error when that says
    the same (it names what failed); several get one naming each host's outcome."""
    if len(results) == 1:
        exc = next(iter(results.values())).exc
        if isinstance(exc, DeployctlError) and exc.exit_code == verdict.exit_code:
            return exc
    lines = [f"deploy of {release} did not reach every host: {verdict.summary}"]
    lines += [f"{h.host}: {h.outcome}" + (f" ({h.error})" if h.error else "") for h in hosts]
    if verdict.exit_code == ExitCode.DEPLOY_FAILED:
        hint = "every host still serves the release it served before"
    else:
        hint = ("the hosts do not all serve one release, or one is uncertain: `deployctl status --env ...`; "
                "`deployctl rollback --to RELEASE` puts them all on one")
    return RolloutError("\n".join(lines), exit_code=verdict.exit_code, hosts=hosts, hint=hint)


class HostDeploy:
    """One host's part of a deploy: a HostJob for services/rollout.py."""

    def __init__(self, loaded: LoadedConfig, env_name: str, conn, emit: Emit, release: str,
                 images: ReleaseImages, secrets: dict[str, Secret], options: DeployOptions,
                 *, cancel: Cancel | None = None) -> None:
        self.loaded, self.env_name, self.conn, self.emit = loaded, env_name, conn, emit
        self.host = conn.host
        self.config = loaded.config
        self.environment = loaded.environment(env_name)
        self.release, self.images, self.secrets, self.options = release, images, secrets, options
        self.cancel = cancel or Cancel()
        self.names = names_for(loaded, env_name)
        self.layout = layout_for(loaded, env_name)
        self.state = HostState(conn, self.layout)
        self.switch = HostSwitch(conn, self.names, self.layout, emit, checkpoint=self.cancel.check)
        self.specs = release_containers(self.config, self.environment, env_name, release, images.revision,
                                        images.images, self.layout)
        self.previous: str | None = None
        self.started: list[str] = []
        self.phase = "before"  # before | switched back | uncertain | live

    # -- HostJob -----------------------------------------------------------------------------

    def lock(self) -> None:
        lock = LockRecord(who=who(), when=rfc3339(time.time()), action="deploy", release=self.release,
                          message=self.options.message, pid=None, host=None)
        broken = self.state.acquire(lock, force=self.options.force_unlock)
        if broken is not None:
            self.emit(Message(f"broke a stale lock held by {broken.describe()}", level="warning", host=self.host))

    def unlock(self) -> None:
        self.state.release()

    def prepare(self) -> None:
        """Pull, network, secrets: nothing the host serves changes."""
        try:
            self.previous = self.state.current()
            self.state.prepare()
            if self.environment.target == "ssh":
                preflight.pull(self.conn, self.emit, list(self.images.images.values()))
            self.cancel.check()
            if self.switch.ensure_network():
                self.emit(Message(f"created network {self.names.network}", host=self.host))
            self._upload_secrets()
        except BaseException as exc:
            self._abandon(exc)
            raise

    def migrate(self) -> None:
        """Once per rollout, on one host, before any host switches."""
        try:
            self._run_migrations()
        except BaseException as exc:
            self._abandon(exc)
            raise

    def run(self) -> None:
        """Start the new release beside the old one, wait for health, switch, retire the old."""
        try:
            self.cancel.check()
            timer = Timer(self.emit, "start", host=self.host, detail=self.release)
            self._start_containers()
            timer.done(", ".join(self.started))
            self._wait_healthy()
            self.cancel.check()
        except BaseException as exc:
            self._abandon(exc)
            raise
        self._switch()

    def failure_outcome(self) -> str:
        return {"switched back": plan.SWITCHED_BACK, "uncertain": plan.UNCERTAIN}.get(self.phase, plan.FAILED)

    def can_revert(self) -> bool:
        return self.previous is not None

    def revert(self, why: str) -> None:
        """The rollout stopped after this host switched: back to its previous release (its
        containers are stopped, kept), recorded as a rollback and this release as reverted."""
        from .rollback import HostRollback

        back = HostRollback(self.loaded, self.env_name, self.conn, self.emit, self.previous or "",
                            message=f"rollout of {self.release} stopped ({why}); reverted")
        back.check()
        back.run()
        self._record(REVERTED, self.previous, f"the rollout stopped ({why}); back on {self.previous}")

    def skip(self, why: str) -> None:
        """Never started here: the uploaded secrets go, the history says why."""
        self.conn.remove_tree(self.layout.release_secrets(self.release))
        self._record(SKIPPED, self.previous, why)

    # -- before the switch -----------------------------------------------------------------

    def _upload_secrets(self) -> None:
        timer = Timer(self.emit, "secrets", host=self.conn.host)
        self.conn.mkdir(self.layout.release_secrets(self.release), mode=0o700)
        count = 0
        for spec in self.specs:
            if not spec.secrets:
                continue
            self.conn.mkdir(spec.secrets_dir, mode=0o700)
            for name in spec.secrets:
                self.conn.put_file(f"{spec.secrets_dir}/{name}", self.secrets[name].reveal().encode(), 0o600)
                count += 1
            user = check(self.conn, dc.image_user(spec.image)).strip()
            if user and user.split(":")[0] not in ("root", "0"):
                check(self.conn, dc.chown_secrets(spec.image, user, spec.secrets_dir))
        timer.done(f"{count} file{'s' if count != 1 else ''}, mode 0600")

    def _start_containers(self) -> None:
        """Every service's container at once: each `docker run` is a round trip to the host
        and seconds of the engine's time, and none waits for another (health checks do)."""
        def start(spec) -> None:  # type: ignore[no-untyped-def]
            check(self.conn, dc.run_service(spec, self.names.network))
            self.started.append(spec.name)  # what a failure must remove

        with ThreadPoolExecutor(max_workers=len(self.specs)) as pool:
            futures = [pool.submit(start, spec) for spec in self.specs]
        for future in futures:
            future.result()  # the first failure, once all have finished

    def _run_migrations(self) -> None:
        for spec in self.specs:
            command = self.config.services[spec.service].migrate
            if not command:
                continue
            timer = Timer(self.emit, "migrate", host=self.conn.host, service=spec.service, detail=" ".join(command))
            argv = dc.run_migration(spec, self.names.network, self.names.migration(self.release), command,
                                    self.names.labels("migrate", self.release, spec.service))
            result = self.conn.run(argv, timeout=600)
            if not result.ok:
                output = tuple((result.stdout + result.stderr).strip().splitlines()[-20:])
                timer.failed(f"exited {result.rc}", output)
                raise DeployError(f"{self.conn.host}: migration `{' '.join(command)}` exited {result.rc}",
                                  hint="nothing was switched; the previous release is still serving")
            timer.done()

    def _wait_healthy(self) -> None:
        timer = Timer(self.emit, "health", host=self.conn.host, detail="waiting for the new containers")
        targets = [HealthTarget(s.name, s.service, s.port, s.health_path,
                                self.config.services[s.service].healthcheck.timeout,
                                self.config.services[s.service].healthcheck.interval) for s in self.specs]
        try:
            self.switch.wait_healthy(targets)
        except HealthCheckError as exc:
            container = exc.message.split(": ")[1] if exc.message.count(": ") >= 2 else self.specs[0].name
            timer.failed(exc.message, self.switch.logs(container))
            for spec in self.specs:  # every new container's last lines: the cause may be elsewhere
                if spec.name != container:
                    self.emit(StepFailed("health", f"{spec.name}: last log lines", self.switch.logs(spec.name, 10),
                                         host=self.conn.host, service=spec.service))
            raise
        timer.done()

    def _abandon(self, exc: BaseException) -> None:
        """Failure (or interrupt) before the switch: remove what we started, record it."""
        self.switch.remove(self.started)
        self.conn.run(["docker", "rm", "--force", self.names.migration(self.release)])
        self.conn.remove_tree(self.layout.release_secrets(self.release))
        self._record(FAILED, self.previous, _why(exc))

    # -- the switch and after --------------------------------------------------------------

    def _switch(self) -> None:
        previous = self.previous
        routed = next(s for s in self.specs if s.routed)
        old_upstream, _ = self.switch.live_upstream()
        proxy = self.switch.proxy_state()
        timer = Timer(self.emit, "switch", host=self.host, detail=f"nginx -> {routed.name}")
        try:
            self.switch.write_upstream(self.release, routed.name, routed.port)
            port = self.switch.ensure_proxy(self.images.images[PROXY], proxy_port(self.loaded, self.env_name), proxy)
            if proxy is not None:  # a new proxy reads the file as it starts
                self.switch.reload()
            verify_seconds = self.switch.verify(port, self.release)
        except BaseException as exc:
            timer.failed(_why(exc))
            self._switch_back(old_upstream, exc)
            raise DeployError(f"{_why(exc)}; switched back to {previous or 'nothing'}",
                              hint="the previous release is still serving") from None
        timer.done(f"verified through nginx in {verify_seconds:.2f}s (port {port})")
        # Switched and verified: from here the new release is live; bookkeeping comes first
        # so an interrupt during the drain cannot leave `current` pointing at the old one.
        self.state.set_current(self.release)
        self._record(LIVE, previous, "")
        self.phase = "live"
        try:
            self._retire()
        except Exception as exc:  # noqa: BLE001 - live and verified; only the clean-up failed
            self.emit(Message(f"after the switch: {_why(exc)}", level="warning", host=self.host))

    def _switch_back(self, old_upstream: bytes | None, exc: BaseException) -> None:
        try:
            if old_upstream is not None:
                self.switch.restore_upstream(old_upstream)
            self.switch.remove(self.started)
        except BaseException as back:
            self.phase = "uncertain"
            problem = f"{_why(exc)}; switching back to {self.previous or 'nothing'} failed: {_why(back)}"
            self._record(UNCERTAIN, self.previous, problem)
            raise RollbackError(f"{self.host}: {problem}",
                                hint="the host's state is uncertain: check `deployctl status` and its nginx") from None
        self.phase = "switched back"
        self._record(REVERTED, self.previous, _why(exc))

    def _retire(self) -> None:
        on_host = self.switch.release_containers()
        old = [name for release, names in on_host.items() if release != self.release for name in names]
        running = [n for n, s in self.switch.states(old).items() if s.status == "running"]
        if running:
            drain = self.environment.rollout.drain
            timer = Timer(self.emit, "drain", host=self.conn.host, detail=f"{drain:g}s, then stop {', '.join(running)}")
            time.sleep(drain)
            self.switch.stop(running)
            timer.done("stopped (kept for rollback)")
        prune(self.conn, self.switch, self.state, self.layout, self.environment.rollout.keep, self.release, self.emit,
              on_host)

    def _record(self, outcome: str, previous: str | None, error: str) -> None:
        record = ReleaseRecord(
            release=self.release, revision=self.images.revision,
            images={s.service: s.image for s in self.specs} | {PROXY: self.images.images.get(PROXY, "")},
            action="deploy", outcome=outcome, who=who(), when=rfc3339(time.time()),
            message=self.options.message, previous=previous, error=error,
        )
        self.state.record(record)
