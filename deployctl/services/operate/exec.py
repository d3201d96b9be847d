"""`deployctl exec`: a command in the live release's container of a service (`live`), or in
a one-off container of the live release's image, env file, secrets and networks (`new`,
removed afterwards on every path). Streams stdout/stderr as they come, or runs on a terminal
(`interactive`); returns the command's exit code. Every run leaves an `exec` record in the
host's history (plan/operate/exec.py: who, when, the service, the argv masked, the exit code).

Anything that stops the command from starting is an ExecNotStarted (exit 125), never a code
the command could have returned.
"""

from __future__ import annotations

import secrets as token_source
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from ...config import LoadedConfig
from ...errors import DeployctlError, ExecNotStarted
from ...plan.operate import exec as plan
from ...plan.lifecycle.containers import release_containers
from ...secrets import redactor
from ..lifecycle.deploy_inputs import load_for_redaction
from ..lifecycle.host_state import HostState
from ..env import Env
from ..hosts import ssh_connector, who
from .container_exec import Output, choose, not_started, run_recorded, swarm_task_container

Warn = Callable[[str], None]


@dataclass(frozen=True)
class ExecRequest:
    env: str
    command: tuple[str, ...]
    service: str | None = None  # None: the routed service
    new: bool = False  # a one-off container, not the live one
    interactive: bool = False
    host: str | None = None  # None: the first host (a Swarm: any node running a task)
    all_hosts: bool = False

    @property
    def mode(self) -> str:
        return "new" if self.new else "live"


def run_exec(loaded: LoadedConfig, request: ExecRequest, output: Output, *, warn: Warn = lambda text: None,
             connectors: list | None = None, node_connector: Callable[[str], object] | None = None,
             now: Callable[[], float] = time.time) -> int:
    """The command's exit code (with all_hosts: 0 when every host's was 0, else the first
    non-zero one in host order)."""
    config = loaded.config
    try:  # resolved here, not by the CLI: an unknown --env stops the command from starting (125)
        env = Env.resolve(loaded, request.env)
    except DeployctlError as exc:
        raise ExecNotStarted(exc.message, hint=exc.hint) from None
    environment = env.settings
    service = request.service or next((name for name, s in config.services.items() if s.routed), None)
    if service not in config.services:
        raise ExecNotStarted(f"--service {service!r}: no such service (services: {', '.join(config.services)})")
    if not request.command:
        raise ExecNotStarted("no command: put it after `--`, e.g. `deployctl exec --env ENV -- flask shell`")
    if request.interactive and request.all_hosts:
        raise ExecNotStarted("-i and --all-hosts do not go together: one terminal talks to one host")
    if request.host and request.all_hosts:
        raise ExecNotStarted("--host and --all-hosts do not go together")
    # The values this shell's secret source gives are masked in the history's copy of the argv
    # (`mysql -pVALUE`); a source that cannot answer here leaves the shape-based masking
    # (plan/operate/exec.mask_argv). Nothing is printed: stderr belongs to the command.
    not_started(lambda: load_for_redaction(env))
    if environment.target == "swarm":
        return not_started(lambda: _swarm(env, request, service, output, warn, connectors, node_connector, now))
    conns = not_started(lambda: connectors if connectors is not None else env.connectors())
    chosen = _choose(conns, request)
    if not chosen:
        raise ExecNotStarted(f"{request.env} has no hosts")
    one = lambda conn: not_started(lambda: _on_host(env, request, service, conn, output, warn, now))  # noqa: E731

    def each(conn) -> int:  # type: ignore[no-untyped-def]
        """--all-hosts: a host where the command cannot start says why on its own lines and
        counts as 125; the other hosts run all the same."""
        try:
            return one(conn)
        except ExecNotStarted as exc:
            output(conn.host, "stderr", "".join(f"error: {line}\n" for line in exc.lines()).encode())
            return int(exc.exit_code)

    try:
        if not request.all_hosts:
            return one(chosen[0])
        with ThreadPoolExecutor(max_workers=min(len(chosen), 16)) as pool:
            codes = list(pool.map(each, chosen))
        return next((code for code in codes if code != 0), 0)
    finally:
        for conn in conns:
            conn.close()


def _choose(conns: list, request: ExecRequest) -> list:
    if request.all_hosts:
        return conns
    return [choose(conns, request.host, request.env)]


def _live(state: HostState, host: str, env: str) -> str:
    live = state.current()
    if live is None:
        raise ExecNotStarted(f"{host}: nothing is deployed to {env}: no live release to exec in")
    return live


