"""`deployctl remove`: taking an app's environment off its hosts, as data.

What an app leaves on a host is found by what deployctl puts there, never by name patterns
(another app's `shop-prod-...` must never match `shop`'s): every container and network of
an environment carries the labels io.deployctl.app and io.deployctl.env (plan/lifecycle/names.py),
so do the accessories' named volumes on a host (plan/data/accessories.volume_create), and
everything else (history, current, lock, env files and secrets, the proxy's nginx.conf,
TLS certificates and keys, the ACME account, accessories' files) lives under the state root
`<state_dir>/<app>/<env>/` (plan/lifecycle/names.StateLayout). Images are left: they may be shared,
and `docker image prune` is the engine's own tool for them.

Order on a host: the scheduler first (it starts job containers every minute), then every
other container (the proxy's anchor and nginx, every release's services, warm or kept,
migrations, accessories), then the networks (free once their containers are gone), the
volumes only with --volumes, and the state root last: it holds the deploy lock the removal
runs under, so a deploy started meanwhile waits for the end, and nothing is left behind
that a later deploy could take for a live release.

On a Swarm the same from the manager: services, then Docker secrets and configs and the
overlay networks (each freed once the services' tasks are gone), the volumes on every node
(only with --volumes; a Swarm volume carries no labels, so its name comes from deploy.toml's
accessories), each node's proxy directory (under the state root), the manager's state root
last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ..lifecycle import docker_commands as dc
from .jobs import SCHEDULER_ROLE
from ..lifecycle.names import LABEL_APP, LABEL_ENV, Names, StateLayout
from ..lifecycle.steps import PlannedStep

# Containers that start others: removed first, so no job container appears behind the listing.
STARTERS = (SCHEDULER_ROLE,)


def list_volumes(names: Names) -> list[str]:
    """The environment's labelled volumes on a host (its accessories' data)."""
    return ["docker", "volume", "ls", "--filter", f"label={LABEL_APP}={names.app}",
            "--filter", f"label={LABEL_ENV}={names.env}", "--format", "{{.Name}}"]


def list_all_volumes() -> list[str]:
    """Every volume on a Swarm node: its volumes carry no labels (plan/swarm/swarm_accessories.py)."""
    return ["docker", "volume", "ls", "--format", "{{.Name}}"]


def volume_remove(volumes: Sequence[str]) -> list[str]:
    return ["docker", "volume", "rm", *volumes]


def state_exists(layout: StateLayout) -> list[str]:
    return ["test", "-d", layout.root]


@dataclass(frozen=True)
class HostInventory:
    """What one host holds of the environment, as its listings said."""

    containers: tuple[tuple[str, str], ...] = ()  # (name, role)
    networks: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    state_root: str | None = None  # the state root, when it exists
    routes: tuple[str, ...] = ()  # its route files in the host's shared proxy (plan/edge/shared_proxy.py)
    shared_proxy: str | None = None  # that shared proxy's name, when it runs (reloaded without the routes)

    @property
    def empty(self) -> bool:
        return not (self.containers or self.networks or self.volumes or self.state_root or self.routes)

    def to_dict(self) -> dict:
        return {"containers": [n for n, _ in self.containers], "networks": list(self.networks),
                "volumes": list(self.volumes), "state_dir": self.state_root,
                **({"shared_proxy_routes": list(self.routes)} if self.routes else {})}


def parse_containers(text: str) -> tuple[tuple[str, str], ...]:
    """`docker_commands.list_containers`' lines (`name|role|release|state`) as (name, role)."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            out.append((parts[0], parts[1]))
    return tuple(sorted(out))


def parse_networks(text: str) -> tuple[str, ...]:
    """`docker_commands.release_networks`' lines (`name|release`): the app's network and
    every release's own one."""
    return tuple(sorted({line.split("|", 1)[0].strip() for line in text.splitlines() if line.strip()}))


