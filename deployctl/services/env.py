"""One environment of deploy.toml, resolved once per command (issue 22 item 4).

What a deploy, a rollback or a dry run needs of an environment beside its settings (the
names of its containers and networks, where its state lives on a host, the ports its proxy
publishes, its target, the connectors to its hosts) used to be worked out again from
`(loaded, env_name)` in every function that needed one of them. `Env` holds them, built
once at the top of a verb and handed down; the lifecycle's host jobs (HostDeploy,
HostRollback) and the dry runs take it. Modules outside the lifecycle still take
`(loaded, env_name)` and are moved over as they are touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import LoadedConfig
from ..config.models import Config, Environment
from ..plan.lifecycle.names import Names, StateLayout
from .hosts import connectors_for, layout_for, names_for, proxy_port, tls_port


@dataclass(frozen=True)
class Env:
    loaded: LoadedConfig
    name: str
    settings: Environment  # [environments.<name>]
    names: Names
    layout: StateLayout
    proxy_port: int  # the host port the proxy publishes HTTP on
    tls_port: int | None  # and HTTPS (None: [proxy] tls is off here)

    @property
    def tls_loopback(self) -> bool:
        """HTTPS published on the host's loopback only: behind a shared proxy, whose PROXY
        protocol it takes (docs/proxy.md)."""
        return self.tls_port is not None and self.settings.shared_proxy is not None

    @classmethod
    def resolve(cls, loaded: LoadedConfig, name: str) -> "Env":
        """An unknown name is the config's error (exit 3), raised here, before anything runs."""
        return cls(loaded, name, loaded.environment(name), names_for(loaded, name), layout_for(loaded, name),
                   proxy_port(loaded, name), tls_port(loaded, name))

    @property
    def config(self) -> Config:
        return self.loaded.config

    @property
    def target(self) -> str:
        return self.settings.target

    def connectors(self) -> list:  # list[Connector]
        """A new connector per host (not connected): SSH hosts, the local engine, a Swarm's manager."""
        return connectors_for(self.loaded, self.name)
