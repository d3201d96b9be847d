"""`deployctl deploy`: the release model of docs/design (design.md, "The release model").

Per host, under the host's lock: pull by digest, upload secrets as 0600 files, migrate once,
start the new release beside the old one, wait for health, switch nginx, verify through
nginx, drain, stop the old release (kept for rollback), record, prune. A failure before the
switch removes the new containers; after the switch, it switches back. Either way the old
release keeps serving and the command fails with exit 6.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..adapters.connector import check
from ..config import LoadedConfig
from ..errors import DeployctlError, DeployError, HealthCheckError
from ..events import Emit, Message, StepFailed, Timer
from ..plan import docker_commands as dc
from ..plan.build import rfc3339
from ..plan.containers import release_containers
from ..plan.images import PROXY
from ..plan.lock import LockRecord
from ..plan.releases import FAILED, LIVE, REVERTED, ReleaseRecord, new_release_id
from ..secrets import Secret
from . import preflight
from .accessories import ensure_accessories
from .host_state import HostState
from .hosts import connectors_for, layout_for, names_for, proxy_port, who
from .prune import prune
from .release_images import ReleaseImages
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


class Interrupted(DeployError):
    """SIGTERM or Ctrl-C arrived; raised from the CLI's signal handler into the deploy."""


def deploy(loaded: LoadedConfig, env_name: str, images: ReleaseImages, secrets: dict[str, Secret],
           emit: Emit, *, options: DeployOptions = DeployOptions(), registry_password: Secret | None = None,
           registry_username: str | None = None, connectors: list | None = None,
           now: float | None = None) -> DeployResult:
    """`registry_username` overrides registry.username (ECR: the token's user, "AWS")."""
    config, environment = loaded.config, loaded.environment(env_name)
    login_user = registry_username or (config.registry.username if config.registry else None)
    conns = connectors if connectors is not None else connectors_for(loaded, env_name)
    try:
        # Preflight on every host before any host changes.
        for conn in conns:
            preflight.connect(conn, emit)
            if environment.target == "local":
                preflight.local_images_present(conn, emit, list(images.images.values()))
            elif config.registry and login_user and registry_password is not None:
                preflight.registry_login(conn, emit, config.registry.server, login_user, registry_password)
        # The environment's accessories (its database, say) are up before any release work,
        # as migrations need them: absent ones are booted, existing ones never recreated.
        for conn in conns:
            ensure_accessories(loaded, env_name, conn, secrets, emit)
        layout = layout_for(loaded, env_name)
        taken: set[str] = set()
        for conn in conns:
            taken |= HostState(conn, layout).history().ids()
        release = new_release_id(time.time() if now is None else now, images.revision, taken)
        emit(Message(f"release {release} to {env_name} ({len(conns)} host{'s' if len(conns) != 1 else ''})"))

        result = DeployResult(release, images.revision)
        switched: list[tuple[object, HostOutcome]] = []
        failures = 0
        for index, conn in enumerate(conns):
            host_deploy = HostDeploy(loaded, env_name, conn, emit, release, images, secrets, options,
                                     migrate=index == 0)
            try:
                outcome = host_deploy.run()
            except DeployctlError as exc:
                failures += 1
                result.hosts.append(HostOutcome(conn.host, release, None, FAILED, 0.0, exc.message))
                if failures > environment.rollout.max_failures or isinstance(exc, Interrupted):
                    if switched and environment.rollout.on_failure == "revert":
                        _revert(loaded, env_name, switched, emit)
                    raise
                continue
            result.hosts.append(outcome)
            switched.append((conn, outcome))
            batch = environment.rollout.batch
            if batch and (index + 1) % batch == 0 and index + 1 < len(conns) and environment.rollout.pause:
                time.sleep(environment.rollout.pause)
        return result
    finally:
        for conn in conns:
            conn.close()


def _revert(loaded: LoadedConfig, env_name: str, switched: list, emit: Emit) -> None:
    from .rollback import rollback_host

    for conn, outcome in switched:
        if outcome.previous:
            emit(Message(f"reverting to {outcome.previous} (the rollout stopped)", level="warning", host=conn.host))
            rollback_host(loaded, env_name, conn, emit, to=outcome.previous, message="rollout reverted")