def _on_host(env: Env, request: ExecRequest, service: str, conn, output: Output, warn: Warn,  # type: ignore[no-untyped-def]
             now: Callable[[], float]) -> int:
    conn.connect()
    names, layout = env.names, env.layout
    state = HostState(conn, layout)
    live = _live(state, conn.host, request.env)
    record = state.history().deployed(live)
    revision = record.revision if record else None
    if request.new:
        if record is None or service not in record.images:
            raise ExecNotStarted(f"{conn.host}: the history has no deploy record of {live} with the image of "
                                 f"{service}: cannot start a one-off container of it")
        spec = next(s for s in release_containers(env.config, env.settings, env.name, live,
                                                  revision, record.images, layout) if s.service == service)
        rebuilt = _rebuild_env_file(conn, spec, names.container(service, live))
        try:
            _check_files(conn, spec, live)
        except ExecNotStarted:
            if rebuilt:
                conn.run(["rm", "-f", "--", spec.env_file])
            raise
        name = plan.one_off_name(names, service, live, token_source.token_hex(3))
        create, connect, start = plan.one_off(spec, record.images[service], names.release_network(live),
                                              names.network, name, request.command,
                                              names.labels("exec", live, service), interactive=request.interactive)
        try:
            for argv in (create, connect):
                result = conn.run(argv)
                if argv is create and rebuilt:
                    conn.run(["rm", "-f", "--", spec.env_file])  # the container holds its env now
                if not result.ok:
                    raise ExecNotStarted(f"{conn.host}: `{' '.join(argv[:4])} ...` exited {result.rc}: "
                                         f"{redactor(result.stderr.strip() or result.stdout.strip())}")
            return _run_recorded(state, request, service, live, revision, conn, start, output, now)
        finally:
            if rebuilt:
                conn.run(["rm", "-f", "--", spec.env_file])  # a create that failed: still gone
            removed = conn.run(plan.remove(name))
            if not removed.ok and "no such container" not in removed.stderr.lower():  # --rm was first
                warn(f"{conn.host}: the one-off container {name} was not removed: {removed.stderr.strip()}")
    container = names.container(service, live)
    found = conn.run(plan.container_state(container))
    if not found.ok or not found.stdout.startswith("running|"):
        now_state = found.stdout.split("|")[0] if found.ok else "missing"
        raise ExecNotStarted(f"{conn.host}: {container} (the live release's {service}) is not running ({now_state})",
                             hint="`deployctl status` shows the release's containers; --new starts a one-off one")
    argv = plan.live_exec(container, request.command, interactive=request.interactive)
    return _run_recorded(state, request, service, live, revision, conn, argv, output, now)


def _rebuild_env_file(conn, spec, live_container: str) -> bool:  # type: ignore[no-untyped-def]
    """The deploy removed the release's env file once its containers existed: made again on
    the host from the live container's config (plan.env_file_from). True when it was."""
    if not spec.env_file or conn.read_file(spec.env_file) is not None:
        return False
    result = conn.run(plan.env_file_from(live_container, list(spec.secret_env), spec.env_file))
    if not result.ok:
        conn.run(["rm", "-f", "--", spec.env_file])
        raise ExecNotStarted(f"{conn.host}: the env of {live_container} could not be read for the one-off "
                             f"container ({redactor(result.stderr.strip()) or 'no such variables'})",
                             hint="--live runs in the running container")
    return True


def _check_files(conn, spec, live: str) -> None:  # type: ignore[no-untyped-def]
    """The release's env file and secret files are still on the host (they go when the
    release is pruned): a one-off without them would run without its secrets, and docker
    would make a missing mount source an empty directory."""
    wanted = ([spec.env_file] if spec.env_file else []) + [host for host, _ in spec.secret_mounts()]
    missing = [path for path in wanted if conn.read_file(path) is None]
    if missing:
        raise ExecNotStarted(f"{conn.host}: {live}'s secret files are gone ({', '.join(missing)}): "
                             "a one-off container would run without them",
                             hint="deploy again (that writes them), or use --live in the running container")


def _run_recorded(state: HostState, request: ExecRequest, service: str, live: str, revision: str | None,  # type: ignore[no-untyped-def]
                  conn, argv: list[str], output: Output, now: Callable[[], float]) -> int:
    """Runs argv (streamed or on a terminal); records the exec in the history either way."""
    return run_recorded(state, conn, argv, interactive=request.interactive, output=output, record=lambda rc, error:
                        plan.exec_record(release=live, revision=revision, service=service, command=request.command,
                                         mode=request.mode, exit_code=rc, who=who(), now=now(), error=error,
                                         redact=redactor))


def _swarm(env: Env, request: ExecRequest, service: str, output: Output, warn: Warn,  # type: ignore[no-untyped-def]
           connectors: list | None, node_connector: Callable[[str], object] | None, now: Callable[[], float]) -> int:
    """`--live` in a running task of the service: its node from `docker service ps` on the
    manager, reached as SwarmSite reaches nodes, then `docker exec` of the task's container."""
    if request.new:
        raise ExecNotStarted("exec --new is not supported on a Swarm (target = \"swarm\"): use --live, which runs "
                             "in a running task of the service", hint="docs/exec.md, \"Swarm\"")
    if request.all_hosts:
        raise ExecNotStarted("--all-hosts is not supported on a Swarm: --host NODE picks the node of one task")
    manager = (connectors or env.connectors())[0]
    nodes = node_connector or (lambda address: ssh_connector(env.loaded, env.settings, address, env.name))
    names, layout = env.names, env.layout
    try:
        manager.connect()
        state = HostState(manager, layout)
        live = _live(state, manager.host, request.env)
        record = state.history().deployed(live)
        with swarm_task_container(manager, names.container(service, live), request.host, nodes) as (node_conn, container):
            argv = plan.live_exec(container, request.command, interactive=request.interactive)
            return _run_recorded(state, request, service, live, record.revision if record else None, node_conn, argv,
                                 output, now)
    finally:
        manager.close()
