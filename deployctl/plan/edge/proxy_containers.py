"""What one `docker ps` says of a host's proxy: the anchor (its state, its role, the port it
publishes) and the nginx containers in its namespace.

The switch used to ask three times (an inspect of the anchor, a ps of the nginx containers,
a `docker port` after the reload): each a round trip to the engine, on SSH a round trip to
the host too, all of them on the critical path of a warm rollback, whose target is traffic on
the previous release within 0.3 s (issue 15). One listing answers all three.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..lifecycle.switch_plan import ANCHOR_ROLE, NGINX_ROLE


@dataclass(frozen=True)
class Anchor:
    state: str  # running | exited | created | ...
    role: str  # ANCHOR_ROLE, or another role for a proxy of the earlier layout
    ports: str  # docker's "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"

    @property
    def is_anchor(self) -> bool:
        return self.role == ANCHOR_ROLE

    def addresses(self, listen_port: int) -> set[str]:
        """The host addresses the container's `listen_port` is published on ("0.0.0.0",
        "[::]", "127.0.0.1"), when it runs."""
        if self.state != "running":
            return set()
        found = set()
        for mapping in self.ports.split(","):
            host, arrow, container = mapping.strip().partition("->")
            if arrow and container == f"{listen_port}/tcp":
                found.add(host.rsplit(":", 1)[0])
        return found

    def published(self, listen_port: int) -> int | None:
        """The host port mapped to the container's `listen_port`, when it runs."""
        if self.state != "running":
            return None
        for mapping in self.ports.split(","):
            host, arrow, container = mapping.strip().partition("->")
            if arrow and container == f"{listen_port}/tcp":
                port = host.rsplit(":", 1)[-1]
                if port.isdigit():
                    return int(port)
        return None


@dataclass(frozen=True)
class ProxyContainers:
    anchor: Anchor | None
    nginx: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (state, image)

    def nginx_state(self, name: str) -> str:
        return self.nginx.get(name, ("", ""))[0]


def parse_proxy_listing(text: str, anchor_name: str) -> ProxyContainers:
    """The app's containers as `docker_commands.list_proxy` lists them (services' lines are
    skipped, and so is a proxy set aside by a move to the shared proxy: plan/edge/shared_move.py)."""
    from .shared_move import is_set_aside

    anchor, nginx = None, {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) != 5:
            continue
        name, state, role, image, ports = parts
        if is_set_aside(anchor_name, name):
            continue
        if name == anchor_name:
            anchor = Anchor(state, role, ports)
        elif role == NGINX_ROLE:
            nginx[name] = (state, image)
    return ProxyContainers(anchor, nginx)
