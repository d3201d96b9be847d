"""`deployctl rollback`: switch back to an earlier release whose containers are still on
the hosts (stopped, kept by deploy for this). No build, no registry: `docker start`, the same
health-gated nginx switch as deploy, then the current release's containers are stopped.

Across hosts it goes to one release everywhere: `--to`, or the previous good release every
host agrees on (hosts that disagree are refused before anything changes). It rolls out
like a deploy (services/rollout.py): every host checked, every lock taken, batches, a
failure stops it and the hosts already switched go back to what they served.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..config import LoadedConfig
from ..errors import DeployctlError, ExitCode, RollbackError, RolloutError
from ..events import Emit, Message, Timer, serialized
from ..plan import rollout as plan
from ..plan.build import rfc3339
from ..plan.lock import LockRecord
from ..plan.releases import FAILED, LIVE, SKIPPED, UNCERTAIN, ReleaseRecord
from . import preflight
from .host_state import HostState
from .hosts import connectors_for, layout_for, names_for, who
from .prune import prune
from .host_calls import on_every_host
from .host_calls import why as _why
from .rollout import Rollout, unexpected
from .switch import HealthTarget, HostSwitch


class SwitchBackFailed(RollbackError):
    """A failed switch could not be undone either: the host's state is uncertain."""


@dataclass
class RollbackOutcome:
    host: str
    release: str
    previous: str | None
    seconds: float  # lock to verified switch
    total_seconds: float  # including the drain and stopping the old release
    outcome: str = plan.SUCCEEDED
    error: str = ""


def rollback(loaded: LoadedConfig, env_name: str, emit: Emit, *, to: str | None = None, message: str = "",
             force_unlock: bool = False, connectors: list | None = None) -> list[RollbackOutcome]:
    environment = loaded.environment(env_name)
    emit = serialized(emit)
    conns = connectors if connectors is not None else connectors_for(loaded, env_name)
    try:
        def look(conn) -> plan.HostReleases:  # type: ignore[no-untyped-def]
            preflight.connect(conn, emit)
            state = HostState(conn, layout_for(loaded, env_name))
            current = state.current()
            return plan.HostReleases(conn.host, current, state.history().previous_good(current))

        views = on_every_host(conns, look, environment.rollout.parallel)
        target = plan.rollback_target(views, to)
        jobs = [HostRollback(loaded, env_name, conn, emit, target, message=message, force_unlock=force_unlock)
                for conn in conns]
        on_every_host(jobs, lambda job: job.check(), environment.rollout.parallel)  # before any lock or switch
        emit(Message(f"rollback of {env_name} to {target} ({len(jobs)} host{'s' if len(jobs) != 1 else ''})"))
        results = Rollout(jobs, environment.rollout, emit, action="rollback").run()
        verdict = plan.verdict({h: r.outcome for h, r in results.items()})
        outcomes = [job.outcome_for(results[job.host]) for job in jobs]
        if not verdict.ok:
            raise _failure(target, results, outcomes, verdict) from unexpected(results)
        return outcomes
    finally:
        for conn in conns:
            conn.close()


def _failure(target: str, results: dict, outcomes: list[RollbackOutcome], verdict: plan.Verdict) -> DeployctlError:
    """A failed rollback is exit 7 whatever state it left: the release asked for is not live.
    One host keeps its own error (it names the host and what failed)."""
    if len(results) == 1:
        exc = next(iter(results.values())).exc
        if isinstance(exc, RollbackError):
            return exc
    lines = [f"rollback to {target} did not finish: {verdict.summary}"]
    lines += [f"{r.host}: {r.outcome}" + (f" ({r.error})" if r.error else "") for r in results.values()]
    return RolloutError("\n".join(lines), exit_code=ExitCode.ROLLBACK_FAILED, hosts=outcomes,
                        hint="`deployctl status --env ...` shows what each host serves")


