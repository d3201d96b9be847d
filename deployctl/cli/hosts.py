"""`deployctl hosts`: the hosts an environment deploys to — its `hosts` list, or what EC2
discovery finds right now — without connecting to any of them."""

from __future__ import annotations

import typer

from .common import finish, table
from .config import EnvOption
from .context import AppContext

COLUMNS = ["address", "instance", "name", "private ip", "public ip"]


def hosts(ctx: typer.Context, env: EnvOption = "local") -> None:
    """List an environment's hosts (EC2 discovery asked afresh; no host is contacted)."""
    app: AppContext = ctx.obj
    loaded = app.loaded
    environment = loaded.environment(env)
    from ..services.discovery import discover_for, discover_hosts

    if discover_for(loaded.config, environment, env) is not None:
        source = "discover" if environment.discover is not None else "infra"
        rows = [{"address": h.address, "instance": h.instance.id, "name": h.instance.name or None,
                 "private_ip": h.instance.private_ip, "public_ip": h.instance.public_ip}
                for h in discover_hosts(loaded.config, environment, env)]
    else:
        source = {"ssh": "hosts", "swarm": "manager"}.get(environment.target, "local")
        entries = {"ssh": environment.hosts, "swarm": [environment.manager]}.get(environment.target, ["localhost"])
        rows = [{"address": entry, "instance": None, "name": None, "private_ip": None, "public_ip": None}
                for entry in entries]
    if app.mode == "json":
        finish(app, "hosts", {"environment": env, "source": source, "hosts": rows})
        return
    title = f"{env}: {len(rows)} host{'s' if len(rows) != 1 else ''} ({_source_text(source)})"
    table(app, title, COLUMNS, [[row[k] or "-" for k in ("address", "instance", "name", "private_ip", "public_ip")]
                                for row in rows])


def _source_text(source: str) -> str:
    return {"discover": "running EC2 instances with the discover tags", "hosts": "from deploy.toml",
            "infra": "running EC2 instances of the infra stack",
            "local": "this machine's engine",
            "manager": "the Swarm manager; `deployctl status` lists the nodes"}[source]
