"""`deployctl accessory backup NAME`, `accessory backup list NAME`, `accessory backup
restore NAME ID` (services/data/backups.py; docs/backups.md)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from .common import confirm_environment, finish, table
from .config import EnvOption
from .context import AppContext

TAKE = "take"


class _DefaultTake(TyperGroup):
    """`backup NAME` means `backup take NAME`: an unknown first word is an accessory's name."""

    def resolve_command(self, ctx, args):  # type: ignore[no-untyped-def]
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [TAKE, *args]
        return super().resolve_command(ctx, args)


backup_app = typer.Typer(
    cls=_DefaultTake, add_completion=False, rich_markup_mode=None, no_args_is_help=True,
    help="Back up a database accessory (`backup NAME`), list its backups, restore one.")

AccessoryName = Annotated[str, typer.Argument(metavar="NAME", help="A database accessory from deploy.toml.")]
ToOption = Annotated[Optional[str], typer.Option(
    "--to", metavar="s3://BUCKET/PREFIX|DIR",
    help="Where backups are kept [default: accessories.NAME.backup.to, else .deployctl/backups beside deploy.toml].")]
HostOption = Annotated[Optional[str], typer.Option(
    "--host", help="The host whose accessory is meant (default: the environment's first).")]


@backup_app.command(TAKE, hidden=True)
def take(ctx: typer.Context, name: AccessoryName, env: EnvOption = "local", to: ToOption = None,
         host: HostOption = None) -> None:
    """Dump NAME (gzip, sha256), named by time and live release, into --to; prune past backup.keep."""
    from ..services.data import backups

    app: AppContext = ctx.obj
    manifest, where = backups.backup_now(app.env(env), name, app.emit, to=to, host=host)
    if app.mode == "json":
        finish(app, "accessory backup", {"environment": env, "backup": vars(manifest), "where": where})
        return
    app.emit.close()
    app.out(f"backup {manifest.id} of {name} in {where} (sha256 {manifest.sha256})")


@backup_app.command("list")
def list_backups(ctx: typer.Context, name: AccessoryName, env: EnvOption = "local", to: ToOption = None) -> None:
    """NAME's complete backups, oldest first: in --to, else backup.to (or the default) and,
    with a backup.schedule, those the scheduler took on the environment's first host."""
    from ..services.data import backups

    app: AppContext = ctx.obj
    where, scheduled_where, found = backups.listing(app.env(env), name, to)
    if app.mode == "json":
        finish(app, "accessory backup list", {
            "environment": env, "where": where,
            **({"scheduled_where": scheduled_where} if scheduled_where else {}),
            "backups": [{**vars(m), "where": kept_in} for m, kept_in in found]})
        return
    title = f"Backups of {name} ({env}) in {where}" + (
        f" and, scheduled, in {scheduled_where}" if scheduled_where else "")
    columns = ["id", "release", "created", "size", "sha256", "host", "reason"]
    rows = [[m.id, m.release or "-", m.created, str(m.size), m.sha256[:12], m.host, m.reason] for m, _ in found]
    if scheduled_where:  # the host's scheduled backups beside the others: each row says which holds it
        columns.append("kept")
        rows = [row + ["host" if kept_in == scheduled_where else "to"] for row, (_, kept_in) in zip(rows, found)]
    table(app, title, columns, rows)


@backup_app.command("restore")
def restore(ctx: typer.Context, name: AccessoryName,
            backup_id: Annotated[str, typer.Argument(metavar="ID", help="A backup id from `backup list`.")],
            env: EnvOption = "local", to: ToOption = None, host: HostOption = None,
            verify: Annotated[bool, typer.Option(
                "--verify", help="First load it into a throwaway container on a fresh volume.")] = False,
            yes: Annotated[bool, typer.Option("--yes", help="Do not ask (CI).")] = False) -> None:
    """Restore backup ID into the running NAME (its databases are replaced). Asks for the environment's name."""
    from ..services.data import backups

    app: AppContext = ctx.obj
    backups.refuse_swarm(app.env(env), "accessory backup restore")
    backups.target(app.env(env), name, to)  # a bad name or location is refused before the question
    confirm_environment(env, f"This replaces the data of {name} in {env} with backup {backup_id}.",
                        f"restoring {name}", yes)
    conn = backups.connector(app.env(env), host)
    # The scheduled backups live on the first host: the same connection unless --host names another.
    first = conn if host is None else backups.connector(app.env(env))
    try:
        conn.connect()
        if first is not conn:
            first.connect()
        target = backups.find(app.env(env), name, backup_id, to, first)
        backups.restore(app.env(env), conn, target, backup_id, app.emit, verify=verify)
    finally:
        conn.close()
        if first is not conn:
            first.close()
    if app.mode == "json":
        finish(app, "accessory backup restore", {"environment": env, "accessory": name, "backup": backup_id,
                                                 "verified": verify})
        return
    app.emit.close()
    app.out(f"restored {backup_id} into {name} ({env})" + (" after it loaded into a throwaway copy" if verify else ""))
