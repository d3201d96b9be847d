"""`deployctl init`: write a commented deploy.toml for an existing project, with a `local`
environment, from its docker-compose file (or its Dockerfiles)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .context import AppContext


def init(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="The project's directory.")] = Path("."),
    compose: Annotated[Optional[Path], typer.Option(
        "--compose", metavar="FILE",
        help="The compose file [default: docker-compose.yml, docker-compose.yaml, compose.yml or compose.yaml "
             "in DIRECTORY; without one, each directory with a Dockerfile is a service].")] = None,
    app_name: Annotated[Optional[str], typer.Option("--app", metavar="NAME",
                                                    help="The app's name [default: compose's name, else the directory's].")] = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", metavar="PATH",
        help="Where to write [default: --config when given, else DIRECTORY/deploy.toml].")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    stdout: Annotated[bool, typer.Option("--stdout", "--dry-run",
                                         help="Print the file (the report goes to stderr); write nothing.")] = False,
) -> None:
    """Write a deploy.toml for an existing project (from docker-compose.yml or its Dockerfiles)."""
    from ..errors import ConfigError
    from ..services.init_project import init_project

    app: AppContext = ctx.obj
    target = output or (Path(app.config_path) if app.config_path != "deploy.toml" else directory / "deploy.toml")
    if target.exists() and not (force or stdout):
        raise ConfigError([f"{target}: already exists; not overwritten"],
                          hint="review or move it first, pass --force to replace it, or --stdout to print the new one")
    result = init_project(directory, target, compose=compose, app=app_name)
    plan = result.plan
    if app.mode == "json":
        app.print_json({"path": None if stdout else str(target), "source": str(result.source or "Dockerfiles"),
                        "services": [s.name for s in plan.services],
                        "routed": next(s.name for s in plan.services if s.routed),
                        "accessories": [a.name for a in plan.accessories], "secrets": plan.secret_names,
                        "notes": [{"subject": n.subject, "message": n.message} for n in plan.notes],
                        **({"text": result.text} if stdout else {})})
        if not stdout:
            target.write_text(result.text, encoding="utf-8")
        return
    if stdout:
        sys.stdout.write(result.text)
        sys.stdout.flush()
        _report(plan, target, written=False, file=sys.stderr)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(result.text, encoding="utf-8")
    _report(plan, target, written=True, file=sys.stdout)


def _report(plan, target: Path, *, written: bool, file) -> None:  # type: ignore[no-untyped-def]
    say = lambda text="": print(text, file=file)  # noqa: E731
    routed = next(s for s in plan.services if s.routed)
    say(f"{'Wrote' if written else 'Would write'} {target} from {plan.source}:")
    say(f"  services     {', '.join(s.name + (' (routed)' if s.routed else '') for s in plan.services)}")
    if plan.accessories:
        say(f"  accessories  {', '.join(a.name for a in plan.accessories)}")
    if plan.replaced_proxy:
        say(f"  proxy        deployctl's own, replacing {', '.join(plan.replaced_proxy)}; routes to {routed.name}")
    say(f"  local        http://127.0.0.1:{plan.proxy_port}/  ({plan.proxy_port_source})" if plan.proxy_port
        else f"  local        any free port ({plan.proxy_port_source})")
    if plan.secret_names:
        say(f"  secrets      {', '.join(plan.secret_names)} (read from the secret source at deploy time; never copied)")
    if plan.notes:
        say("")
        say("Check these (init could not infer them, or guessed):")
        width = max(len(n.subject) for n in plan.notes)
        for note in plan.notes:
            say(f"  {note.subject.ljust(width)}  {note.message}")
    say("")
    say("Next:")
    for name in plan.secret_names:
        say(f"  export {name}=...")
    say("  deployctl build && deployctl deploy --env local")
