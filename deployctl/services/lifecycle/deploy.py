"""`deployctl deploy`: the release model of docs/design (design.md, "The release model").

Per host: pull by digest (before the lock, so the lock is held for the switch only); under
the host's lock: upload secrets as 0600 files, migrate once,
start the new release beside the old one, wait for health, switch nginx, verify through
nginx, drain, stop the old release (kept for rollback), record, prune. A failure before the
switch removes the new containers; after the switch, it switches back. Either way the old
release keeps serving and the command fails with exit 6.

Across hosts (docs/fleet.md) the steps are split so services/lifecycle/rollout.py can order them:
every host is checked, every host pulls, then every host is locked and uploads, migrations run once,
then hosts switch in batches; a stopped rollout reverts the hosts it already switched.
"""

from __future__ import annotations

import time
from typing import Callable

from ...errors import UncertainError, UsageError
from ...events import Emit, Message, serialized
from ...plan.lifecycle import docker_commands as dc
from ...plan.lifecycle.containers import release_containers
from ...plan.lifecycle.release_spec import release_spec
from ...plan.lifecycle.steps import PlannedStep, Step
from ...plan.judging.canary import canary_spec
from ...plan.judging.shadow import shadow_spec
from ..judging.canary import CanaryGate
from ..judging.host_judges import HostJudges
from ...plan.lifecycle.releases import FAILED, REVERTED, SKIPPED, new_release_id
from ...plan.lifecycle.switch_plan import deploy_plan, guard_spec
from ...secrets import Secret
from . import preflight
from ..edge import shared_proxy, tls
from ..edge.shared_move import SharedMove
from ..data.accessories import ensure_accessories
from ...plan.operate.hooks import ON_REVERT, SCHEMA_BLOCKED, HookContext
from ..operate.hooks import HookRunner, previous_of
from .host_state import HostState
from .deploy_records import DeployRecords
from .host_judging import HostJudging
from .host_migrations import HostMigrations
from .host_preparation import HostPreparation
from ..env import Env
from .retire import retire_and_prune
from .deploy_result import DeployOptions, DeployResult, HostOutcome
from .release_images import ReleaseImages, proxy_image_for
from ..data.release_schema import ReleaseDatabase, check_settings
from .host_calls import PREVIOUS, UNCHANGED, mapped, on_every_host
from .host_calls import why as _why
from .rollout import Cancel, Rollout, unexpected
from .transaction import after_switch, best_effort, deploy_failure, failure_outcome, run_transaction, take_lock
from .switch import HostSwitch, SwitchBackFailed
from .switch_failures import after_verified, record_live, switch_guarded


