"""A command in a running container, streamed or on a terminal, with its line in the
history; and, on a Swarm, the running container of a service's task on its node. What
`deployctl exec` (services/operate/exec.py) and `deployctl accessory exec`
(services/operate/accessory_exec.py) share, so the host, pty, stream and exit-code
handling is written once.

Errors of ours are raised as they come (a ConnectError, a RemoteCommandError...); both
callers turn every one that stops the command from starting into ExecNotStarted (exit 125,
`not_started`), so no code of deployctl's can be mistaken for one of the command's own.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, TypeVar

from ...adapters.connector import check
from ...errors import ConnectError, DeployctlError, ExecNotStarted, RemoteCommandError
from ...plan.lifecycle.releases import ReleaseRecord
from ...plan.operate import exec as plan
from ...plan.swarm import services as sw
from ...secrets import redactor
from ..lifecycle.host_state import HostState

T = TypeVar("T")

# (host, "stdout" | "stderr", bytes): where a command's output goes as it comes.
Output = Callable[[str, str, bytes], None]
# The history line of a run: (exit code or None when its end was not seen, why not) -> record.
Recorder = Callable[[int | None, str], ReleaseRecord]


def not_started(call: Callable[[], T]) -> T:
    """call(), any failure of ours before the command ran said as ExecNotStarted (exit 125,
    as `docker exec` and `docker run` say it: CMD's own 2 or 4 stays CMD's)."""
    try:
        return call()
    except ExecNotStarted:
        raise
    except DeployctlError as exc:
        raise ExecNotStarted(exc.message, hint=exc.hint) from None
    except OSError as exc:  # a connection that went (ConnectionLost), a refused file
        raise ExecNotStarted(str(exc)) from None


def choose(conns: list, host: str | None, env: str) -> object:
    """The connector of `host` (as `status` names it, or its address); the first without.
    None to choose from, or no such host: ExecNotStarted."""
    if not conns:
        raise ExecNotStarted(f"{env} has no hosts")
    if host is None:
        return conns[0]
    found = [c for c in conns if host in (c.host, getattr(c, "address", None))]
    if not found:
        raise ExecNotStarted(f"--host {host}: not a host of {env} (hosts: {', '.join(c.host for c in conns)})")
    return found[0]


def checked(conn, argv: list[str]) -> str:  # type: ignore[no-untyped-def]
    """argv's stdout; a connection that went is a ConnectError naming the host."""
    try:
        return check(conn, argv)
    except OSError as exc:
        raise ConnectError(f"{conn.host}: {exc}") from None


def run_recorded(state: HostState, conn, argv: list[str], *, interactive: bool, output: Output,  # type: ignore[no-untyped-def]
                 record: Recorder) -> int:
    """Runs argv on conn (its output streamed to `output`, or on this terminal: a real pty
    locally, a paramiko pty over SSH); returns its exit code. The history (`state`: the
    host's, or a Swarm manager's) gets `record`'s line either way."""
    rc: int | None = None
    error = ""
    try:
        if interactive:
            rc = conn.interactive(argv)
        else:
            rc = conn.stream(argv, on_stdout=lambda data: output(conn.host, "stdout", data),
                             on_stderr=lambda data: output(conn.host, "stderr", data))
        return rc
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, DeployctlError) or isinstance(exc, OSError):
            raise ExecNotStarted(f"{conn.host}: the command's end was not seen: {exc}") from None
        raise
    finally:
        try:
            state.record(record(rc, error))
        except Exception:  # noqa: BLE001 - the record is an audit line: its loss never changes the exit code
            pass


@contextlib.contextmanager
def swarm_task_container(manager, swarm_service: str, node: str | None,  # type: ignore[no-untyped-def]
                         nodes: Callable[[str], object], *,
                         idle_hint: str | None = None) -> Iterator[tuple[object, str]]:
    """(the connected node, the container id) of a running task of `swarm_service` (on
    `node` if given): the task from `docker service ps` on the manager, the node's address
    from `docker node inspect`, reached by `nodes(address)` (as SwarmSite reaches nodes),
    the container by the task's label there. The node's connector is closed afterwards.
    No running task (or no such service): ExecNotStarted with `idle_hint`."""
    argv = sw.running_tasks(swarm_service)
    try:
        listed = manager.run(argv)
    except OSError as exc:
        raise ConnectError(f"{manager.host}: {exc}") from None
    if not listed.ok and "no such service" not in listed.stderr.lower():  # not booted: no task, said below
        raise RemoteCommandError(manager.host, argv, listed.rc, redactor(listed.stderr or listed.stdout))
    tasks = [t for t in sw.parse_tasks(listed.stdout if listed.ok else "")
             if t.running and (node is None or t.node == node)]
    if not tasks:
        where = f" on node {node}" if node else ""
        raise ExecNotStarted(f"{manager.host}: the Swarm service {swarm_service} has no running task{where}",
                         hint=idle_hint)
    task = tasks[0]
    by_name = {n.hostname: n for n in sw.parse_nodes(checked(manager, sw.inspect_listed_nodes()))}
    if task.node not in by_name:
        raise ExecNotStarted(f"{manager.host}: task {task.name} runs on {task.node}, which `docker node ls` "
                             "does not list")
    node_conn = nodes(by_name[task.node].address)
    try:
        node_conn.connect()  # type: ignore[attr-defined]
        container = checked(node_conn, plan.task_container(task.id)).strip().splitlines()
        if not container:
            raise ExecNotStarted(f"{node_conn.host}: no running container of task {task.name}")  # type: ignore[attr-defined]
        yield node_conn, container[0]
    finally:
        node_conn.close()  # type: ignore[attr-defined]