class HostRollback:
    """One host's part of a rollback (a HostJob for services/rollout.py). Also the revert
    step of a stopped deploy, which holds the lock already and calls `run()` alone."""

    def __init__(self, loaded: LoadedConfig, env_name: str, conn, emit: Emit, target: str, *,
                 message: str = "", force_unlock: bool = False) -> None:
        self.loaded, self.env_name, self.conn, self.emit = loaded, env_name, conn, emit
        self.host = conn.host
        self.target, self.message, self.force_unlock = target, message, force_unlock
        self.layout, self.names = layout_for(loaded, env_name), names_for(loaded, env_name)
        self.state = HostState(conn, self.layout)
        self.switch = HostSwitch(conn, self.names, self.layout, emit)
        self.current: str | None = None
        self.expected: dict[str, str] = {}  # container -> service of the target release
        self.phase = "before"  # before | live | uncertain
        self.seconds = 0.0
        self.started = time.monotonic()

    def check(self) -> None:
        """The target was deployed here and its containers are still here (read-only)."""
        self.current = self.state.current()
        if self.target == self.current:
            return
        record = self.state.history().deployed(self.target)
        if record is None:
            raise RollbackError(f"{self.host}: {self.target} was never deployed successfully here",
                                hint="`deployctl releases --env ...` lists the releases you can roll back to")
        containers = self.switch.release_containers().get(self.target, [])
        services = [s for s in record.images if s != "proxy"]
        self.expected = {self.names.container(s, self.target): s for s in services}
        missing = sorted(set(self.expected) - set(containers))
        if missing:
            raise RollbackError(f"{self.host}: {self.target}'s containers are gone ({', '.join(missing)}); "
                                "it was pruned", hint="deploy that revision again instead")

    # -- HostJob -----------------------------------------------------------------------------

    def lock(self) -> None:
        lock = LockRecord(who=who(), when=rfc3339(time.time()), action="rollback", release=self.target,
                          message=self.message)
        broken = self.state.acquire(lock, force=self.force_unlock)
        if broken is not None:
            self.emit(Message(f"broke a stale lock held by {broken.describe()}", level="warning", host=self.host))

    def prepare(self) -> None:
        """Under the lock, again: a deploy may have finished between the check and the lock."""
        self.check()

    def run(self) -> str | None:
        if self.target == self.current:
            self.emit(Message(f"{self.target} is already live here", host=self.host))
            return plan.ALREADY_LIVE
        self.started = time.monotonic()
        try:
            self.seconds = _switch_to(self.loaded, self.env_name, self.conn, self.switch, self.state, self.emit,
                                      self.target, self.current, self.expected, self.message)
        except SwitchBackFailed:
            self.phase = "uncertain"
            raise
        except RollbackError:
            raise  # switched back: the current release still serves
        except BaseException:
            self.phase = "uncertain"
            raise
        self.phase = "live"
        try:
            _retire(self.loaded, self.env_name, self.conn, self.switch, self.state, self.layout, self.emit,
                    self.target)
        except Exception as exc:  # noqa: BLE001 - the target is live and verified; only the clean-up failed
            self.emit(Message(f"after the switch: {_why(exc)}", level="warning", host=self.host))
        return None

    def failure_outcome(self) -> str:
        return plan.UNCERTAIN if self.phase == "uncertain" else plan.FAILED

    def can_revert(self) -> bool:
        return self.current is not None

    def revert(self, why: str) -> None:
        back = HostRollback(self.loaded, self.env_name, self.conn, self.emit, self.current or "",
                            message=f"rollback stopped ({why}); reverted")
        back.check()
        back.run()

    def skip(self, why: str) -> None:
        if self.current != self.target:
            self.state.record(_record(self.target, self.current, SKIPPED, why, self.message))

    def unlock(self) -> None:
        self.state.release()

    def outcome_for(self, result) -> RollbackOutcome:  # type: ignore[no-untyped-def]
        live = self.target if result.outcome in plan.DONE else self.current
        return RollbackOutcome(self.host, live or "-", self.current, round(self.seconds, 3),
                               round(time.monotonic() - self.started, 3), result.outcome, result.error)


def _switch_to(loaded, env_name, conn, switch: HostSwitch, state: HostState, emit: Emit, target: str,
               current: str | None, expected: dict[str, str], message: str) -> float:
    started = time.monotonic()
    config = loaded.config
    from concurrent.futures import ThreadPoolExecutor

    timer = Timer(emit, "start", host=conn.host, detail=target)
    with ThreadPoolExecutor(max_workers=1) as pool:
        port_future = pool.submit(switch.proxy_port)  # meanwhile: it is on the critical path otherwise
        switch.start_existing(list(expected))
        port = port_future.result()
    timer.done()
    old_upstream, _ = switch.live_upstream()
    try:
        timer = Timer(emit, "health", host=conn.host, detail=target)
        switch.wait_healthy([
            HealthTarget(name, svc, config.services[svc].port, config.services[svc].healthcheck.path,
                         config.services[svc].healthcheck.timeout, config.services[svc].healthcheck.interval)
            for name, svc in expected.items() if svc in config.services
        ])
        timer.done()
        routed = config.routed_service
        routed_name = next(n for n, s in expected.items() if s == routed)
        timer = Timer(emit, "switch", host=conn.host, detail=f"nginx -> {routed_name}")
        switch.write_upstream(target, routed_name, config.services[routed].port)
        switch.reload()
        if port is None:
            raise RollbackError(f"{conn.host}: the proxy is not running")
        switch.verify(port, target)
        timer.done()
    except BaseException as exc:
        why = exc.message if isinstance(exc, DeployctlError) else type(exc).__name__
        try:
            if old_upstream is not None:
                switch.restore_upstream(old_upstream)
            switch.stop(list(expected))
        except BaseException as back:
            problem = f"{why}; switching back to {current or 'nothing'} failed: {_why(back)}"
            state.record(_record(target, current, UNCERTAIN, problem, message))
            raise SwitchBackFailed(f"{conn.host}: rollback to {target} failed: {problem}",
                                   hint="the host's state is uncertain: check `deployctl status` and its nginx") from None
        state.record(_record(target, current, FAILED, why, message))
        if isinstance(exc, DeployctlError):
            raise RollbackError(f"rollback to {target} failed: {why}",
                                hint=f"{current or 'the previous release'} should still be serving; check `deployctl status`") from None
        raise
    seconds = time.monotonic() - started
    state.set_current(target)
    state.record(_record(target, current, LIVE, "", message))
    return seconds


def _retire(loaded, env_name, conn, switch: HostSwitch, state: HostState, layout, emit: Emit, target: str) -> None:
    on_host = switch.release_containers()
    old = [n for release, names in on_host.items() if release != target for n in names]
    running = [n for n, s in switch.states(old).items() if s.status == "running"]
    if running:
        drain = loaded.environment(env_name).rollout.drain
        timer = Timer(emit, "drain", host=conn.host, detail=f"{drain:g}s, then stop {', '.join(running)}")
        time.sleep(drain)
        switch.stop(running)
        timer.done()
    prune(conn, switch, state, layout, loaded.environment(env_name).rollout.keep, target, emit, on_host)


def _record(target: str, previous: str | None, outcome: str, error: str, message: str) -> ReleaseRecord:
    return ReleaseRecord(release=target, revision=None, images={}, action="rollback", outcome=outcome,
                         who=who(), when=rfc3339(time.time()), message=message, previous=previous, error=error)