def parse_names(text: str) -> tuple[str, ...]:
    return tuple(sorted({line.strip() for line in text.splitlines() if line.strip()}))


def host_steps(inventory: HostInventory) -> list[PlannedStep]:
    """The removal of what `inventory` lists, in order (see the module's docstring). Volumes
    are in the inventory only when --volumes asked for them."""
    steps: list[PlannedStep] = []
    if inventory.routes:
        # First: the shared proxy stops sending requests here before the app's proxy goes,
        # so they get its 404 instead of a refused connection.
        steps.append(PlannedStep("routes", "this app's routes out of the host's shared proxy",
                                 ("rm", "-f", *inventory.routes)))
        if inventory.shared_proxy:
            from ..edge.shared_proxy import reload

            steps.append(PlannedStep("routes", f"the shared proxy {inventory.shared_proxy} reloaded without them "
                                               "(the other apps' routes as they are)",
                                     tuple(reload(inventory.shared_proxy))))
    starters = [n for n, role in inventory.containers if role in STARTERS]
    others = [n for n, role in inventory.containers if role not in STARTERS]
    if starters:
        steps.append(PlannedStep("scheduler", "the scheduled jobs' scheduler first: it starts containers",
                                 tuple(dc.remove(starters))))
    if others:
        steps.append(PlannedStep("containers", f"{len(others)}: proxy, every release (live, warm, kept), "
                                               "migrations, accessories", tuple(dc.remove(others))))
    if inventory.networks:
        steps.append(PlannedStep("networks", "the app's network and each release's own",
                                 tuple(dc.network_remove(inventory.networks))))
    if inventory.volumes:
        steps.append(PlannedStep("volumes", "the accessories' data (--volumes)", tuple(volume_remove(inventory.volumes))))
    if inventory.state_root:
        steps.append(PlannedStep("state", "history, env files and secrets, proxy config, certificates and keys, "
                                          "the lock (last)", tuple(dc.remove_tree(inventory.state_root))))
    return steps


@dataclass(frozen=True)
class SwarmInventory:
    """What a Swarm holds of the environment: the manager's listings, and per node what its
    own engine and disk hold (volumes, the proxy directory under the state root)."""

    services: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    configs: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    state_root: str | None = None  # on the manager
    nodes: dict[str, HostInventory] = field(default_factory=dict)  # node address -> volumes, state root

    @property
    def empty(self) -> bool:
        return (not (self.services or self.secrets or self.configs or self.networks or self.state_root)
                and all(n.empty for n in self.nodes.values()))

    def to_dict(self) -> dict:
        return {"services": list(self.services), "secrets": list(self.secrets), "configs": list(self.configs),
                "networks": list(self.networks), "state_dir": self.state_root,
                "nodes": {a: {"volumes": list(n.volumes), "state_dir": n.state_root} for a, n in self.nodes.items()}}


def swarm_manager_steps(inventory: SwarmInventory) -> list[PlannedStep]:
    """The manager's part before the nodes': services, then what they held."""
    from ..swarm import services as sw

    steps = []
    if inventory.services:
        steps.append(PlannedStep("services", "every release's services, the proxy, accessories",
                                 tuple(sw.remove_services(list(inventory.services)))))
    if inventory.secrets:
        steps.append(PlannedStep("secrets", "Docker secrets (once their tasks are gone)",
                                 tuple(sw.remove_secrets(list(inventory.secrets)))))
    if inventory.configs:
        steps.append(PlannedStep("configs", "Docker configs (accessories' files)",
                                 tuple(sw.remove_configs(list(inventory.configs)))))
    if inventory.networks:
        steps.append(PlannedStep("networks", "the app's overlay network and each release's own",
                                 tuple(dc.network_remove(inventory.networks))))
    return steps


def swarm_volumes(configured: Sequence[str], present: Sequence[str]) -> tuple[str, ...]:
    """The accessories' volumes a node holds: deploy.toml's names that are there."""
    return tuple(sorted(set(configured) & set(present)))
