"""Read-only views of an environment's hosts: status, release history, container logs."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from ..errors import ConnectError, UsageError
from ..events import Emit
from ..plan.judging.canary import CanaryRecord
from ..plan.lifecycle.releases import DRILL, EXEC, LIVE, sort_key
from .lifecycle.host_state import HostState
from .edge.maintenance import maintenance_of
from .env import Env
from .lifecycle.switch import HostSwitch

MAX_AT_ONCE = 16  # hosts asked at once


@dataclass
class HostStatus:
    host: str
    live: str | None
    revision: str | None
    deployed_at: str | None
    age_seconds: float | None
    containers: list[dict] = field(default_factory=list)
    lock: str | None = None
    proxy_port: int | None = None
    # The release whose upstream answers through the proxy right now (its stamp): after an
    # `uncertain` switch it can differ from `live` (the recorded current), and says which serves.
    proxy_routes: str | None = None
    # A canary's record on the host: one running now, or one a killed deployctl left (and
    # what its watchdog did); None when none (plan/judging/canary.py).
    canary: str | None = None
    # Maintenance mode on this host's proxy ("on since ..."), None when off (plan/edge/maintenance.py).
    maintenance: str | None = None
    reachable: bool = True
    error: str | None = None  # why it could not be reached


def _open(env: Env, connectors: list | None) -> list:
    conns = connectors if connectors is not None else env.connectors()
    for conn in conns:
        conn.connect()
    return conns


def status(env: Env, *, connectors: list | None = None,
           emit: Emit | None = None) -> list[HostStatus]:
    """Every host at once; one that cannot be reached is shown as such (with why), so the
    others' status is still there when one host is down."""
    conns = connectors if connectors is not None else env.connectors()
    names, layout = env.names, env.layout

    def one(conn) -> HostStatus:  # type: ignore[no-untyped-def]
        try:
            conn.connect()
        except ConnectError as exc:
            return HostStatus(host=conn.host, live=None, revision=None, deployed_at=None, age_seconds=None,
                              reachable=False, error=exc.message)
        return _host_status(conn, names, layout, env.config.proxy.port, emit)

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(len(conns), MAX_AT_ONCE))) as pool:
            return list(pool.map(one, conns))
    finally:
        for conn in conns:
            conn.close()


def _host_status(conn, names, layout, listen_port: int, emit: Emit | None = None) -> HostStatus:  # type: ignore[no-untyped-def]
    state = HostState(conn, layout, emit)  # emit: says which history lines were skipped
    switch = HostSwitch(conn, names, layout, lambda e: None)
    live = state.current()
    history = state.history()
    record = history.deployed(live) if live else None
    switched_at = next((r.when for r in reversed(history.records)
                        if r.release == live and r.outcome == LIVE and r.action != EXEC), None)
    # The two listings at once (each a round trip to the engine, on SSH to the host too); the
    # proxy's gives the running nginx and the anchor's published port (no `docker port`).
    with ThreadPoolExecutor(max_workers=1) as pool:
        listing = pool.submit(switch.proxy.containers)
        wanted = switch.release_containers().get(live, []) if live else []
        proxy = listing.result()
    nginx = next((n for n, (s, _) in proxy.nginx.items() if s == "running"), None)
    states = switch.states([*wanted, names.proxy, *([nginx] if nginx else [])])
    holder = state.holder()
    port = proxy.anchor.published(listen_port) if proxy.anchor is not None else None
    canary = CanaryRecord.parse(conn.read_file(layout.canary))
    fired = (conn.read_file(layout.canary_fired) or b"").decode().strip() or None
    return HostStatus(
        host=conn.host, live=live, revision=record.revision if record else None,
        deployed_at=switched_at, age_seconds=_age(switched_at),
        containers=[{"name": s.name, "state": s.status, "health": s.health or "-", "release": s.release or "-"}
                    for s in states.values()],
        lock=state.holder_text() if holder else ("held (no details)" if state.locked() else None),
        proxy_port=port,
        proxy_routes=switch.proxy.serving(port) if port else None,
        canary=canary.what_happened(now=time.time(), fired=fired) if canary else None,
        maintenance=maintenance_of(switch.proxy.live_config()),
    )


