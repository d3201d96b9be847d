"""`deployctl rollback`: switch back to an earlier release whose containers are still on
the host (stopped, kept by deploy for this). No build, no registry: `docker start`, the same
health-gated nginx switch as deploy, then the current release's containers are stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..config import LoadedConfig
from ..errors import DeployctlError, RollbackError
from ..events import Emit, Message, Timer
from ..plan.build import rfc3339
from ..plan.lock import LockRecord
from ..plan.releases import FAILED, LIVE, ReleaseRecord
from . import preflight
from .host_state import HostState
from .hosts import connectors_for, layout_for, names_for, who
from .prune import prune
from .switch import HealthTarget, HostSwitch


@dataclass
class RollbackOutcome:
    host: str
    release: str
    previous: str | None
    seconds: float  # lock to verified switch
    total_seconds: float  # including the drain and stopping the old release


def rollback(loaded: LoadedConfig, env_name: str, emit: Emit, *, to: str | None = None, message: str = "",
             force_unlock: bool = False, connectors: list | None = None) -> list[RollbackOutcome]:
    conns = connectors if connectors is not None else connectors_for(loaded, env_name)
    try:
        for conn in conns:
            preflight.connect(conn, emit)
        return [rollback_host(loaded, env_name, conn, emit, to=to, message=message, force_unlock=force_unlock)
                for conn in conns]
    finally:
        for conn in conns:
            conn.close()


def rollback_host(loaded: LoadedConfig, env_name: str, conn, emit: Emit, *, to: str | None = None,
                  message: str = "", force_unlock: bool = False) -> RollbackOutcome:
    started = time.monotonic()
    layout, names = layout_for(loaded, env_name), names_for(loaded, env_name)
    state = HostState(conn, layout)
    switch = HostSwitch(conn, names, layout, emit)
    history = state.history()
    current = state.current()
    target = to or history.previous_good(current)
    if target is None:
        raise RollbackError(f"{conn.host}: no earlier good release to roll back to (live: {current or 'none'})",
                            hint="`deployctl releases --env ...` lists what is on the host")
    record = history.deployed(target)
    if record is None:
        raise RollbackError(f"{conn.host}: {target} was never deployed successfully here",
                            hint="`deployctl releases --env ...` lists the releases you can roll back to")
    if target == current:
        raise RollbackError(f"{conn.host}: {target} is already live")
    lock = LockRecord(who=who(), when=rfc3339(time.time()), action="rollback", release=target, message=message)
    broken = state.acquire(lock, force=force_unlock)
    if broken is not None:
        emit(Message(f"broke a stale lock held by {broken.describe()}", level="warning", host=conn.host))
    try:
        containers = switch.release_containers().get(target, [])
        services = [s for s in record.images if s != "proxy"]
        expected = {names.container(s, target): s for s in services}
        missing = sorted(set(expected) - set(containers))
        if missing:
            raise RollbackError(f"{conn.host}: {target}'s containers are gone ({', '.join(missing)}); "
                                "it was pruned", hint="deploy that revision again instead")
        seconds = _switch_to(loaded, env_name, conn, switch, state, emit, target, current, expected, message)
        _retire(loaded, env_name, conn, switch, state, layout, emit, target)
        return RollbackOutcome(conn.host, target, current, round(seconds, 3), round(time.monotonic() - started, 3))
    finally:
        state.release()


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
        finally:
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
    old = [n for release, names in switch.release_containers().items() if release != target for n in names]
    running = [n for n, s in switch.states(old).items() if s.status == "running"]
    if running:
        drain = loaded.environment(env_name).rollout.drain
        timer = Timer(emit, "drain", host=conn.host, detail=f"{drain:g}s, then stop {', '.join(running)}")
        time.sleep(drain)
        switch.stop(running)
        timer.done()
    prune(conn, switch, state, layout, loaded.environment(env_name).rollout.keep, target, emit)


def _record(target: str, previous: str | None, outcome: str, error: str, message: str) -> ReleaseRecord:
    return ReleaseRecord(release=target, revision=None, images={}, action="rollback", outcome=outcome,
                         who=who(), when=rfc3339(time.time()), message=message, previous=previous, error=error)
