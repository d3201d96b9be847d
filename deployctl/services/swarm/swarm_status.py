"""`deployctl status` for a swarm environment: the live release (the manager's `current`),
what the proxies route to, maintenance mode, a canary running or left by a killed deployctl
(the manager's canary.json, the nodes' watchdog reports), the lock, every node, and each
release service's tasks per node with their state (a task with a health check is `Running`
only once it passed it)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..env import Env
from ...plan.edge.proxy_config import live_release
from ...plan.judging.canary import CanaryRecord
from ..edge.maintenance import maintenance_of
from .swarm_deploy import SwarmJob


@dataclass
class SwarmStatus:
    manager: str
    live: str | None
    proxy_routes: str | None
    lock: str | None
    nodes: list[dict] = field(default_factory=list)
    services: list[dict] = field(default_factory=list)  # name, release, service, wanted, tasks [{node, state}]
    maintenance: str | None = None  # "on since ... (Retry-After ...)" while maintenance mode is on
    canary: str | None = None  # what became of a canary running or left (CanaryRecord.what_happened)


def status(env: Env, *, manager=None, nodes=None) -> SwarmStatus:  # type: ignore[no-untyped-def]
    job = SwarmJob(env, lambda event: None, manager, nodes=nodes)
    try:
        site, state = job.open()
        holder = state.holder()
        services = site.services()
        tasks = [t for t in site.tasks(sorted(services)) if t.desired == "Running"] if services else []
        config = site.live_config()
        canary = CanaryRecord.parse(job.manager.read_file(site.layout.canary))
        fired = sorted({(site.node(n.address).read_file(site.layout.canary_fired) or b"").decode().strip()
                        for n in site.ready_nodes()} - {""}) if canary else []
        rows = []
        for name, (release, service, wanted) in sorted(services.items(), key=lambda item: item[1][0], reverse=True):
            rows.append({"name": name, "release": release, "service": service, "wanted": wanted,
                         "tasks": [{"node": t.node, "state": t.state, "error": t.error}
                                   for t in tasks if t.service == name]})
        return SwarmStatus(
            manager=job.manager.host, live=state.current(), proxy_routes=live_release(config),
            maintenance=maintenance_of(config),
            canary=canary.what_happened(now=time.time(), fired=fired[0] if fired else None) if canary else None,
            lock=holder.describe() if holder else None,
            nodes=[vars(n) for n in site.nodes()], services=rows)
    finally:
        job.close()
