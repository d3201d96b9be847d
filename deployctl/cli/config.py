"""`deployctl config`: the resolved configuration of an environment, secrets masked."""

from __future__ import annotations

from typing import Annotated, Any, Iterator

import typer

from .context import AppContext

EnvOption = Annotated[str, typer.Option("--env", "-e", help="Environment name from deploy.toml.")]


def flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """`a.b[0].c = value` lines: greppable, and the same paths our error messages use."""
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list) and data:
        for i, value in enumerate(data):
            yield from flatten(value, f"{prefix}[{i}]")
    else:
        yield prefix, data


def config(ctx: typer.Context, env: EnvOption = "local") -> None:
    """Print the resolved configuration of an environment (secret values shown as ***)."""
    from ..plan.resolved_config import resolve

    app: AppContext = ctx.obj
    resolved = resolve(app.loaded, env)
    if resolved.get("ssh") and resolved["ssh"].get("known_hosts") is None:
        # unset means deployctl's own file: show which, as every connection will use it
        resolved["ssh"]["known_hosts"] = app.env(env).known_hosts
    if app.mode == "json":
        app.print_json(resolved)
        return
    from rich.markup import escape

    for path, value in flatten(resolved):
        shown = "null" if value is None else ("[]" if value == [] else ("{}" if value == {} else value))
        app.out(f"[cyan]{escape(path)}[/] = {escape(str(shown))}")
