"""`deployctl accessory boot NAME|all`: the selected accessories started (created when
absent) on every host of the environment, or as Swarm services, each waited for until
healthy. Everything that can fail without a host (an unknown accessory, a missing `files`
entry or secret, a built one without an image) fails first (exit 3); then every host is
connected before the first is acted on, so an unreachable one is named before any
accessory changes (exit 4). The CLI renders what comes back (cli/accessory.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...events import Emit
from ..env import Env
from . import accessories


@dataclass(frozen=True)
class Booted:
    host: str  # a Swarm: its manager
    accessory: str
    container: str  # a Swarm: its service
    did: str  # created | started | running


def boot_accessories(env: Env, name: str, artifacts_path: Path, emit: Emit) -> list[Booted]:
    from ..hosts import connected
    from ..lifecycle import preflight
    from ..lifecycle.deploy_inputs import optional_hosts_login
    from ..secret_sources import environment_source, fetch_secrets

    selected = accessories.select(env, name)
    # An accessory built from the project (build = "...") runs its image from the artifacts
    # file: a new Env with it laid over (services/env.py).
    env = accessories.with_built_images(env, artifacts_path, selected)
    specs = accessories.specs_for(env, selected)
    accessories.read_files(env.loaded, specs)
    wanted = [s for spec in specs for s in spec.secret_names()]
    secrets = fetch_secrets(environment_source(env.config, env.settings), wanted, context=f"environment {env.name!r}")
    if env.target == "swarm":
        from ..swarm import swarm_accessories
        from ..swarm.swarm_deploy import SwarmJob

        job = SwarmJob(env, emit)
        try:
            site, _ = job.open()
            return [Booted(site.manager.host, spec.name, spec.container,
                           swarm_accessories.boot(env, site, spec, secrets, emit)) for spec in specs]
        finally:
            job.close()
    # A built accessory's image may need the registry login to be pulled; it lives on each
    # host for this command only (services/lifecycle/preflight.py).
    login = optional_hosts_login(env)
    booted = []
    with connected(env.connectors()) as conns:
        for conn in conns:
            try:
                if login is not None:
                    preflight.registry_login(conn, emit, login.server, login.username, login.password)
                booted += [Booted(conn.host, spec.name, spec.container,
                                  accessories.boot(env, conn, spec, secrets, emit)) for spec in specs]
            finally:
                preflight.registry_logout(conn)
    return booted
