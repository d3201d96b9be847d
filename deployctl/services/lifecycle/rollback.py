"""`deployctl rollback`: switch back to an earlier release whose containers are still on
the hosts (stopped, kept by deploy for this). No build, no registry: `docker start`, the same
health-gated switch as deploy (services/lifecycle/switch.py, one sequence for both), then the current
release's containers are stopped.

Across hosts it goes to one release everywhere: `--to`, or the previous good release every
host agrees on (hosts that disagree are refused before anything changes). It rolls out
like a deploy (services/lifecycle/rollout.py): every host checked, every lock taken, batches, a
failure stops it and the hosts already switched go back to what they served.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from ...errors import RollbackError, UsageError
from ...events import Emit, Message, serialized
from ...plan.lifecycle import rollout as plan
from ...plan.data import schema
from ...plan.pipeline.images import PROXY, builtin_proxy_image
from ...plan.lifecycle.release_spec import ReleaseSpec, release_spec
from ...plan.lifecycle.releases import LIVE, REVERTED, REVERTS, SKIPPED, BadReleaseId, History, ReleaseRecord, check_release_id
from ...plan.edge.proxy_config import Standby, live_release, standby_of
from ...plan.lifecycle.steps import PlannedStep, Step
from ...plan.lifecycle.switch_plan import SwitchPlan, rollback_plan
from . import preflight
from ...plan.operate.hooks import HookContext
from ...secrets import Secret
from ..operate.hooks import HookRunner, previous_of
from .host_state import HostState
from ..env import Env
from .retire import retire_and_prune, stop_expired_warm
from .host_calls import combined, every_outcome, failures, on_every_host
from .rollout import Cancel, unexpected
from .switch import HostSwitch
from .switch_failures import record_live, rollback_guarded
from .transaction import after_switch, failure_outcome, release_record, rollback_failure, run_transaction, take_lock


@dataclass
class RollbackOutcome:
    host: str
    release: str
    previous: str | None
    seconds: float  # lock to verified switch
    total_seconds: float  # including the drain and stopping the old release
    outcome: str = plan.SUCCEEDED
    error: str = ""


def rollback(env: Env, emit: Emit, *, to: str | None = None, message: str = "",
             force_unlock: bool = False, connectors: list | None = None, hooks: bool = True,
             secrets: dict[str, Secret] | None = None, accept_schema: bool = False,
             restore_data: bool = False) -> list[RollbackOutcome]:
    """`env`: resolved once by the caller (the CLI: AppContext.env), handed to every host's job.
    `hooks`: False for --no-hooks; `secrets`: the values of the secrets the hooks list.
    `accept_schema` / `restore_data`: a target recorded with another database schema than
    the one in effect (plan/data/schema.py) is refused without one of them."""
    loaded, env_name, environment = env.loaded, env.name, env.settings
    if to is not None:  # the CLI checks it too; a caller of this function is no exception
        try:
            check_release_id(to, "--to")
        except BadReleaseId as exc:
            raise UsageError(str(exc)) from None
    if environment.target == "swarm":  # the same verb, driven through a Swarm manager
        from ..swarm.swarm_deploy import manager_of, rollback_env as swarm_rollback

        if restore_data:
            from ...plan.lifecycle.target_limits import refuse

            refuse("swarm", env_name, "backups", "rollback --restore-data")

        # `connectors`: a Swarm's one is its manager's (services/hosts.connectors_for), honoured.
        return swarm_rollback(env, emit, to=to, message=message, force_unlock=force_unlock,  # type: ignore[return-value]
                              hooks=hooks, secrets=secrets, manager=manager_of(env, connectors))
    emit = serialized(emit)
    conns = connectors if connectors is not None else env.connectors()
    try:
        # Each host's engine check (`docker version`) runs beside its reads and the target's
        # check, all read only; a failed one is still that host's error, said in place of
        # anything else (as when the connect waited for it): one round trip less before the lock.
        with _EngineChecks(conns, emit) as engines:
            def look(conn) -> plan.HostReleases:  # type: ignore[no-untyped-def]
                engines.start(conn)
                state = HostState(conn, env.layout)
                current = state.current()
                return plan.HostReleases(conn.host, current, state.history().previous_good(current))

            outcomes = every_outcome(conns, look, environment.rollout.parallel)
            engines.raise_failed(failures(conns, outcomes))
            views: list[plan.HostReleases] = outcomes
            target = plan.rollback_target(views, to)
            # The migrations ran once per environment: the first host's history says the schema.
            decision = schema.decide(HostState(conns[0], env.layout).history(), target,
                                     accept=accept_schema, restore_data=restore_data)
            if decision.action == schema.REFUSE:
                raise RollbackError(f"rollback to {target}: {decision.message}",
                                    hint="`deployctl releases --env ...` shows each release's schema")
            if decision.message:
                emit(Message(decision.message, level="warning"))
            cancel = Cancel()  # a SIGTERM stops each host at its next step, health waits included
            jobs = [HostRollback(env, conn, emit, target, message=message, force_unlock=force_unlock, cancel=cancel)
                    for conn in conns]
            on_every_host(jobs, lambda job: job.check(), environment.rollout.parallel)  # before any lock or switch
        emit(Message(f"rollback of {env_name} to {target} ({len(jobs)} host{'s' if len(jobs) != 1 else ''})"))
        runner = HookRunner.for_config(loaded, emit, enabled=hooks, secrets=secrets, stopped=cancel.is_set)
        context = HookContext(loaded.config.app, env_name, "rollback", target,
                              previous_of(view.current for view in views), _revision(jobs, target),
                              tuple(job.host for job in jobs))
        for job in jobs:
            job.schema_after = decision.schema_after
        backup = decision.backup if decision.action == schema.RESTORE else None
        assert decision.action != schema.RESTORE or backup is not None

        def restore(job: HostRollback) -> None:  # once, under the locks, before any switch
            # Imported here: only --restore-data needs it, and with it the backups' modules
            # (plan/data, services/data, the backup stores) that a plain rollback's start-up
            # would otherwise import (~15 ms of CPU; bench/rollback_startup.py).
            from ..data.release_schema import restore_for_rollback

            restore_for_rollback(env, job.conn, backup, emit)

        results, verdict = run_transaction("rollback", jobs, environment.rollout, emit, cancel=cancel, hooks=runner,
                                           context=context, first_step=restore if backup is not None else None)
        outcomes = [job.outcome_for(results[job.host]) for job in jobs]
        if not verdict.ok:
            raise rollback_failure(target, results, outcomes, verdict) from unexpected(results)
        return outcomes
    finally:
        for conn in conns:
            conn.close()


class HostRollback:
    """One host's part of a rollback (a HostJob for services/lifecycle/rollout.py). Also the revert
    step of a stopped deploy, which holds the lock already and calls `run()` alone.

    The target's spec comes from its own deploy record, not from today's deploy.toml: the
    switch starts exactly the containers, checks exactly the health and routes exactly the
    service that release was deployed with."""

    def __init__(self, env: Env, conn, emit: Emit, target: str, *,
                 message: str = "", force_unlock: bool = False, cancel: Cancel | None = None) -> None:
        self.env, self.conn, self.emit = env, conn, emit
        self.host = conn.host
        self.target, self.message, self.force_unlock = target, message, force_unlock
        self.layout, self.names = env.layout, env.names
        self.environment = env.settings
        self.state = HostState(conn, self.layout, emit)
        # Without the cancel check a SIGTERM during the target's health wait was not seen: the
        # rollback switched anyway and the rollout then reverted it (tests/faults, SIGTERM).
        self.switch = HostSwitch(conn, self.names, self.layout, emit, checkpoint=(cancel or Cancel()).check)
        self.current: str | None = None
        self.plan: SwitchPlan | None = None
        self.phase = "before"  # before | live | switched back | uncertain
        self.seconds = 0.0
        self.started = time.monotonic()
        self.keep_warm = True  # the release left stays warm (rollout.warm_window); a rollout's revert says no
        self.reverts: str | None = None  # set by a stopped rollout's revert: see ReleaseRecord.reverts
        self.started_at = time.time()  # the command's start: `stats` measures time to restore from here
        self.revision = ""  # the target's, from its deploy record (check)
        self.schema_after: dict[str, str] | None = None  # the database's schema after this switch
        self.lock_current: str | None = None  # the live release read again under the lock (prepare)

    def check(self) -> None:
        """The target was deployed here and its containers are still here (read-only)."""
        self.current = self.state.current()
        if self.target == self.current:
            return
        history = self.state.history()
        record = history.deployed(self.target)
        if record is None:
            raise RollbackError(f"{self.host}: {self.target} was never deployed successfully here",
                                hint="`deployctl releases --env ...` lists the releases you can roll back to")
        self.revision = record.revision or ""
        spec = spec_of(record, self.env)
        # Side by side, two round trips to the engine: on a warm rollback's way to its switch.
        with ThreadPoolExecutor(max_workers=2) as pool:
            listed = pool.submit(self.switch.release_states)
            looked = pool.submit(self._standby_look, spec, history)
            states = listed.result().get(self.target, {})
            look = looked.result()
        missing = sorted(set(spec.containers) - set(states))
        if missing:
            raise RollbackError(f"{self.host}: {self.target}'s containers are gone ({', '.join(missing)}); "
                                "it was pruned", hint="deploy that revision again instead")
        # A warm release's containers still run: starting them again would only cost time.
        running = {name for name in spec.containers if states[name] == "running"}
        flag, standby = self._standby_switch(spec, running, *look)
        self.plan = rollback_plan(spec, self.names, self.layout.proxy_dir,
                                  proxy_port=self.env.proxy_port, tls_port=self.env.tls_port,
                                  tls_loopback=self.env.tls_loopback, shared=self.env.shared,
                                  drain=self.environment.rollout.drain, running=running, flag=flag,
                                  standby=standby)

    def _standby_look(self, spec: ReleaseSpec, history: History) -> tuple[bytes | None, ReleaseSpec | None,
                                                                          dict[str, str]]:
        """(the live proxy configuration, the spec of the release this rollback leaves warm,
        the addresses of both routed containers: one inspect)."""
        if self.current is None:
            return None, None, {}
        config = self.switch.proxy.live_config()
        leaves_warm = self.keep_warm and self.environment.rollout.warm_window > 0
        current = recorded_spec(history, self.current, self.env) if leaves_warm else None
        ips = self.switch.addresses([s.routed.container for s in (spec, current) if s is not None])
        return config, current, ips

    def _standby_switch(self, spec: ReleaseSpec, running: set[str], config: bytes | None,
                        current: ReleaseSpec | None, ips: dict[str, str]) -> tuple[str | None, Standby | None]:
        """(the live configuration's standby flag when the target is that standby, running
        at the address the configuration names: the switch is then the flag; the release
        this rollback leaves warm, as the standby of the target's configuration)."""
        standby = standby_of(config)
        routed = spec.routed
        flag = None
        if (standby is not None and standby.release == spec.release and live_release(config) == self.current
                and set(spec.containers) <= running and ips.get(routed.container)
                and standby.address == f"{ips[routed.container]}:{routed.port}"):
            flag = standby.flag
        left = None
        if current is not None and ips.get(current.routed.container):
            left = self.switch.standby(current, spec.release, ip=ips[current.routed.container])
        return flag, left

    # -- HostJob -----------------------------------------------------------------------------

    def lock(self) -> None:
        take_lock(self.state, self.emit, host=self.host, action="rollback", release=self.target,
                  message=self.message, force=self.force_unlock, rollout=self.environment.rollout)

    def prepare(self) -> None:
        """Under the lock, again: a deploy or rollback may have finished between the check
        and the lock (`current` moved: everything is looked at again). Warm releases past
        their window are stopped first (never the live one or the target); the target's
        containers were listed by the check, and a warm rollback's time is round trips."""
        for step in self.preparation():
            step.action()

    def preparation(self) -> list[Step]:
        """What `prepare` runs, with the rows the dry run prints for it."""
        return [Step("warm", (PlannedStep("warm", "stop warm releases past their window (rollout.warm_window), "
                                                  "never the live one or the target"),), self._stop_warm),
                Step("prepare", (PlannedStep("state", f"read {self.layout.current} again: when another command "
                                                      "moved it meanwhile, the target and its containers are "
                                                      "looked at again"),), self._check_again)]

    def _stop_warm(self) -> None:
        self.lock_current = self.state.current()
        stop_expired_warm(self.switch, keep={r for r in (self.lock_current, self.target) if r})

    def _check_again(self) -> None:
        if self.lock_current != self.current or self.plan is None:
            self.check()

    # -- the switch: what `run` walks, each step with the rows `--dry-run` prints for it -----

    def switch_steps(self) -> list[Step]:
        """Every step of the switch part, in the order `run` takes them (`check()` first)."""
        return [*self.bringing_up(), self.switching(), *self.after()]

    def bringing_up(self) -> list[Step]:
        """stop first, the target's stopped containers started, health (a warm target's
        running ones are only checked): services/lifecycle/switch.py, as a deploy's."""
        assert self.plan is not None, "check() first"
        return self.switch.bringing_up(self.plan)

    def switching(self) -> Step:
        """Route and verify, or the standby's flag then the verify (a failure switches back)."""
        assert self.plan is not None, "check() first"
        return self.switch.switching(self.plan)

    def after(self) -> list[Step]:
        """Once verified: the record, then retire and prune (best effort)."""
        assert self.plan is not None, "check() first"
        return [Step("record", tuple(self.plan.record_rows()), self._record_live),
                Step("retire", tuple(self.plan.retire_rows(self.environment.rollout.keep)), self._retire)]

    def run(self) -> str | None:
        if self.target == self.current:
            self.emit(Message(f"{self.target} is already live here", host=self.host))
            return plan.ALREADY_LIVE
        assert self.plan is not None, "check() first"
        self.started = time.monotonic()
        up, switching, (record, retire) = self.bringing_up(), self.switching(), self.after()

        def bring_up_and_switch() -> None:
            self.switch.bring_up(self.plan, up)  # type: ignore[arg-type]
            switching.action()

        # The outcomes, records and exit codes of a deploy's failures (services/lifecycle/switch_failures.py):
        # switched, then switched back, is "reverted" (the target got traffic for a moment).
        try:
            rollback_guarded(self, bring_up_and_switch, record=lambda outcome, why: self.state.record(
                _record(self.target, self.current, outcome, why, self.message)))
            self.seconds = time.monotonic() - self.started
            # A flag switch writes the target's own configuration meanwhile (HostSwitch.settle).
            record_live(self, record.action)
            after_switch(self.emit, self.host, retire.action)
        finally:
            self.switch.settle()  # before the lock is released (by the rollout, after run)
        return None

    @property
    def step(self) -> str:
        """The step under way (the switch's), for a lost connection's message."""
        return self.switch.step

    def clean_up(self) -> None:
        """Nothing beyond the switch's own undo, which already stopped the target's started
        containers again (and started the stop_first workers it stopped): a rollback creates
        no network, secret or container of its own."""

    def _record_live(self) -> None:
        self.state.set_current(self.target)
        extra = {k: v for k, v in ((REVERTS, self.reverts), (schema.SCHEMA, self.schema_after)) if v}
        self.state.record(_record(self.target, self.current, LIVE, "", self.message, started=self.started_at,
                                  extra=extra or None))

    def _retire(self) -> None:
        warm_window = self.environment.rollout.warm_window if self.keep_warm else 0
        retire_and_prune(self.conn, self.switch, self.state, self.layout, self.environment.rollout, self.target,
                         self.emit, previous=self.current, warm_window=warm_window)

    def failure_outcome(self) -> str:
        return failure_outcome(self.phase)

    def can_revert(self) -> bool:
        return self.current is not None

    def revert(self, why: str) -> None:
        """The rollout stopped after this host switched: back to the release it served, and
        this rollback recorded as reverted (as HostDeploy.revert does for a deploy)."""
        back = HostRollback(self.env, self.conn, self.emit, self.current or "",
                            message=f"rollback stopped ({why}); reverted")
        back.reverts = self.target
        back.check()
        back.run()
        self.state.record(_record(self.target, self.current, REVERTED,
                                  f"the rollback stopped ({why}); back on {self.current}", self.message))

    def skip(self, why: str, outcome: str = SKIPPED) -> None:
        if self.current != self.target:
            self.state.record(_record(self.target, self.current, outcome, why, self.message))

    def unlock(self) -> None:
        self.state.release()

    def outcome_for(self, result) -> RollbackOutcome:  # type: ignore[no-untyped-def]
        live = self.target if result.outcome in plan.DONE else self.current
        return RollbackOutcome(self.host, live or "-", self.current, round(self.seconds, 3),
                               round(time.monotonic() - self.started, 3), result.outcome, result.error)


class _EngineChecks:
    """Each host's engine check (preflight.connect_started), left running beside its reads.
    On leaving the block, each one that failed is its host's error, said in place of
    whatever else the block raised or did (a failed check explains a failed read), beside
    the read failures of the other hosts."""

    def __init__(self, conns, emit: Emit) -> None:  # type: ignore[no-untyped-def]
        self.conns, self.emit = conns, emit
        self._checks: dict[str, Callable[[], None]] = {}
        self._read: dict[str, BaseException] = {}

    def start(self, conn) -> None:  # type: ignore[no-untyped-def]
        self._checks[conn.host] = preflight.connect_started(conn, self.emit)

    def raise_failed(self, read: dict[str, BaseException]) -> None:
        """The hosts whose reads failed: their errors (or their engines', on leaving)."""
        if read:
            self._read = read
            raise combined(read)

    def __enter__(self) -> "_EngineChecks":
        return self

    def __exit__(self, *exc_info: object) -> None:
        engine: dict[str, BaseException] = {}
        for host, check in self._checks.items():
            try:
                check()
            except BaseException as exc:  # noqa: BLE001 - the host's failure, raised below
                engine[host] = exc
        if engine:
            raise combined({c.host: engine.get(c.host) or self._read[c.host] for c in self.conns
                            if c.host in engine or c.host in self._read}) from None


def _revision(jobs: list["HostRollback"], target: str) -> str:
    """The target's revision (DEPLOYCTL_REVISION), from the first host's record of it."""
    return next((job.revision for job in jobs if job.revision), "")


def spec_of(record: ReleaseRecord, env: Env) -> ReleaseSpec:
    """The spec a release was deployed with. A release recorded before records carried one
    is described from today's deploy.toml (its containers are on the app network only)."""
    if record.spec:
        return ReleaseSpec.from_dict(record.spec)
    config = env.config
    images = {s: record.images.get(s, "") for s in config.services}
    proxy = record.images.get(PROXY) or builtin_proxy_image(config.proxy)
    return release_spec(config, env.name, record.release, record.revision, images, proxy, dirty=record.dirty)


def recorded_spec(history: History, release: str, env: Env) -> ReleaseSpec | None:
    """The spec `release` was deployed with on the host whose history this is (None: no
    successful deploy of it there)."""
    record = history.deployed(release)
    return spec_of(record, env) if record is not None else None


def _record(target: str, previous: str | None, outcome: str, error: str, message: str,
            started: float | None = None, extra: dict | None = None) -> ReleaseRecord:
    """A rollback's line: the target's revision and images are in its own deploy record."""
    return release_record(release=target, action="rollback", outcome=outcome, previous=previous, error=error,
                          message=message, started=started, extra=extra)
