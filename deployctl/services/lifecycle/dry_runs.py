"""What `deploy --dry-run` and `rollback --dry-run` print: per host (or the Swarm manager),
the steps of the same objects a real run would run, built the same way, with no change made.

The CLI only renders these (cli/deploy.py); which target an environment has is decided
here once per verb, as the real deploy and rollback decide it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Sequence

from ...config import LoadedConfig
from ...plan.lifecycle.steps import PlannedStep
from ..env import Env
from .release_images import ReleaseImages

if TYPE_CHECKING:
    from .deploy import DeployOptions

Plans = dict[str, list[PlannedStep]]  # host (or "swarm manager H", "hooks ...") -> its steps

DEPLOY_HOOKS = ("pre_deploy", "pre_migrate", "on_revert", "post_deploy")
ROLLBACK_HOOKS = ("pre_deploy", "on_revert", "post_rollback")


def deploy_plan(env: Env, images: ReleaseImages, login: tuple[str, str] | None,
                options: DeployOptions, hooks: bool = True) -> tuple[str, Plans]:
    """(the release id a deploy now would get, its plan). `env` as the real deploy gets it
    (with the deploy's inputs laid over it: deploy_inputs.env_to_deploy)."""
    from ...plan.lifecycle.releases import new_release_id

    release = new_release_id(time.time(), images.revision)
    if env.target == "swarm":
        return release, _swarm_deploy(env, release, images, options, hooks)
    return release, _host_deploy(env, release, images, login, options, hooks)


def rollback_plan(env: Env, to: str | None, hooks: bool = True) -> tuple[str, Plans]:
    """(the release a rollback now would go back to, its plan), after the same read-only
    checks and the same choice of target as the real rollback (hosts are connected to)."""
    if env.target == "swarm":
        return _swarm_rollback(env, to, hooks)
    return _host_rollback(env, to, hooks)


def _hook_plan(loaded: LoadedConfig, names: Sequence[str], hooks: bool) -> Plans:
    """The hooks a command would run, as one more entry of the printed plan (never run here)."""
    from ...plan.operate.hooks import hook_rows

    rows = hook_rows(loaded.config.hooks, names, enabled=hooks)
    return {"hooks (on this machine)": rows} if rows else {}


def _host_deploy(resolved: Env, release: str, images: ReleaseImages,
                 login: tuple[str, str] | None, options: DeployOptions, hooks: bool) -> Plans:
    """The plan of each host's HostDeploy, the object a real deploy runs (no connection)."""
    from ...plan.data.accessories import planned_steps
    from ...plan.lifecycle.dry_run import REGISTRY_CONFIG
    from .deploy import HostDeploy

    loaded, env = resolved.loaded, resolved.name
    config, environment = resolved.config, resolved.settings
    plans: Plans = {}
    for index, conn in enumerate(resolved.connectors()):
        if login:  # as the preflight's login leaves it on the connector (services/lifecycle/preflight.py)
            conn.registry_config = REGISTRY_CONFIG
        job = HostDeploy(resolved, conn, lambda e: None, release, images, {}, options, first=index == 0)
        steps = host_deploy_steps(job, login=login, migrations=index == 0)
        # Accessories come up after the preflight, before the lock (services/lifecycle/deploy.py).
        at = next((i for i, s in enumerate(steps) if s.step != "preflight"), len(steps))
        plans[conn.host] = (steps[:at] + planned_steps(config, env, job.layout) + steps[at:] + _tls_rows(config, env)
                            + _shared_proxy_rows(resolved))
        if environment.shared_proxy is not None:
            plans[conn.host] = _with_move(plans[conn.host], _move_rows(resolved, job.spec.proxy.image))
    migrates = any(s.migrate for s in config.services.values())
    names = [n for n in DEPLOY_HOOKS if n != "pre_migrate" or migrates]
    return plans | _hook_plan(loaded, names, hooks)


def host_deploy_steps(job, *, login: tuple[str, str] | None = None,  # type: ignore[no-untyped-def]
                      migrations: bool = True) -> list[PlannedStep]:
    """One host's deploy as it runs (services/lifecycle/deploy.HostDeploy): the preflight, the
    pulls before the lock (`fetching`), the lock, then the rows of the very Steps the job
    walks under it (its preparation, its migrations on the rollout's first host:
    `migrations`, its switch steps), and the unlock."""
    from ...plan.lifecycle.dry_run import lock_row, preflight_rows, unlock_row

    local = job.environment.target == "local"
    return [*preflight_rows(local=local, images=[*job.images.images.values(), job.spec.proxy.image],
                            registry_login=login),
            *(row for step in job.fetching() for row in step.rows),
            lock_row(job.layout),
            *(row for step in job.preparation() for row in step.rows),
            *(job.migration_rows() if migrations else []),
            *(row for step in job.switch_steps() for row in step.rows),
            unlock_row(job.layout)]


def host_rollback_steps(job) -> list[PlannedStep]:  # type: ignore[no-untyped-def]
    """One host's rollback as it runs (services/lifecycle/rollback.HostRollback, after its
    check): the lock, the rows of the Steps it walks under it (its preparation, its switch),
    the unlock."""
    from ...plan.lifecycle.dry_run import lock_row, unlock_row

    return [lock_row(job.layout), *(row for step in [*job.preparation(), *job.switch_steps()] for row in step.rows),
            unlock_row(job.layout)]


def _tls_rows(config, env: str, host: str = "host", lock: str = "every host's lock",  # type: ignore[no-untyped-def]
              first: str = "") -> list[PlannedStep]:
    """What a deploy does for HTTPS after its rollout (services/lifecycle/deploy._certificate;
    on a Swarm, services/swarm/swarm_tls.certificate: `host` "node")."""
    mode = config.tls_for(env)
    if mode == "off":
        return []
    source = (f"an ACME order: the HTTP-01 answers on every {host} before the CA validates"
              if mode == "acme" else f"the pair from the secret source (checked before any {host} changes)")
    return [PlannedStep("certificate", f"under {lock} again: {first}a certificate for "
                                       f"{', '.join(config.proxy.hosts)} where a {host} has none, or one within 30 "
                                       f"days of expiry: {source}; installed staged (tls/live link, nginx -t, "
                                       f"reload) on every {host} (docs/tls.md)")]


def _shared_proxy_rows(resolved: Env) -> list[PlannedStep]:
    """What a deploy does for the host's shared proxy after its rollout (services/edge/shared_proxy.py)."""
    environment = resolved.settings
    if environment.shared_proxy is None:
        return []
    proxy = resolved.config.proxy
    https = (f" (HTTPS by name on port {environment.shared_proxy_tls_port} -> its HTTPS port on 127.0.0.1, with the "
             "PROXY protocol once its listener takes it)" if resolved.tls_port is not None else "")
    return [PlannedStep("shared proxy", f"under its lock: the route {', '.join(proxy.hosts)}{proxy.path_prefix or ''} "
                                        f"-> this app's proxy port{https}, in the shared proxy {environment.shared_proxy} "
                                        f"(port {environment.shared_proxy_port}; started if absent); unchanged: "
                                        "nothing done, changed: staged, nginx -t with every route, renamed, reloaded "
                                        "(docs/proxy.md)")]


def _with_move(steps: list[PlannedStep], move: list[PlannedStep]) -> list[PlannedStep]:
    """The move's rows where the switch takes them: the old proxy set aside before the route
    (which then starts the app's own proxy on its new port), the rest after its verify."""
    route = next(i for i, s in enumerate(steps) if s.step == "route")
    verify = max(i for i, s in enumerate(steps) if s.step == "verify") + 1
    return steps[:route] + move[:4] + steps[route:verify] + move[4:] + steps[verify:]


def _move_rows(resolved: Env, image: str) -> list[PlannedStep]:
    """The move a host whose app's own proxy still publishes the shared port takes at the
    switch (services/edge/shared_move.py): the preflight finds out which hosts, so the rows
    say where they apply."""
    from ...plan.edge import shared_move as move
    from ...plan.edge import shared_proxy as sp
    from ...plan.lifecycle import docker_commands as dc

    environment, names = resolved.settings, resolved.names
    anchor, nginx = names.proxy, names.proxy_nginx("<tag>")
    aside, nginx_aside = move.premove_name(anchor, anchor), move.premove_name(anchor, nginx)
    shared, port = environment.shared_proxy or "", environment.shared_proxy_port
    host_dir = sp.shared_dir(resolved.layout.state_dir, shared)
    tls = environment.shared_proxy_tls_port if resolved.config.tls_for(resolved.name) != "off" else None
    # An HTTPS app: its certificate follows (services/edge/shared_move.py), and HTTPS is verified too.
    certificate = [PlannedStep("move", "the live certificate installed again (no CA order) as the version whose "
                                       "listener takes the shared proxy's PROXY protocol, into the new own proxy only; "
                                       "a failure makes the plain version live again for the old proxy")] if tls else []
    https = f" and HTTPS by SNI on port {tls}" if tls else ""
    stamps = "the new release's stamp (and the certificate's)" if tls else "the new release's stamp"
    return [
        PlannedStep("move", f"only on a host where {anchor} publishes port {port}{f' or {tls}' if tls else ''} (the "
                            "app ran with its own proxy "
                            "there), at the switch; a fleet moves one host at a time (the port closes for about a "
                            "second on each: a load balancer that retries refused connections on another host loses "
                            "nothing; a single host refuses requests meanwhile)"),
        PlannedStep("move", "the old proxy out of its restart policy", tuple(move.restart_policy([anchor, nginx], "no"))),
        PlannedStep("move", "renamed aside (it keeps serving the port)", tuple(move.rename(anchor, aside))),
        PlannedStep("move", "", tuple(move.rename(nginx, nginx_aside))),
        *certificate,
        PlannedStep("move", "under the shared proxy's lock: its nginx.conf and this app's route written, tested",
                    tuple(move.test_shared_config(image, host_dir))),
        PlannedStep("move", "its container created (binds nothing)", tuple(move.create_shared_proxy(shared, image,
                                                                                                   host_dir))),
        PlannedStep("move", "the cut, one command (the gap is measured)",
                    tuple(move.cut([nginx_aside], aside, sp.container_name(shared)))),
        PlannedStep("move", f"verify through the shared proxy on port {port} (Host {resolved.config.proxy.hosts[0]})"
                            f"{https}: {stamps}. A failure before the cut leaves the old proxy serving; after it the "
                            "old proxy is started again (exit 6; 7 when it does not answer)"),
        PlannedStep("move", "moved: the old proxy's containers go", tuple(dc.remove([aside, nginx_aside]))),
    ]


def _swarm_deploy(resolved: Env, release: str, images: ReleaseImages,
                  options: DeployOptions, hooks: bool) -> Plans:
    """The steps of the SwarmDeploy a swarm deploy runs (services/swarm/swarm_deploy.py), built
    the same way, over the manager's connector unconnected: no connection."""
    from ...plan.lifecycle.dry_run import unlock_row
    from ..swarm.swarm_deploy import SwarmDeploy, SwarmJob, swarm_deploy_plan

    site, state = SwarmJob(resolved, lambda event: None).unconnected()
    plan = swarm_deploy_plan(resolved, release, images, options=options)
    job = SwarmDeploy(site, state, plan, resolved, {}, options, lambda event: None, registry_auth=False, scaled={})
    names = [n for n in DEPLOY_HOOKS if n != "pre_migrate" or plan.migrations]
    https = _tls_rows(resolved.config, resolved.name, "node", "the manager's lock")
    return ({f"swarm manager {resolved.settings.manager}": _swarm_preflight(resolved.settings.manager)
             + [row for step in job.steps() for row in step.rows] + [unlock_row(resolved.layout)] + https}
            | _hook_plan(resolved.loaded, names, hooks))


def _swarm_preflight(manager: str | None) -> list[PlannedStep]:
    """Before the steps of a Swarm's job: the manager reached, its lock taken (services/lifecycle/rollout.py)."""
    return [PlannedStep("preflight", f"connect to the manager {manager} (host key pinned); it must be an active "
                                     "Swarm manager"),
            PlannedStep("lock", "on the manager: mkdir of the lock directory in its state dir")]


def _host_rollback(resolved: Env, to: str | None, hooks: bool) -> tuple[str, Plans]:
    """The plan of each host's HostRollback."""
    from ...plan.lifecycle.rollout import HostReleases, rollback_target
    from .host_state import HostState
    from ..hosts import connected
    from .rollback import HostRollback

    layout = resolved.layout
    with connected(resolved.connectors()) as conns:
        views = []
        for conn in conns:
            state = HostState(conn, layout)
            current = state.current()
            views.append(HostReleases(conn.host, current, state.history().previous_good(current)))
        target = rollback_target(views, to)  # one release everywhere, or a refusal
        plans: Plans = {}
        for conn in conns:
            job = HostRollback(resolved, conn, lambda e: None, target)
            job.check()
            plans[conn.host] = ([PlannedStep("nothing", f"{target} is already live")] if job.plan is None
                               else host_rollback_steps(job))
    return target, plans | _hook_plan(resolved.loaded, ROLLBACK_HOOKS, hooks)


def _swarm_rollback(resolved: Env, to: str | None, hooks: bool) -> tuple[str, Plans]:
    """After the same read of the manager's history and services and the same choice of
    target, the steps of the SwarmRollbackJob a rollback runs."""
    from ...plan.lifecycle.dry_run import unlock_row
    from ..swarm.swarm_deploy import SwarmJob, rollback_job

    job = SwarmJob(resolved, lambda event: None)
    try:
        site, state = job.open()
        _, target, _, work = rollback_job(resolved, site, state, to, lambda event: None)
    finally:
        job.close()
    rows = ([PlannedStep("nothing", f"{target} is already live")] if work is None
            else _swarm_preflight(resolved.settings.manager) + [row for step in work.steps() for row in step.rows]
            + [unlock_row(resolved.layout)])
    return target, {f"swarm manager {resolved.settings.manager}": rows} | _hook_plan(resolved.loaded, ROLLBACK_HOOKS, hooks)
