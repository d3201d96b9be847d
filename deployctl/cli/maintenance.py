"""`deployctl maintenance on|off --env ENV [--page FILE] [--retry-after SECONDS]`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from .common import finish, table
from .config import EnvOption
from .context import AppContext

MAX_PAGE = 1024 * 1024  # a page, not a site: nginx reads it per answer


def maintenance(
    ctx: typer.Context,
    mode: Annotated[str, typer.Argument(metavar="on|off", help="on: 503 + Retry-After and a page; off: serve again.")],
    env: EnvOption = "local",
    page: Annotated[Path | None, typer.Option("--page", help="An HTML file to answer with (default: a plain page).",
                                              dir_okay=False)] = None,
    retry_after: Annotated[int, typer.Option("--retry-after", min=0, max=86400,
                                             help="Seconds in the Retry-After header.")] = 300,
) -> None:
    """Maintenance mode on or off: 503 with Retry-After and a page while the app keeps running.

    Every request but the proxy's health check gets it; deploys and rollbacks keep it until `off`."""
    from ..services.edge.maintenance import set_maintenance

    app: AppContext = ctx.obj
    if mode not in ("on", "off"):
        raise UsageError(f"maintenance takes `on` or `off`, not {mode!r}")
    if page is not None and mode == "off":
        raise UsageError("--page goes with `maintenance on`")
    body = None
    if page is not None:
        try:
            body = page.read_bytes()
        except OSError as exc:
            raise UsageError(f"--page {page}: {exc.strerror}") from None
        if len(body) > MAX_PAGE:
            raise UsageError(f"--page {page}: {len(body)} bytes; at most {MAX_PAGE} (a page, not a site)")
    if app.loaded.environment(env).target == "swarm":  # every ready node's global proxy, the manager's lock
        from .swarm_nodes import swarm_nodes

        with swarm_nodes(app, env) as (conns, proxies, manager):
            results = set_maintenance(app.env(env), app.emit, on=mode == "on", page=body, retry_after=retry_after,
                                      connectors=conns, proxies=proxies, lock=manager)
    else:
        results = set_maintenance(app.env(env), app.emit, on=mode == "on", page=body, retry_after=retry_after)
    if app.mode == "json":
        finish(app, "maintenance", {"environment": env, "maintenance": mode == "on",
                                    "hosts": [vars(r) for r in results]})
        return
    app.emit.close()
    table(app, f"Maintenance {mode} ({env})", ["host", "maintenance", "changed"],
          [[r.host, "on" if r.maintenance else "off", "yes" if r.changed else "no (already so)"] for r in results])
