"""`deployctl scale` (swarm environments), and how `status` shows a Swarm: tasks per node."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import UsageError
from .common import finish, table
from .config import EnvOption
from .context import AppContext


def parse_counts(pairs: list[str]) -> dict[str, int]:
    counts = {}
    for pair in pairs:
        name, sep, count = pair.partition("=")
        if not sep or not name or not count.isdigit():
            raise UsageError(f"{pair!r} is not SERVICE=N (e.g. frontend=4)")
        counts[name] = int(count)
    return counts


def scale(
    ctx: typer.Context,
    counts: Annotated[list[str], typer.Argument(metavar="SERVICE=N...", help="Tasks per service, e.g. frontend=4.")],
    env: EnvOption = "local",
) -> None:
    """Change the live release's task count on a Swarm (no new release), waiting until every task is healthy."""
    from ..services.swarm.swarm_deploy import scale as run_scale

    app: AppContext = ctx.obj
    environment = app.loaded.environment(env)
    if environment.target != "swarm":
        raise UsageError(f"scale works on swarm environments; {env!r} has target = {environment.target!r}")
    wanted = run_scale(app.env(env), app.emit, parse_counts(counts))
    if app.mode == "json":
        finish(app, "scale", {"environment": env, "services": wanted})
        return
    app.emit.close()
    table(app, f"Scaled {env}", ["service", "tasks"], [[n, str(c)] for n, c in sorted(wanted.items())])


def show_status(app: AppContext, env: str) -> None:
    from ..services.swarm.swarm_status import status as get_status

    st = get_status(app.env(env))
    if app.mode == "json":
        finish(app, "status", {"environment": env, "swarm": vars(st)})
        return
    app.out(f"swarm manager {st.manager}: live {st.live or 'nothing deployed'}  lock {st.lock or 'free'}")
    if st.maintenance:
        app.out(f"MAINTENANCE {st.maintenance}: every request gets 503 (`deployctl maintenance off`)")
    if st.canary:
        app.out(st.canary)
    if st.proxy_routes != st.live:
        app.out(f"WARNING: the proxies route to {st.proxy_routes or 'nothing'}, not to {st.live or 'nothing'}")
    table(app, "nodes", ["node", "address", "state", "availability"],
          [[n["hostname"], n["address"], n["state"], n["availability"]] for n in st.nodes])
    rows = []
    for s in st.services:
        tasks = s["tasks"] or [{"node": "-", "state": "no task", "error": ""}]
        for t in tasks:
            rows.append([s["name"], s["release"] + (" (live)" if s["release"] == st.live else ""), str(s["wanted"]),
                         t["node"], t["state"] + (f" ({t['error']})" if t["error"] else "")])
    table(app, "services", ["service", "release", "wanted", "node", "task"], rows)
