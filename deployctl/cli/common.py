"""Options and output helpers shared by the build, test and push verbs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .context import AppContext

ServiceOption = Annotated[
    Optional[list[str]],
    typer.Option("--service", "-s", metavar="NAME", help="Only this image (a service name, or 'proxy'); repeatable."),
]
ArtifactsOption = Annotated[
    Optional[Path],
    typer.Option("--artifacts", "-a", metavar="FILE",
                 help="The artifacts file [default: .deployctl/build.json beside deploy.toml]."),
]

NoHooksOption = Annotated[
    bool,
    typer.Option("--no-hooks", help="Skip every [hooks] command for this run (each is said as a warning)."),
]


def hooks_skipped_warning(app: AppContext, no_hooks: bool) -> None:
    """--no-hooks said loudly, once, before anything runs (and again at each skipped hook)."""
    if no_hooks and app.loaded.config.hooks.model_fields_set:
        from ..events import Message

        app.emit(Message("HOOKS SKIPPED (--no-hooks): no [hooks] command runs for this command", level="warning"))


def artifacts_path(app: AppContext, given: Path | None) -> Path:
    """An explicit path is taken as given (relative to the working directory); the default
    lives beside deploy.toml, so every stage of a pipeline finds the same file."""
    from ..artifacts import DEFAULT_FILE

    return given.resolve() if given is not None else app.loaded.root / DEFAULT_FILE


def finish(app: AppContext, command: str, data: dict[str, Any]) -> None:
    """In --json mode, the last line is the command's result (after its events)."""
    if app.mode == "json":
        app.emit.write({"event": "result", "command": command, "ok": True, **data})


def short_id(image_id: str | None) -> str:
    return image_id.removeprefix("sha256:")[:12] if image_id else "-"


def table(app: AppContext, title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A Rich table on a TTY, aligned plain columns otherwise (greppable in CI logs); secret
    values masked in every cell."""
    from ..secrets import redactor

    rows = [[redactor(str(cell)) for cell in row] for row in rows]
    if app.mode == "rich":
        from rich.table import Table

        grid = Table(title=title, title_justify="left")
        for column in columns:
            grid.add_column(column)
        for row in rows:
            grid.add_row(*row)
        app.console.print(grid)
        return
    widths = [max(len(str(c)) for c in col) for col in zip(columns, *rows)]
    print(title)
    for row in [columns, *rows]:
        print("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def confirm_environment(env: str, question: str, refused: str, yes: bool) -> None:
    """A destructive command goes on only when the environment's name is typed (or --yes,
    for CI). No terminal and no --yes: refused, as no one can answer."""
    import sys

    from ..errors import DeployError

    if yes:
        return
    if not sys.stdin.isatty():
        raise DeployError(f"refused: {refused} needs its environment's name typed on a terminal",
                          hint="pass --yes where no one can type (CI)")
    typed = typer.prompt(f"{question} Type the environment's name ({env}) to go on", default="", show_default=False)
    if typed.strip() != env:
        raise DeployError(f"refused: {typed.strip()!r} is not {env!r}; nothing was changed")
