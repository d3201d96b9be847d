"""`deployctl status`, `deployctl releases` and `deployctl logs`: read-only views."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .common import finish, table
from .config import EnvOption
from .context import AppContext


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def status(ctx: typer.Context, env: EnvOption = "local") -> None:
    """Per host: the live release, its revision and age, container health, the lock holder."""
    from ..services.inspect import status as get_status

    app: AppContext = ctx.obj
    if app.loaded.environment(env).target == "swarm":
        from .swarm import show_status

        show_status(app, env)
        return
    hosts = get_status(app.env(env), emit=app.emit)
    if app.mode == "json":
        finish(app, "status", {"environment": env, "hosts": [vars(h) for h in hosts]})
        return
    for h in hosts:
        if not h.reachable:
            app.out(f"{h.host}: UNREACHABLE ({h.error})")
            continue
        app.out(f"{h.host}: live {h.live or 'nothing deployed'}  revision {(h.revision or '-')[:12]}  "
                f"age {_age(h.age_seconds)}  proxy port {h.proxy_port or '-'}  lock {h.lock or 'free'}")
        if h.maintenance:
            app.out(f"{h.host}: MAINTENANCE {h.maintenance}: every request gets 503 (`deployctl maintenance off`)")
        if h.canary:
            app.out(f"{h.host}: {h.canary}")
        elif h.proxy_routes and h.proxy_routes != h.live:
            app.out(f"{h.host}: WARNING: the proxy routes to {h.proxy_routes}, not to {h.live or 'nothing'} "
                    "(a switch ended uncertain): `deployctl rollback --to RELEASE` or a deploy puts one release back")
        table(app, "", ["container", "state", "health", "release"],
              [[c["name"], c["state"], c["health"], c["release"]] for c in h.containers])


def releases(ctx: typer.Context, env: EnvOption = "local") -> None:
    """The release history on each host, newest first."""
    from ..services.inspect import releases as get_releases

    app: AppContext = ctx.obj
    per_host = get_releases(app.env(env), emit=app.emit)
    if app.mode == "json":
        finish(app, "releases", {"environment": env, "hosts": per_host})
        return
    for host, rows in per_host.items():
        table(app, host, ["", "release", "revision", "when", "who", "outcome"],
              [["*" if r.get("live") else "", r["release"],
                (r.get("revision") or "-")[:12] + (" (dirty)" if r.get("dirty") else ""), r.get("when") or "-",
                r.get("who") or "-", r.get("outcome", "-") + (f" (drill {r['drill']})" if r.get("drill") else "")]
               for r in rows])


def logs(
    ctx: typer.Context,
    env: EnvOption = "local",
    service: Annotated[str, typer.Option("--service", "-s", help="A service name, or 'proxy'.")] = "frontend",
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Lines from the end.")] = 100,
) -> None:
    """The live release's container logs (secret values masked)."""
    from ..services.inspect import logs as get_logs

    import sys

    app: AppContext = ctx.obj
    warn = lambda text: print(f"warning: {text}", file=sys.stderr, flush=True)  # noqa: E731
    if app.mode == "json":
        get_logs(app.env(env), service, lines=lines, follow=follow, warn=warn,
                 on_line=lambda host, line: print(json.dumps({"host": host, "service": service, "line": line}), flush=True))
        return
    get_logs(app.env(env), service, lines=lines, follow=follow, warn=warn,
             on_line=lambda host, line: print(f"[{host}] {line}", flush=True))
