"""`deployctl accessory exec NAME`: a command in an accessory's running container, as
`deployctl exec --live` runs one in the live release's (services/operate/container_exec.py
holds what both do: the stream or terminal, the exit code, the history line).

Where it runs: on a local or ssh target an accessory runs on every host of the
environment, so on one of them (`host`, default the first); on a Swarm it is one service
with one task, so in that task's container on its node. The history line goes to that
host's history (a Swarm: the manager's), with extra.accessory (plan/operate/exec.py).

Exit codes as `exec`'s: CMD's own, or 125 when deployctl could not start it (an unknown
accessory or host, a host that cannot be reached, an accessory that is not running: its
message says which, with the boot hint), or when the connection went before its end was
seen. A code of ours (2, 4) could not be told apart from the command's own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ...config import LoadedConfig
from ...errors import ConnectError, UsageError
from ...plan.operate import exec as plan
from ...secrets import redactor
from ..data import accessories
from ..lifecycle.deploy_inputs import load_for_redaction
from ..lifecycle.host_state import HostState
from ..env import Env
from ..hosts import ssh_connector, who
from .container_exec import Output, choose, not_started, run_recorded, swarm_task_container


@dataclass(frozen=True)
class AccessoryExecRequest:
    env: str
    accessory: str
    command: tuple[str, ...]
    interactive: bool = False
    host: str | None = None  # None: the first host (a Swarm: the node of its task, whichever)


def run_accessory_exec(loaded: LoadedConfig, request: AccessoryExecRequest, output: Output, *,
                       connectors: list | None = None, node_connector: Callable[[str], object] | None = None,
                       now: Callable[[], float] = time.time) -> int:
    """The command's exit code; ExecNotStarted (125) for anything that stopped it."""
    return not_started(lambda: _run(loaded, request, output, connectors=connectors, node_connector=node_connector,
                                    now=now))


def _run(loaded: LoadedConfig, request: AccessoryExecRequest, output: Output, *, connectors: list | None,
         node_connector: Callable[[str], object] | None, now: Callable[[], float]) -> int:
    # Resolved here, not by the CLI: an unknown --env is one more thing that stops the
    # command from starting, 125 as the others (not_started), never a code CMD could give.
    env = Env.resolve(loaded, request.env)
    environment = env.settings
    if request.accessory == "all":
        raise UsageError("accessory exec runs in one accessory: name it (not 'all')")
    [name] = accessories.select(env, request.accessory)
    [spec] = accessories.specs_for(env, [name])
    if not request.command:
        raise UsageError(f"no command: put it after `--`, e.g. `deployctl accessory exec {name} --env {request.env} "
                         "-- sh`")
    # The values this shell's secret source gives are masked in the history's copy of the
    # argv; a source that cannot answer leaves the shape-based masking. Nothing is printed:
    # stderr belongs to the command.
    load_for_redaction(env)
    layout = env.layout

    def record(conn, state: HostState) -> Callable[[int | None, str], object]:  # type: ignore[no-untyped-def]
        live = state.current()
        conn.mkdir(layout.root, mode=0o700)  # an accessory booted before any deploy: no state dir yet
        return lambda rc, error: plan.accessory_exec_record(
            release=live, accessory=name, command=request.command, exit_code=rc, who=who(), now=now(), error=error,
            redact=redactor)

    conns = connectors if connectors is not None else env.connectors()
    try:
        if environment.target == "swarm":
            manager = conns[0]
            nodes = node_connector or (lambda address: ssh_connector(env.loaded, environment, address, env.name))
            _reached(manager, manager.connect)
            state = HostState(manager, layout)
            hint = f"`deployctl accessory boot {name}` starts it"
            with swarm_task_container(manager, spec.container, request.host, nodes,
                                      idle_hint=hint) as (node_conn, container):
                argv = plan.live_exec(container, request.command, interactive=request.interactive)
                return run_recorded(state, node_conn, argv, interactive=request.interactive, output=output,
                                    record=_reached(manager, lambda: record(manager, state)))
        conn = choose(conns, request.host, request.env)
        _reached(conn, conn.connect)
        state = HostState(conn, layout)
        _reached(conn, lambda: accessories.require_running(conn, spec))
        argv = plan.live_exec(spec.container, request.command, interactive=request.interactive)
        return run_recorded(state, conn, argv, interactive=request.interactive, output=output,
                            record=_reached(conn, lambda: record(conn, state)))
    finally:
        for each in conns:
            each.close()


def _reached(conn, call):  # type: ignore[no-untyped-def]
    """call() on conn before the command starts; a connection that goes meanwhile is said
    naming the host, as a host that cannot be reached is (SSH's own ConnectError)."""
    try:
        return call()
    except OSError as exc:
        raise ConnectError(f"{conn.host}: {exc}") from None
