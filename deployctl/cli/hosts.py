"""`deployctl hosts`: the hosts an environment deploys to — its `hosts` list, or what EC2
discovery finds right now — without connecting to any of them. `deployctl hosts trust`:
pin their SSH host keys (services/host_keys.py)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from .common import finish, table
from .config import EnvOption
from .context import AppContext

COLUMNS = ["address", "instance", "name", "private ip", "public ip"]

hosts_app = typer.Typer(
    help="List an environment's hosts (EC2 discovery asked afresh; no host is contacted); "
         "`hosts trust` pins their SSH host keys.",
    invoke_without_command=True, add_completion=False, rich_markup_mode=None,
)


@hosts_app.callback()
def hosts(ctx: typer.Context, env: EnvOption = "local") -> None:
    """List an environment's hosts (EC2 discovery asked afresh; no host is contacted)."""
    if ctx.invoked_subcommand is not None:
        return
    app: AppContext = ctx.obj
    loaded = app.loaded
    environment = loaded.environment(env)
    from ..services.cloud.discovery import discover_for, discover_hosts

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


@hosts_app.command("trust")
def trust(ctx: typer.Context, env: EnvOption = "local",
          yes: Annotated[bool, typer.Option("--yes", help="Do not ask (CI): needs --fingerprint or --from-console.")] = False,
          fingerprints: Annotated[Optional[list[str]], typer.Option(
              "--fingerprint", metavar="SHA256:...",
              help="A host key fingerprint to accept (repeatable: one per host, or one all hosts share); "
                   "any other key is refused.")] = None,
          from_console: Annotated[bool, typer.Option(
              "--from-console", help="Accept only keys the EC2 instances printed on their console at first boot.")] = False,
          ) -> None:
    """Scan each host's SSH key (no login), show its fingerprint and pin it in the
    environment's own known_hosts file, after a confirmation or a check."""
    from ..errors import UsageError
    from ..plan.operate.host_keys import valid_fingerprint
    from ..services import host_keys

    app: AppContext = ctx.obj
    pins = list(fingerprints or [])
    bad = [p for p in pins if not valid_fingerprint(p)]
    if bad:
        raise UsageError(f"--fingerprint {bad[0]!r} is not a SHA256 fingerprint",
                         hint="as `ssh-keygen -lf KEY.pub` prints it: SHA256: and 43 base64 characters")
    if yes and not pins and not from_console:
        raise UsageError("--yes would trust whatever key answers: give --fingerprint SHA256:... (one per host, "
                         "or one they share) or --from-console")
    resolved = app.env(env)
    path = resolved.known_hosts
    found, note = host_keys.targets(resolved)
    scanned = host_keys.scan(resolved, found)
    rows = [{"host": s.target.entry, "instance": s.target.instance_id, "key_type": s.key.key_type,
             "fingerprint": s.key.fingerprint, "status": s.status, "previous": s.previous} for s in scanned]
    if app.mode != "json":
        table(app, f"{env}: SSH host keys offered ({path})", ["host", "type", "fingerprint", "known_hosts"],
              [[r["host"], r["key_type"], r["fingerprint"],
                r["status"] if r["status"] != "CHANGED" else f"CHANGED (was {r['previous']})"] for r in rows])
    if note and app.mode != "json":
        app.out(f"note: {note}")
    if pins:
        host_keys.check_pins(scanned, pins)
    if from_console:
        host_keys.check_console(resolved, scanned)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("refused: trusting host keys needs a yes typed on a terminal; nothing was written",
                             hint="in CI pass --yes with --fingerprint SHA256:... (or --from-console)")
        checked = " (checked)" if pins or from_console else ""
        if not typer.confirm(f"Trust these {len(rows)} key(s){checked} for {env}? Compare them with the hosts' "
                             "own `ssh-keygen -lf` first", default=False):
            raise UsageError("refused: not confirmed; nothing was written")
    host_keys.write(path, scanned, owned=resolved.settings.ssh.known_hosts is None)
    if app.mode == "json":
        finish(app, "hosts trust", {"environment": env, "file": path, "hosts": rows, "note": note})
        return
    app.out(f"wrote {path}: {len(rows)} host key(s) pinned for {env}")
