"""`deployctl infra plan|apply|destroy|output|template`: the AWS network, hosts and database
an environment runs on, as one CloudFormation stack (docs/infra.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .common import confirm_environment, finish, table
from .config import EnvOption
from .context import AppContext

infra_app = typer.Typer(
    help="The AWS network, hosts and database of an environment (CloudFormation): plan, apply, destroy, output, template.",
    no_args_is_help=True, add_completion=False, rich_markup_mode=None,
)

MARKS = {"add": "+", "modify": "~", "replace": "-/+", "remove": "-"}


def _show_plan(app: AppContext, result: Any) -> None:
    if not result.changes:
        app.out(f"stack {result.stack_name}: no changes")
        return
    rows = []
    for change in result.changes:
        action = change.action.upper() if change.action in ("replace", "remove") else change.action
        note = change.reason
        if change.destroys_data:
            note = ("DATABASE " + ("REPLACED" if change.action == "replace" else "DELETED") + ": its data is lost"
                    + (f" ({note})" if note else ""))
        rows.append([f"{MARKS.get(change.action, '?')} {action}", change.logical_id, change.resource_type, note or "-"])
    verb = "would change" if result.exists else "would create"
    table(app, f"stack {result.stack_name}{' in ' + result.region if result.region else ''}: {verb} "
               f"{len(result.changes)} resource{'s' if len(result.changes) != 1 else ''}",
          ["action", "resource", "type", "note"], rows)
    replaced = [c for c in result.changes if c.action in ("replace", "remove")]
    if replaced:
        app.out(f"[bold red]WARNING: {len(replaced)} resource(s) would be replaced or removed: "
                f"{', '.join(c.logical_id for c in replaced)}[/]")


def _show_outputs(app: AppContext, outputs: dict[str, str]) -> None:
    table(app, "outputs", ["output", "value"], [[k, v or "-"] for k, v in outputs.items()])


@infra_app.command("plan")
def plan(ctx: typer.Context, env: EnvOption = "local") -> None:
    """Show what `infra apply` would change (a change set, deleted afterwards; nothing changes)."""
    from ..services.cloud import infra

    app: AppContext = ctx.obj
    result = infra.plan(app.env(env), app.emit)
    if app.mode == "json":
        finish(app, "infra plan", {"environment": env, **result.to_dict()})
        return
    app.emit.close()
    _show_plan(app, result)


@infra_app.command("apply")
def apply(ctx: typer.Context, env: EnvOption = "local",
          allow_replace: Annotated[bool, typer.Option(
              "--allow-replace", help="Let a change replace or remove the database (its data is lost).")] = False
          ) -> None:
    """Create or update the environment's stack, following its events; prints the outputs."""
    from ..services.cloud import infra

    app: AppContext = ctx.obj
    result, outputs = infra.apply(app.env(env), app.emit, allow_replace=allow_replace)
    if app.mode == "json":
        finish(app, "infra apply", {"environment": env, **result.to_dict(), "outputs": outputs})
        return
    app.emit.close()
    _show_plan(app, result)
    _show_outputs(app, outputs)


@infra_app.command("destroy")
def destroy(ctx: typer.Context, env: EnvOption = "local",
            yes: Annotated[bool, typer.Option("--yes", help="Do not ask (CI): delete without typing the name.")] = False
            ) -> None:
    """Delete the environment's stack: hosts, network and database. Asks for the environment's name."""
    from ..services.cloud import infra

    app: AppContext = ctx.obj
    target = infra.target_for(app.env(env))  # config mistakes first, before the question
    confirm_environment(env, f"This deletes stack {target.stack_name}: the hosts, the network and the database.",
                        f"deleting stack {target.stack_name}", yes)
    deleted = infra.destroy(app.env(env), app.emit)
    if app.mode == "json":
        finish(app, "infra destroy", {"environment": env, "stack": target.stack_name, "deleted": deleted})
        return
    app.emit.close()


@infra_app.command("output")
def output(ctx: typer.Context, env: EnvOption = "local") -> None:
    """Print the stack's outputs (the database's address from RDS where the stack lacks it)."""
    from ..services.cloud import infra

    app: AppContext = ctx.obj
    outputs = infra.stack_outputs(app.env(env))
    if app.mode == "json":
        finish(app, "infra output", {"environment": env, "outputs": outputs})
        return
    _show_outputs(app, outputs)


@infra_app.command("template")
def template(ctx: typer.Context, env: EnvOption = "local",
             out: Annotated[Optional[Path], typer.Option(
                 "--output", "-o", metavar="FILE", help="Write it here instead of stdout.")] = None) -> None:
    """Write the environment's CloudFormation template (for teams that run CloudFormation themselves)."""
    from ..services.cloud import infra

    app: AppContext = ctx.obj
    target = infra.target_for(app.env(env))
    if out is None:
        sys.stdout.write(target.body)
        return
    out.write_text(target.body)
    if app.mode == "json":
        finish(app, "infra template", {"environment": env, "file": str(out)})
    else:
        print(f"wrote {out} ({len(target.template['Resources'])} resources)", file=sys.stderr)