class HostDeploy:
    def __init__(self, loaded: LoadedConfig, env_name: str, conn, emit: Emit, release: str,
                 images: ReleaseImages, secrets: dict[str, Secret], options: DeployOptions,
                 *, migrate: bool = True) -> None:
        self.loaded, self.env_name, self.conn, self.emit = loaded, env_name, conn, emit
        self.config = loaded.config
        self.environment = loaded.environment(env_name)
        self.release, self.images, self.secrets, self.options = release, images, secrets, options
        self.migrate = migrate
        self.names = names_for(loaded, env_name)
        self.layout = layout_for(loaded, env_name)
        self.state = HostState(conn, self.layout)
        self.switch = HostSwitch(conn, self.names, self.layout, emit)
        self.specs = release_containers(self.config, self.environment, env_name, release, images.revision,
                                        images.images, self.layout)
        self.started_at = time.monotonic()

    def run(self) -> HostOutcome:
        host = self.conn.host
        lock = LockRecord(who=who(), when=rfc3339(time.time()), action="deploy", release=self.release,
                          message=self.options.message, pid=None, host=None)
        broken = self.state.acquire(lock, force=self.options.force_unlock)
        if broken is not None:
            self.emit(Message(f"broke a stale lock held by {broken.describe()}", level="warning", host=host))
        try:
            return self._locked()
        finally:
            self.state.release()

    def _locked(self) -> HostOutcome:
        previous = self.state.current()
        self.state.prepare()
        if self.environment.target == "ssh":
            preflight.pull(self.conn, self.emit, list(self.images.images.values()))
        if self.switch.ensure_network():
            self.emit(Message(f"created network {self.names.network}", host=self.conn.host))
        started: list[str] = []
        try:
            self._upload_secrets()
            if self.migrate:
                self._run_migrations()
            timer = Timer(self.emit, "start", host=self.conn.host, detail=self.release)
            for spec in self.specs:
                check(self.conn, dc.run_service(spec, self.names.network))
                started.append(spec.name)
            timer.done(", ".join(started))
            self._wait_healthy()
        except BaseException as exc:
            self._abandon(started, previous, exc)
            raise
        return self._switch(previous, started)

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

    def _abandon(self, started: list[str], previous: str | None, exc: BaseException) -> None:
        """Failure (or interrupt) before the switch: remove what we started, record it."""
        self.switch.remove(started)
        self.conn.run(["docker", "rm", "--force", self.names.migration(self.release)])
        self.conn.remove_tree(self.layout.release_secrets(self.release))
        self._record(FAILED, previous, _why(exc))

    # -- the switch and after --------------------------------------------------------------

    def _switch(self, previous: str | None, started: list[str]) -> HostOutcome:
        routed = next(s for s in self.specs if s.routed)
        old_upstream, _ = self.switch.live_upstream()
        proxy_existed = self.switch.proxy_state() is not None
        timer = Timer(self.emit, "switch", host=self.conn.host, detail=f"nginx -> {routed.name}")
        try:
            self.switch.write_upstream(self.release, routed.name, routed.port)
            port = self.switch.ensure_proxy(self.images.images[PROXY], proxy_port(self.loaded, self.env_name))
            if proxy_existed:
                self.switch.reload()
            verify_seconds = self.switch.verify(port, self.release)
        except BaseException as exc:
            timer.failed(_why(exc))
            try:
                if old_upstream is not None:
                    self.switch.restore_upstream(old_upstream)
            finally:
                self.switch.remove(started)
                self._record(REVERTED, previous, _why(exc))
            if isinstance(exc, DeployctlError):
                raise DeployError(f"{exc.message}; switched back to {previous or 'nothing'}",
                                  hint="the previous release is still serving") from None
            raise
        timer.done(f"verified through nginx in {verify_seconds:.2f}s (port {port})")
        # Switched and verified: from here the new release is live; bookkeeping comes first
        # so an interrupt during the drain cannot leave `current` pointing at the old one.
        self.state.set_current(self.release)
        self._record(LIVE, previous, "")
        self._retire(previous)
        return HostOutcome(self.conn.host, self.release, previous, LIVE,
                           round(time.monotonic() - self.started_at, 3))

    def _retire(self, previous: str | None) -> None:
        old = [name for release, names in self.switch.release_containers().items()
               if release != self.release for name in names]
        running = [n for n, s in self.switch.states(old).items() if s.status == "running"]
        if running:
            drain = self.environment.rollout.drain
            timer = Timer(self.emit, "drain", host=self.conn.host, detail=f"{drain:g}s, then stop {', '.join(running)}")
            time.sleep(drain)
            self.switch.stop(running)
            timer.done("stopped (kept for rollback)")
        prune(self.conn, self.switch, self.state, self.layout, self.environment.rollout.keep, self.release, self.emit)

    def _record(self, outcome: str, previous: str | None, error: str) -> None:
        record = ReleaseRecord(
            release=self.release, revision=self.images.revision,
            images={s.service: s.image for s in self.specs} | {PROXY: self.images.images.get(PROXY, "")},
            action="deploy", outcome=outcome, who=who(), when=rfc3339(time.time()),
            message=self.options.message, previous=previous, error=error,
        )
        self.state.record(record)


def _why(exc: BaseException) -> str:
    if isinstance(exc, DeployctlError):
        return exc.message.splitlines()[0]
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"