def deploy(env: Env, images: ReleaseImages, secrets: dict[str, Secret],
           emit: Emit, *, options: DeployOptions = DeployOptions(), registry_password: Secret | None = None,
           registry_username: str | None = None, connectors: list | None = None,
           now: float | None = None) -> DeployResult:
    """`env`: resolved once by the caller (the CLI: AppContext.env; with the deploy's inputs
    laid over it: deploy_inputs.env_to_deploy), handed to every host's job.
    `registry_username` overrides registry.username (ECR: the token's user, "AWS")."""
    loaded, env_name = env.loaded, env.name
    config, environment = env.config, env.settings
    shared_proxy.refuse(env)
    check_settings(env)  # backup_before_migrate: refused before anything changes
    if environment.target == "swarm":  # the same verb, driven through a Swarm manager
        from ..swarm.swarm_deploy import deploy_env as swarm_deploy, manager_of

        # `connectors`: a Swarm's one is its manager's (services/hosts.connectors_for), honoured.
        return swarm_deploy(env, images, secrets, emit, options=options, registry_password=registry_password,
                            registry_username=registry_username, now=now, manager=manager_of(env, connectors))
    login_user = registry_username or (config.registry.username if config.registry else None)
    emit = serialized(emit)  # hosts report from worker threads
    conns = connectors if connectors is not None else env.connectors()
    layout = env.layout

    live: dict[str, str | None] = {}
    moving: dict[str, bool] = {}  # host -> its own proxy moves to the shared proxy (services/edge/shared_move.py)
    # tls = "files": the pair checked (key, names, dates) before any host changes.
    pair = tls.files_pair(env) if config.tls_for(env_name) == "files" else None

    def check_host(conn) -> set[str]:  # type: ignore[no-untyped-def]
        preflight.connect(conn, emit)
        if environment.target == "local":
            preflight.local_images_present(conn, emit, [*images.images.values(), proxy_image_for(config, images)])
        elif config.registry and login_user and registry_password is not None:
            preflight.registry_login(conn, emit, config.registry.server, login_user, registry_password)
        if environment.shared_proxy is not None:  # a host name another app routes here: refused now
            # True: the app's own proxy holds the shared port, and this deploy moves it.
            moving[conn.host] = shared_proxy.SharedProxy(conn, env, emit).check_claims()
        state = HostState(conn, layout)
        live[conn.host] = state.current()  # for the hooks (DEPLOYCTL_PREVIOUS) before the lock
        return state.history().ids()

    try:
        # Preflight on every host before any host changes; one error names every bad host.
        taken = set().union(*on_every_host(conns, unchanged("preflight", check_host), environment.rollout.parallel))
        movers = sorted(host for host, moves in moving.items() if moves)
        if movers:
            _check_move(env, options, movers)
        # The environment's accessories (its database, say) are up before any release work,
        # as migrations need them: absent ones are booted, existing ones never recreated.
        on_every_host(conns, unchanged("accessories", lambda conn: ensure_accessories(env, conn, secrets, emit)),
                      environment.rollout.parallel)
        release = new_release_id(time.time() if now is None else now, images.revision, taken)
        emit(Message(f"release {release} to {env_name} ({len(conns)} host{'s' if len(conns) != 1 else ''})"))
        cancel = options.cancel or Cancel()
        settings = environment.rollout
        spec = canary_spec(settings, options.canary)
        gate = CanaryGate([conn.host for conn in conns], spec, emit) if spec is not None else None
        shadow = shadow_spec(settings, options.shadow)
        shadow_gate = CanaryGate([conn.host for conn in conns], shadow, emit) if shadow is not None else None
        if (gate or shadow_gate) is not None and (settings.batch or settings.parallel):
            # One canary (or shadow window) judged on every host's traffic at once: the hosts
            # split (or mirror) together.
            which = "canary" if gate is not None else "shadow window"
            emit(Message(f"{which}: every host at once (rollout.batch and rollout.parallel apply without a {which})"))
            settings = settings.model_copy(update={"batch": None, "parallel": None})
        if movers:
            ports = (environment.shared_proxy_port,) + ((environment.shared_proxy_tls_port,)
                                                        if config.tls_for(env_name) != "off" else ())
            settings = _move_settings(settings, ports, movers, len(conns), emit)
        jobs = [HostDeploy(env, conn, emit, release, images, secrets, options, cancel=cancel, gate=gate,
                           shadow_gate=shadow_gate, first=index == 0, moving=moving.get(conn.host, False))
                for index, conn in enumerate(conns)]
        hooks = HookRunner.for_config(loaded, emit, enabled=options.hooks, secrets=secrets, stopped=cancel.is_set)
        context = HookContext(config.app, env_name, "deploy", release, previous_of(live[c.host] for c in conns),
                              images.revision or "", tuple(c.host for c in conns))

        def watch(rollout: Rollout) -> None:
            for meeting in (gate, shadow_gate):
                if meeting is not None:
                    meeting.stopped = lambda: cancel.is_set() or rollout.stop_reason is not None

        shared = ReleaseDatabase()  # the migrations run once: every host's record names their schema
        for job in jobs:
            job.database = shared
        results, verdict = run_transaction("deploy", jobs, settings, emit, cancel=cancel, hooks=hooks,
                                           context=context, started=watch, before_lock=HostDeploy.fetch)
        hosts = [HostOutcome(job.host, release, job.previous, results[job.host].outcome,
                             results[job.host].seconds, results[job.host].error) for job in jobs]
        blocked = [job.judges.schema_blocked for job in jobs if job.judges.schema_blocked]
        if blocked:  # the guard wanted to switch back and the schema said no: on_revert says so
            hooks.run(ON_REVERT, context.with_outcome(SCHEMA_BLOCKED))
        judged = {name: meeting.verdict.to_dict() for name, meeting in (("shadow", shadow_gate), ("canary", gate))
                  if meeting is not None and meeting.verdict is not None}
        if not verdict.ok:
            error = deploy_failure(release, results, hosts, verdict)
            if judged:  # `--json`'s error object names what stopped it, with the worst routes
                error.details = {"verdicts": judged}
            raise error from unexpected(results)
        if blocked:
            raise UncertainError(f"{release} is live, but the guard could not switch back: {blocked[0]}",
                                 hint=f"look at it now: `deployctl rollback --env {env_name} --restore-data` (or "
                                      "--accept-schema) goes back deliberately")
        if environment.shared_proxy is not None:
            # Before the certificate: the CA's HTTP-01 request reaches the app through the
            # shared proxy's port, by its host name.
            shared_proxy.put_routes(env, conns, emit, proxy_image_for(config, images))
        if config.tls_for(env_name) != "off":
            _certificate(env, conns, emit, release, pair)
        return DeployResult(release, images.revision, hosts, judged)
    finally:
        for conn in conns:
            preflight.registry_logout(conn)  # a no-op where the pull removed it already
            conn.close()


