"""One environment of deploy.toml, resolved once per command (issue 22 item 4).

What a deploy, a rollback or a dry run needs of an environment beside its settings (the
names of its containers and networks, where its state lives on a host, the ports its proxy
publishes, its target, the connectors to its hosts) used to be worked out again from
`(loaded, env_name)` in every function that needed one of them. `Env` holds them, built
once at the top of a verb (cli/context.AppContext.env) and handed down: the lifecycle's
jobs, the public deploy() and rollback(), the dry runs, accessories, the deploy's inputs,
infra and the verbs beside them take it (docs/transaction.md says which still do not).

What a deploy learns only at run time and lays over deploy.toml (the RDS endpoint's
variables over the environment's env, a built accessory's image, a drill's failing
service) gives a new Env (`with_env_values`, `with_accessory_images`, `with_config`), not a
changed LoadedConfig handed back with the name: the caller passes the new Env on as it is,
so nothing below works the names, layout and ports out again from a config, and the Env it
was made from (the one the CLI keeps for the command) stays as deploy.toml says. No overlay
changes what was resolved (names, layout, ports, target), so those are kept, not resolved
again (tests/unit/test_env_overlays.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from ..config import LoadedConfig
from ..config.models import Config, Environment
from ..plan.lifecycle.names import Names, StateLayout
from .hosts import connectors_for, known_hosts_path, layout_for, names_for, proxy_port, tls_port


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

    @property
    def shared(self) -> bool:
        """Behind a host's shared proxy (docs/proxy.md, "Several apps on one host")."""
        return self.settings.shared_proxy is not None

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

    @property
    def known_hosts(self) -> str:
        """The one known_hosts file its hosts are verified against (services/hosts.known_hosts_path)."""
        return known_hosts_path(self.loaded, self.name)

    def connectors(self) -> list:  # list[Connector]
        """A new connector per host (not connected): SSH hosts, the local engine, a Swarm's manager."""
        return connectors_for(self.loaded, self.name)

    def with_config(self, config: Config) -> "Env":
        """This Env over `config`: a copy of its own config with values laid over it that
        leave the app, the proxy and this environment's names, state dir and ports as they
        are (the env values and accessory images below, a drill's services:
        services/judging/drill.py), so what was resolved from them is kept. Pydantic's
        model_copy skips validation: the overlays keep the keys deploy.toml validated."""
        return replace(self, loaded=LoadedConfig(self.loaded.path, config), settings=config.environments[self.name])

    def with_env_values(self, values: Mapping[str, str]) -> "Env":
        """The environment's `env` with `values` laid over it (services/data/database_endpoint.py:
        the RDS endpoint looked up at deploy time; models.py checked the keys do not clash).
        Unchanged (the same object) without any."""
        if not values:
            return self
        environment = self.settings.model_copy(update={"env": {**self.settings.env, **values}})
        return self.with_config(self.config.model_copy(
            update={"environments": {**self.config.environments, self.name: environment}}))

    def with_accessory_images(self, images: Mapping[str, str]) -> "Env":
        """Each built accessory's `image` set to its built one (services/lifecycle/release_images.py:
        accessory_images), so everything that boots or shows an accessory (plan/data/accessories.py:
        image_for) runs that image. Unchanged (the same object) without any."""
        config = self.config
        found = {n: ref for n, ref in images.items() if n in config.accessories and config.accessories[n].build}
        if not found:
            return self
        # `build` stays set, so the spec still knows the image was built (its messages say
        # "rebuilt", not "deploy.toml asks for").
        accessories = {**config.accessories,
                       **{n: config.accessories[n].model_copy(update={"image": ref}) for n, ref in found.items()}}
        return self.with_config(config.model_copy(update={"accessories": accessories}))