def _age(when: str | None) -> float | None:
    if not when:
        return None
    try:
        import calendar

        return round(time.time() - calendar.timegm(time.strptime(when, "%Y-%m-%dT%H:%M:%SZ")), 1)
    except ValueError:
        return None


def releases(env: Env, *, connectors: list | None = None,
             emit: Emit | None = None) -> dict[str, list[dict]]:
    """Per host: every release, newest first, with its last outcome and whether it is live."""
    conns = _open(env, connectors)
    layout = env.layout
    out: dict[str, list[dict]] = {}
    try:
        for conn in conns:
            state = HostState(conn, layout, emit)
            live = state.current()
            rows: dict[str, dict] = {}
            for r in state.history().records:
                if r.action == EXEC:  # an audit line of `deployctl exec`: no release changed
                    continue
                row = rows.setdefault(r.release, {"release": r.release, "revision": r.revision,
                                                  "when": r.when, "who": r.who})
                if r.action == "deploy":
                    row.update(revision=r.revision, dirty=r.dirty, when=r.when, who=r.who, outcome=r.outcome,
                               message=r.message, error=r.error)
                elif r.action == DRILL:  # `deployctl drill`: this release failed on purpose
                    caught = next((n.get("net") for n in (r.extra or {}).get("nets", [])
                                   if isinstance(n, dict) and n.get("result") == "caught"), None)
                    row["drill"] = f"--fail {(r.extra or {}).get('fail', '?')}: {r.outcome}" + (
                        f" by {caught}" if caught else "")
                elif r.action == "scale":  # a swarm `deployctl scale` of this release (no new release)
                    counts = ", ".join(f"{k}={v}" for k, v in sorted((r.extra or {}).get("replicas", {}).items()))
                    row["last_scale"] = f"{counts} at {r.when} by {r.who}"
                else:
                    row["last_rollback"] = f"{r.outcome} at {r.when} by {r.who}"
                row["live"] = r.release == live
            out[conn.host] = sorted(rows.values(), key=lambda row: sort_key(row["release"]), reverse=True)
    finally:
        for conn in conns:
            conn.close()
    return out


def logs(env: Env, service: str, *, lines: int, follow: bool,
         on_line: Callable[[str, str], None], connectors: list | None = None,
         warn: Callable[[str], None] = lambda text: None) -> None:
    """The live release's container of `service` (or `proxy`) on each host, with the
    environment's secret values masked (those its secret source gives this shell; `warn`
    names the others)."""
    from ..plan.lifecycle import docker_commands as dc
    from ..secrets import redactor
    from .lifecycle.deploy_inputs import load_for_redaction

    if service not in env.config.services and service != "proxy":
        raise UsageError(f"--service {service!r}: no such service (services: {', '.join(env.config.services)}, proxy)")
    for problem in load_for_redaction(env):
        warn(problem)
    conns = _open(env, connectors)
    names, layout = env.names, env.layout
    swarm = env.settings.target == "swarm"
    try:
        for conn in conns:
            live = HostState(conn, layout).current()
            if swarm:  # the Swarm service's tasks on every node, through the manager
                from ..plan.swarm.services import service_logs

                if service != "proxy" and live is None:
                    raise UsageError(f"{conn.host}: nothing is deployed to {env.name}")
                name = names.proxy if service == "proxy" else names.container(service, live)
                conn.run(service_logs(name, lines, follow=follow), on_line=lambda line, h=conn.host: on_line(h, redactor(line)))
                continue
            if service == "proxy":  # the nginx running in the proxy (its access log)
                from .edge.proxy import HostProxy

                container = HostProxy(conn, names, layout, lambda e: None).running_nginx() or names.proxy
            elif live is None:
                raise UsageError(f"{conn.host}: nothing is deployed to {env.name}")
            else:
                container = names.container(service, live)
            conn.run(dc.logs(container, lines, follow), on_line=lambda line, h=conn.host: on_line(h, redactor(line)))
    finally:
        for conn in conns:
            conn.close()