def _check_move(env: Env, options: DeployOptions, movers: list[str]) -> None:
    """A move to the shared proxy goes host by host (a gap on each): a canary or a shadow
    window, which judge every host's traffic at once, are refused with it (exit 2)."""
    settings, env_name = env.settings.rollout, env.name
    for what, spec in (("canary", canary_spec(settings, options.canary)), ("shadow", shadow_spec(settings,
                                                                                                 options.shadow))):
        if spec is not None:
            raise UsageError(f"{what} with a move to the shared proxy ({', '.join(movers)}: the app's own proxy "
                             f"publishes environments.{env_name}.shared_proxy_port): the move goes host by host, "
                             f"the {what} judges every host at once",
                             hint=f"deploy once with --{what} 0 to move, then use it again (docs/proxy.md, "
                                  "\"Moving an app to the shared proxy\")")


def _move_settings(settings, ports: tuple[int, ...], movers: list[str], hosts: int, emit: Emit):  # type: ignore[no-untyped-def]
    """One host at a time for the move, whatever rollout.batch says: each host's port closes
    for a moment (plan/edge/shared_move.py), and a load balancer that retries a refused
    connection on another host then loses nothing. One host alone has no other: said first."""
    said = (f"port {ports[0]} on {', '.join(movers)} closes", "it") if len(ports) == 1 else (
        f"ports {' and '.join(map(str, ports))} on {', '.join(movers)} close", "them")
    gap = (f"{said[0]} for about a second while the app's own proxy gives {said[1]} to the shared proxy "
           "(docs/proxy.md, \"Moving an app to the shared proxy\")")
    if hosts == 1:
        emit(Message(f"moving to the shared proxy: {gap}; with one host, requests in that moment are refused",
                     level="warning"))
        return settings
    emit(Message(f"moving to the shared proxy: one host at a time (rollout.batch = {settings.batch or 'all'} does "
                 f"not apply to the move); {gap}: a load balancer that retries refused connections on another "
                 "host loses nothing"))
    return settings.model_copy(update={"batch": 1})


def _certificate(env: Env, conns: list, emit: Emit, release: str, pair) -> None:  # type: ignore[no-untyped-def]
    """After the switch, under the locks again: every host gets the environment's one
    certificate, obtained (the first deploy: HTTPS only once it exists) or renewed within 30
    days of expiry. The release is live either way; a failure says so (exit 9)."""
    try:
        tls.ensure_locked(env, conns, emit, pair=pair, action="deploy (certificate)")
    except tls.CertificateError as exc:
        raise tls.CertificateError(f"release {release} is live, but: {exc.message}", hint=exc.hint) from None


def unchanged(step: str, fn):  # type: ignore[no-untyped-def]
    """fn(conn), its connection failures named with the host and step: before the lock,
    nothing of the site changed (exit 4)."""
    def call(conn):  # type: ignore[no-untyped-def]
        try:
            return fn(conn)
        except BaseException as exc:
            raise mapped(conn.host, step, exc, UNCHANGED) from None
    return call


