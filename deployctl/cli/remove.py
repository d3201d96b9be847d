"""`deployctl remove --env ENV [--volumes] [--yes] [--dry-run]`."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import confirm_environment, finish, table
from .config import EnvOption
from .context import AppContext
from .deploy import DryRun


def remove(
    ctx: typer.Context,
    env: EnvOption = "local",
    volumes: Annotated[bool, typer.Option(
        "--volumes", help="Also delete the accessories' volumes: ALL THEIR DATA. Without it the data is kept.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for the environment's name (CI).")] = False,
    dry_run: DryRun = False,
) -> None:
    """Take the app's environment off its hosts: every release's containers, its proxy, networks, certificates and state.

    Under each host's deploy lock; other apps on the same hosts keep serving. Accessories'
    volumes (their data) only with --volumes. Run again, it removes what is left, or says
    there is nothing to remove."""
    from ..services.operate.remove import remove_environment

    app: AppContext = ctx.obj
    loaded = app.loaded
    environment = loaded.environment(env)
    where = (f"the Swarm of {environment.manager}" if environment.target == "swarm"
             else "this machine's engine" if environment.target == "local" else f"{len(environment.hosts) or 'its'} host(s)")
    if not dry_run:
        confirm_environment(env, f"This removes {loaded.config.app} {env} from {where}: every release, its proxy "
                                 f"and certificates, its history{', and the accessories DATA' if volumes else ''}.",
                            f"removing {env}", yes)
    results = remove_environment(app.env(env), app.emit, volumes=volumes, dry_run=dry_run)
    if app.mode == "json":
        finish(app, "remove", {"environment": env, "dry_run": dry_run, "volumes": volumes,
                               "hosts": [r.to_dict() | ({"steps": [s.to_dict() for s in r.steps]} if dry_run else {})
                                         for r in results]})
        return
    app.emit.close()
    if dry_run:
        import shlex

        print(f"remove {loaded.config.app} {env} (dry run: nothing is changed)")
        for result in results:
            print(f"{result.host}:" + ("  nothing to remove" if result.nothing else ""))
            for n, step in enumerate(result.steps, 1):
                print(f"  {n:2}. {step.step:<10} {step.detail}".rstrip())
                if step.argv:
                    print(f"      $ {shlex.join(step.argv)}")
        return
    rows = []
    for result in results:
        found = result.found
        counts = [f"{len(found.get(k, []))} {k}" for k in ("containers", "services", "secrets", "configs", "networks",
                                                          "volumes") if found.get(k)]
        state = "state dir" if found.get("state_dir") else ""
        what = ", ".join([*counts, *([state] if state else [])])
        rows.append([result.host, "nothing to remove" if result.nothing else f"removed: {what}"])
    table(app, f"Remove {loaded.config.app} {env}", ["host", "result"], rows)
