"""The ready nodes of a Swarm environment, each with its global proxy task, for the commands
that change every node's proxy the way they change a host's (`certs`, `maintenance`)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from .context import AppContext


@contextmanager
def swarm_nodes(app: AppContext, env: str) -> Iterator[tuple[list, list, object]]:
    """(node connectors, their NodeProxy, the manager: whose lock guards them), the manager
    checked first; every connection closed after."""
    from ..services.swarm.swarm_deploy import SwarmJob
    from ..services.swarm.swarm_site import node_proxies

    resolved = app.env(env)
    job = SwarmJob(resolved, app.emit)
    try:
        site, _ = job.open()
        conns, proxies = node_proxies(site, resolved)
        yield conns, proxies, site.manager
    finally:
        job.close()