class HostDeploy:
    """One host's part of a deploy: a HostJob for services/lifecycle/rollout.py, the host's side
    of the transaction (docs/transaction.md). It says which steps run, in which order, and what
    a failure among them means: before the switch the release is abandoned (`_abandon`),
    around it services/lifecycle/switch_failures.py decides. What each step is lives beside
    it: the preparation (host_preparation.py), the migrations (host_migrations.py), the
    bring-up and switch on the plan built from this release's spec (switch.py), the judges'
    steps (host_judging.py) and the history lines (deploy_records.py)."""

    def __init__(self, env: Env, conn, emit: Emit, release: str,
                 images: ReleaseImages, secrets: dict[str, Secret], options: DeployOptions,
                 *, cancel: Cancel | None = None, gate: CanaryGate | None = None,
                 shadow_gate: CanaryGate | None = None, first: bool = True, moving: bool = False) -> None:
        self.env, self.conn, self.emit = env, conn, emit
        self.loaded, self.env_name = env.loaded, env.name  # for what still takes them (release_spec...)
        self.first = first  # the rollout's first host: it runs the scheduled jobs (services/operate/jobs.py)
        self.host = conn.host
        self.config = env.config
        self.environment = env.settings
        self.release, self.images, self.secrets, self.options = release, images, secrets, options
        self.cancel = cancel or Cancel()
        self.names = env.names
        self.layout = env.layout
        self.state = HostState(conn, self.layout, emit)
        # What the migration step (run on one host) found, shared by deploy() with every
        # host's job for its record (plan/data/schema.py).
        self.database = ReleaseDatabase()
        self.drain = self.environment.rollout.drain
        self.switch = HostSwitch(conn, self.names, self.layout, emit, checkpoint=self.cancel.check)
        self.containers = release_containers(self.config, self.environment, env.name, release, images.revision,
                                             images.images, self.layout)
        self.spec = release_spec(self.config, env.name, release, images.revision, images.images,
                                 proxy_image_for(self.config, images), dirty=images.dirty)
        self.plan = deploy_plan(self.spec, self.containers, self.names, self.layout.proxy_dir,
                                proxy_port=env.proxy_port, tls_port=env.tls_port, tls_loopback=env.tls_loopback, shared=env.shared,
                                drain=self.environment.rollout.drain,
                                guard=guard_spec(self.environment.rollout, options.no_guard),
                                canary=gate.spec if gate is not None else canary_spec(self.environment.rollout,
                                                                                      options.canary),
                                shadow=shadow_gate.spec if shadow_gate is not None else shadow_spec(
                                    self.environment.rollout, options.shadow))
        if moving:  # its own proxy publishes the shared proxy's port: moved at the switch
            self.switch.move = SharedMove(conn, env, self.names, self.layout, emit,
                                          self.spec.proxy.image)
        self.previous: str | None = None
        self.fetch_error: BaseException | None = None  # the pull before the lock failed (fetch)
        self.step = "prepare"  # the step under way before the switch sequence (then self.switch.step)
        self.started_at: float | None = None  # when the switch sequence began (for `stats`)
        self.phase = "before"  # before | switched back | uncertain | aborted | live
        # The shadow window, the canary and the guard (services/judging/host_judges.py).
        self.judges = HostJudges(self, gate, shadow_gate)
        self.switched = 0.0  # when the verified switch ended: a judged release's guard reads from there
        # Their steps in this deploy: [shadow], [canary] before the switch, [guard] after the record.
        self.judging_steps = HostJudging(self, self._retire)
        self.preparing = HostPreparation(self)  # the steps before the switch (services/lifecycle/host_preparation.py)
        self.migrations = HostMigrations(self)  # on the rollout's first host (services/lifecycle/host_migrations.py)
        self.records = DeployRecords(self)  # its history lines and `current` (services/lifecycle/deploy_records.py)

    # -- HostJob -----------------------------------------------------------------------------

    def lock(self) -> None:
        take_lock(self.state, self.emit, host=self.host, action="deploy", release=self.release,
                  message=self.options.message, force=self.options.force_unlock, rollout=self.environment.rollout)

    def unlock(self) -> None:
        self.state.release()

    def prepare(self) -> None:
        """The preparation's steps (`preparation()`, the list `--dry-run` prints): nothing
        the host serves changes. An interrupt is seen between any two of them."""
        try:
            for step in self.preparation():
                self.step = step.name
                step.action()
                self.cancel.check()
        except BaseException as exc:
            raise self._abandon(exc) from None

    def fetch(self) -> None:
        """Before the lock (services/lifecycle/rollout.py): the release's images onto the host, so that
        the lock is held for the switch only, not for the registry. Changes nothing the host
        serves and writes no state, so another deploy's lock does not stand in its way. A
        failure is kept for `prepare`, which fails with it under the lock (and records it)."""
        try:
            for step in self.fetching():
                self.step = step.name
                step.action()
        except BaseException as exc:  # noqa: BLE001 - the host's outcome, given by prepare
            self.fetch_error = exc

    def fetching(self) -> list[Step]:
        """What `fetch` runs before the lock (services/lifecycle/host_preparation.py)."""
        return self.preparing.fetching()

    def preparation(self) -> list[Step]:
        """What `prepare` runs, in order (services/lifecycle/host_preparation.py)."""
        return self.preparing.steps()

    def migration_rows(self) -> list[PlannedStep]:
        """What `migrate` runs (services/lifecycle/host_migrations.py), as the dry run prints it."""
        return self.migrations.rows()

    def recorded_spec(self, release: str):  # type: ignore[no-untyped-def]
        """The spec `release` was deployed with here (None: no record of it)."""
        from .rollback import recorded_spec

        return recorded_spec(self.state.history(), release, self.env)

    def migrate(self, before: Callable[[], object] | None = None) -> None:
        """Once per rollout, on one host, before any host switches; `before` (the pre_migrate
        hook) first when there is a migration to run."""
        try:
            self.step = "migrate"
            self.migrations.run(before)
        except BaseException as exc:
            raise self._abandon(exc) from None

    # -- the switch: what `run` walks, each step with the rows `--dry-run` prints for it -----

    def switch_steps(self) -> list[Step]:
        """Every step of the switch part, in the order `run` takes them."""
        return [*self.bringing_up(), *self.judging(), self.switching(), *self.after()]

    def bringing_up(self) -> list[Step]:
        """stop first, start (or only `docker start`: created during the migration), the env
        files gone, health (services/lifecycle/switch.py)."""
        return self.switch.bringing_up(self.plan)

    def judging(self) -> list[Step]:
        """[the shadow window], [the canary]: between the health check and the switch
        (services/lifecycle/host_judging.py)."""
        return self.judging_steps.before_switch()

    def switching(self) -> Step:
        """Route and verify (a failure switches back); a promoted canary's watchdog goes with
        a switch back, and stays armed past a verified switch (removed after the record)."""
        return Step("switch", self.switch.switching(self.plan).rows, self._switch)

    def after(self) -> list[Step]:
        """Once verified: the record, [the guard], then retire and prune (best effort)."""
        return [Step("record", tuple(self.plan.record_rows()), self.records.live),
                *self.judging_steps.after_record(),
                Step("retire", tuple(self.plan.retire_rows(self.environment.rollout.keep)), self._retire_after)]

    def run(self) -> None:
        """The switch steps: start beside the old release, health, [judge], route, verify;
        then the record, [the guard], and the old release drained and stopped (kept for
        rollback)."""
        self.started_at = time.time()
        up, judging, switching, (record, *rest) = self.bringing_up(), self.judging(), self.switching(), self.after()
        # Which failure gives which outcome: services/lifecycle/switch_failures.py, as a Swarm's.
        switch_guarded(self, lambda: self._switch_sequence(up, judging, switching),
                       record=lambda outcome, why: self.record(outcome, self.previous, why),
                       abandon=self._abandon_switch)
        # Switched and verified: from here the new release is live; bookkeeping comes first
        # so an interrupt during the drain cannot leave `current` pointing at the old one.
        self.switched = time.time()
        record_live(self, record.action)
        promoted = self.judging_steps.promoted
        if promoted is not None:  # its watchdog goes only now (services/lifecycle/switch_failures.py)
            after_verified(self, lambda: self.judges.switched(promoted))
        else:  # the shadow window's live copy, if any
            self._best_effort("shadow", lambda: self.judges.switched(None))
        for step in rest:  # [guard], retire
            step.action()

    def _switch_sequence(self, up: list[Step], judging: list[Step], switching: Step) -> None:
        """Bring up, [judge], route, verify. A promoted canary (`judging_steps.promoted`) keeps its
        watchdog armed: removed only once the switch is verified and recorded (run)."""
        self.cancel.check()
        self.switch.bring_up(self.plan, up)
        for step in judging:  # raise ShadowStopped or CanaryAborted after going back
            step.action()
        switching.action()

    def _switch(self) -> None:
        try:
            self.switch.switch(self.plan)
        except SwitchBackFailed:
            raise  # uncertain: the watchdog, still armed, puts the live-only proxy back
        except BaseException:
            self.judging_steps.switched_back()  # a promoted canary's watchdog goes
            raise

    def _retire_after(self) -> None:
        warm_window = self.environment.rollout.warm_window
        if not self.judging_steps.guard_watched:
            self._retire(warm_window)
        elif warm_window <= 0:
            self._retire(0)  # the watch passed: now the previous goes too, after its drain

    def _abandon_switch(self, exc: BaseException) -> BaseException:
        self.judges.leave()  # before its split: the other hosts do not wait for it
        self.step = self.switch.step
        return self._abandon(exc)

    def _retire(self, warm_window: float) -> None:
        after_switch(self.emit, self.host, lambda: retire_and_prune(
            self.conn, self.switch, self.state, self.layout, self.environment.rollout, self.release, self.emit,
            previous=self.previous, warm_window=warm_window))

    def failure_outcome(self) -> str:
        return failure_outcome(self.phase)

    def can_revert(self) -> bool:
        return self.previous is not None

    def revert(self, why: str) -> None:
        """The rollout stopped after this host switched: back to its previous release (its
        containers are stopped, kept), recorded as a rollback and this release as reverted."""
        from .rollback import HostRollback

        back = HostRollback(self.env, self.conn, self.emit, self.previous or "",
                            message=f"rollout of {self.release} stopped ({why}); reverted")
        back.keep_warm = False  # the release left is the one the rollout gave up: not worth keeping running
        back.reverts = self.release
        back.check()
        back.run()
        self.record(REVERTED, self.previous, f"the rollout stopped ({why}); back on {self.previous}")

    def skip(self, why: str, outcome: str = SKIPPED) -> None:
        """Never switched here: the uploaded secrets and the release's network go, the
        history says why (FAILED where the migrations ran, see HostJob.skip)."""
        self.clean_up()
        self.record(outcome, self.previous, why)

    # -- before the switch -----------------------------------------------------------------

    def clean_up(self) -> None:
        """What prepare and the start left, once this release will not run here."""
        self.switch.undo(self.plan)
        self.conn.run(dc.remove([self.names.migration(self.release)]))
        self.switch.remove_release_networks([self.release])
        self.conn.remove_tree(self.layout.release_secrets(self.release))

    def _abandon(self, exc: BaseException) -> BaseException:
        """Failure (or interrupt) before the switch: remove what we started, record it.
        Returns the error to raise: a lost connection named with the host and the step
        (nothing was switched, so the previous release serves). The clean-up and record are
        best effort then: the host may be gone; what they leave the next deploy removes."""
        error = mapped(self.host, self.step, exc, PREVIOUS)
        self._best_effort("clean-up", self.clean_up)
        self._best_effort("record", lambda: self.record(FAILED, self.previous, _why(error)))
        return error

    def _best_effort(self, what: str, call) -> None:  # type: ignore[no-untyped-def]
        best_effort(self.emit, self.host, what, call)

    def record(self, outcome: str, previous: str | None, error: str, extra: dict | None = None) -> None:
        """This release's history line here (services/lifecycle/deploy_records.py)."""
        self.records.write(outcome, previous, error, extra)
