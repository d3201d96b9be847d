"""`deployctl exec --env ENV [--service S] [--host H | --all-hosts] [--live | --new] [-i] -- CMD...`

Exits with CMD's own exit code; 125 when deployctl could not start it (ExecNotStarted).
"""

from __future__ import annotations

import sys
import threading
from typing import Annotated, Optional

import typer

from .config import EnvOption
from .context import AppContext


class HostLines:
    """`host | ` before each line of each host's stdout and stderr (--all-hosts): a line is
    written whole once its newline came, so two hosts' lines never mix."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def __call__(self, host: str, stream: str, data: bytes) -> None:
        with self._lock:
            pending = self._pending.get((host, stream), b"") + data
            *lines, rest = pending.split(b"\n")
            self._pending[(host, stream)] = rest
            write(stream, b"".join(f"{host} | ".encode() + line + b"\n" for line in lines))

    def flush(self) -> None:
        with self._lock:
            for (host, stream), rest in self._pending.items():
                if rest:
                    write(stream, f"{host} | ".encode() + rest + b"\n")
            self._pending.clear()


def write(stream: str, data: bytes) -> None:
    if not data:
        return
    out = sys.stdout if stream == "stdout" else sys.stderr
    out.flush()
    out.buffer.write(data)
    out.buffer.flush()


def exec_command(
    ctx: typer.Context,
    command: Annotated[Optional[list[str]], typer.Argument(metavar="-- CMD...", help="The command and its arguments.")] = None,
    env: EnvOption = "local",
    service: Annotated[Optional[str], typer.Option("--service", "-s", help="The service (default: the routed one).")] = None,
    host: Annotated[Optional[str], typer.Option("--host", help="The host to run on (default: the first; "
                                                "on a Swarm: the node of a task).")] = None,
    all_hosts: Annotated[bool, typer.Option("--all-hosts", help="On every host; each line prefixed `host | `.")] = False,
    new: Annotated[bool, typer.Option("--new/--live", help="--live (default): in the live release's running "
                                      "container. --new: in a one-off container of its image, env file, secrets "
                                      "and networks, removed afterwards.")] = False,
    interactive: Annotated[bool, typer.Option("--interactive", "-i", help="On a terminal (docker -it): "
                                              "for shells and REPLs such as `flask shell`.")] = False,
) -> int:
    """Run a command in the live release's container (or a one-off one); exits with its code."""
    from ..services.operate.exec import ExecRequest, run_exec

    app: AppContext = ctx.obj
    request = ExecRequest(env=env, command=tuple(command or ()), service=service, new=new, interactive=interactive,
                          host=host, all_hosts=all_hosts)
    warn = lambda text: print(f"warning: {text}", file=sys.stderr, flush=True)  # noqa: E731
    if all_hosts:
        lines = HostLines()
        try:
            return run_exec(app.loaded, request, lines, warn=warn)
        finally:
            lines.flush()
    return run_exec(app.loaded, request, lambda host, stream, data: write(stream, data), warn=warn)
