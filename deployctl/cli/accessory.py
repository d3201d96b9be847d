"""`deployctl accessory boot|stop|status|logs|exec|remove NAME`: the long-lived containers
beside the app (a database, a cache) that deploy.toml declares under [accessories]."""

from __future__ import annotations

import json
from typing import Annotated, Iterator, Optional

import typer

from .accessory_backup import backup_app
from .common import ArtifactsOption, artifacts_path, finish, table
from .config import EnvOption
from .context import AppContext

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="An accessory from deploy.toml, or 'all' (the environment's).")]

accessory_app = typer.Typer(
    help="Long-lived containers beside the app, such as its database: boot, stop, status, logs, exec, remove, backup.",
    no_args_is_help=True, add_completion=False, rich_markup_mode=None,
)
accessory_app.add_typer(backup_app, name="backup")


def _is_swarm(app: AppContext, env: str) -> bool:
    return app.env(env).target == "swarm"


def _swarm(app: AppContext, env: str) -> Iterator:  # type: ignore[type-arg]
    """A swarm environment's site (the manager, and the nodes as needed), or None for the
    other targets: an accessory is then a Swarm service (services/swarm/swarm_accessories.py)."""
    if not _is_swarm(app, env):
        yield None
        return
    from ..services.swarm.swarm_deploy import SwarmJob

    job = SwarmJob(app.env(env), app.emit)
    try:
        site, _ = job.open()
        yield site
    finally:
        job.close()


def _hosts(app: AppContext, env: str) -> Iterator:  # type: ignore[type-arg]
    """Each host's connector, all connected before the first is acted on (an unreachable
    host is named before any accessory changes), closed afterwards."""
    from ..services.hosts import connected

    with connected(app.env(env).connectors()) as conns:
        yield from conns


@accessory_app.command("boot")
def boot(ctx: typer.Context, name: NameArg, env: EnvOption = "local", artifacts: ArtifactsOption = None) -> None:
    """Start NAME if it is not running (create it, with its volumes, if absent) and wait until healthy."""
    from ..services.data.accessory_boot import boot_accessories

    app: AppContext = ctx.obj
    rows = [vars(booted) for booted in boot_accessories(app.env(env), name, artifacts_path(app, artifacts), app.emit)]
    if app.mode == "json":
        finish(app, "accessory boot", {"environment": env, "accessories": rows})
        return
    app.emit.close()
    table(app, f"Accessories of {env}", ["host", "accessory", "container", "outcome"],
          [[r["host"], r["accessory"], r["container"], r["did"]] for r in rows])


@accessory_app.command("stop")
def stop(ctx: typer.Context, name: NameArg, env: EnvOption = "local") -> None:
    """Stop NAME; its container and data are kept (`boot` starts it again)."""
    from ..services.data import accessories

    app: AppContext = ctx.obj
    specs = accessories.specs_for(app.env(env), accessories.select(app.env(env), name))
    rows = []
    for site in _swarm(app, env):
        if site is not None:
            from ..services.swarm import swarm_accessories

            rows = [{"host": site.manager.host, "accessory": spec.name,
                     "stopped": swarm_accessories.stop(site, spec, app.emit)} for spec in specs]
    for conn in ([] if _is_swarm(app, env) else _hosts(app, env)):
        for spec in specs:
            stopped = accessories.stop(conn, spec, app.emit)
            rows.append({"host": conn.host, "accessory": spec.name, "stopped": stopped})
    if app.mode == "json":
        finish(app, "accessory stop", {"environment": env, "accessories": rows})
        return
    app.emit.close()
    for r in rows:
        app.out(f"{r['host']}: {r['accessory']} {'stopped' if r['stopped'] else 'was not running'}")


@accessory_app.command("status")
def status(ctx: typer.Context, name: Annotated[str, typer.Argument(
        metavar="[NAME]", help="An accessory, or 'all' (the default: the environment's).")] = "all",
        env: EnvOption = "local", artifacts: ArtifactsOption = None) -> None:
    """State, health, image and volumes of NAME (or of all the environment's accessories)."""
    from ..services.data import accessories

    app: AppContext = ctx.obj
    selected = accessories.select(app.env(env), name)
    resolved = accessories.with_built_images(app.env(env), artifacts_path(app, artifacts), selected)
    specs = accessories.specs_for(resolved, selected)
    for site in _swarm(app, env):
        if site is not None:
            _swarm_status(app, env, site, resolved, specs)
            return
    found = [state for conn in _hosts(app, env) for state in accessories.status(conn, specs)]
    if app.mode == "json":
        finish(app, "accessory status", {"environment": env, "accessories": [
            {**vars(s), "drift": s.drift} for s in found]})
        return
    table(app, f"Accessories of {env}", ["host", "accessory", "container", "state", "health", "image", "volumes"],
          [[s.host, s.accessory, s.container, s.status, s.health, _image_cell(s), ", ".join(s.volumes) or "-"]
           for s in found])


def _swarm_status(app: AppContext, env: str, site, resolved, specs) -> None:  # type: ignore[no-untyped-def]
    from ..services.swarm import swarm_accessories

    found = swarm_accessories.statuses(site, resolved, specs)
    if app.mode == "json":
        finish(app, "accessory status", {"environment": env, "accessories": [
            {"accessory": s.accessory, "service": s.service, "status": s.status, "wanted": s.wanted,
             "nodes": s.nodes, "placement": list(s.placement), "image": s.image} for s in found]})
        return
    table(app, f"Accessories of {env} (Swarm services)", ["accessory", "service", "state", "nodes", "placement", "image"],
          [[s.accessory, s.service, s.status, ", ".join(s.nodes) or "-", ", ".join(s.placement) or "-",
            s.image or "-"] for s in found])


def _image_cell(s) -> str:  # type: ignore[no-untyped-def]
    shown = s.image or s.configured_image or "(built: no image yet; run `deployctl build`)"
    if s.drift:
        shown += f" (configured now: {s.configured_image})"
    if s.aliases is not None and s.accessory not in s.aliases:
        shown += f" (no alias {s.accessory!r} yet: it arrives when booted anew)"
    return shown


@accessory_app.command("logs")
def logs(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME", help="An accessory from deploy.toml.")],
         env: EnvOption = "local",
         follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
         lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Lines from the end.")] = 100) -> None:
    """The accessory's container log (secret values masked)."""
    from ..services.data import accessories

    app: AppContext = ctx.obj
    [spec] = accessories.specs_for(app.env(env), accessories.select(app.env(env), name))
    for site in _swarm(app, env):
        if site is not None:
            from ..services.swarm import swarm_accessories

            swarm_accessories.logs(site, spec, lines=lines, follow=follow, on_line=lambda line: print(
                json.dumps({"accessory": spec.name, "line": line}) if app.mode == "json" else line, flush=True))
            return
    for conn in _hosts(app, env):
        if app.mode == "json":
            accessories.logs(conn, spec, lines=lines, follow=follow, on_line=lambda line, h=conn.host: print(
                json.dumps({"host": h, "accessory": spec.name, "line": line}), flush=True))
        else:
            accessories.logs(conn, spec, lines=lines, follow=follow,
                             on_line=lambda line, h=conn.host: print(f"[{h}] {line}", flush=True))


@accessory_app.command("exec")
def exec_in(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME", help="An accessory from deploy.toml.")],
            command: Annotated[Optional[list[str]], typer.Argument(metavar="-- CMD...",
                                                                   help="The command and its arguments.")] = None,
            env: EnvOption = "local",
            host: Annotated[Optional[str], typer.Option("--host", help="The host to run on (default: the first; "
                                                        "on a Swarm: the node of its task).")] = None,
            interactive: Annotated[bool, typer.Option("--interactive", "-i", help="On a terminal (docker -it): "
                                                      "for clients such as `mariadb` or `psql`.")] = False) -> int:
    """Run a command in NAME's running container (as `deployctl exec` does in the release's); exits with its code."""
    from ..services.operate.accessory_exec import AccessoryExecRequest, run_accessory_exec
    from .exec import write

    app: AppContext = ctx.obj
    request = AccessoryExecRequest(env=env, accessory=name, command=tuple(command or ()), interactive=interactive,
                                   host=host)
    return run_accessory_exec(app.loaded, request, lambda host, stream, data: write(stream, data))


@accessory_app.command("remove")
def remove(ctx: typer.Context, name: NameArg, env: EnvOption = "local",
           volumes: Annotated[bool, typer.Option(
               "--volumes", help="Also delete its volumes: ALL ITS DATA. Without it the data is kept.")] = False) -> None:
    """Remove NAME's container (to change its image or env); its data is kept unless --volumes."""
    from ..services.data import accessories

    app: AppContext = ctx.obj
    specs = accessories.specs_for(app.env(env), accessories.select(app.env(env), name))
    removed = []
    for site in _swarm(app, env):
        if site is not None:
            from ..services.swarm import swarm_accessories

            for spec in specs:
                swarm_accessories.remove(site, spec, app.emit, volumes=volumes)
                removed.append({"host": site.manager.host, "accessory": spec.name, "volumes_removed": volumes})
    for conn in ([] if _is_swarm(app, env) else _hosts(app, env)):
        for spec in specs:
            accessories.remove(conn, spec, app.emit, volumes=volumes)
            removed.append({"host": conn.host, "accessory": spec.name, "volumes_removed": volumes})
    if app.mode == "json":
        finish(app, "accessory remove", {"environment": env, "accessories": removed})
        return
    app.emit.close()

