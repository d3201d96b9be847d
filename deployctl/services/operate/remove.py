"""`deployctl remove --env ENV`: the environment taken off every host it runs on (plan/operate/remove.py
says what and in which order), each host under its own deploy lock, so a removal never
races a deploy or rollback of the same app; other apps on the host are never listed, so
never touched.

Hosts (this machine's engine, every SSH host of a fleet) are done in parallel, and a host
that fails (unreachable, its lock held, a command refused) is a value, not a crash: the
others are still removed, and the error names each host that was not, with the exit code
of the first one's failure (4 unreachable, 8 lock held, 6 otherwise). Run again, it does
what was left: every step is found by listing, so a second run that finds nothing says so
and exits 0.

A Swarm is done from its manager (services, secrets, configs, networks) and on each ready
node (the proxy's directory, the accessories' volumes with --volumes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from ...adapters.connector import check
from ...errors import DeployctlError, ExitCode
from ...events import Emit, Message, Timer
from ...plan.lifecycle import docker_commands as dc
from ...plan.operate import remove as plan
from ...plan.edge import shared_proxy as sp
from ...plan.swarm import services as sw
from ...plan.data.accessories import environment_accessories
from ...plan.lifecycle.names import LABEL_APP, LABEL_ENV, Names, StateLayout
from ...plan.edge.shared_proxy import shared_dir
from ...plan.lifecycle.steps import PlannedStep
from ..lifecycle import preflight
from ..lifecycle.host_calls import UNCHANGED, connection_failure, each_host_result, host_error, not_everywhere, why
from ..lifecycle.host_state import HostState
from ..edge.shared_proxy import wait_served
from ..env import Env
from ..lifecycle.transaction import take_lock

MAX_AT_ONCE = 16
STEP_TIMEOUT = 120.0
# A Swarm frees a secret, config, network or volume only once the removed services' tasks
# (and their containers on the nodes) are gone: asked again for this long.
SWARM_FREE_WAIT = 60.0
POLL = 0.5


@dataclass
class HostRemoval:
    host: str
    found: dict = field(default_factory=dict)  # the inventory's to_dict(): what was (or would be) removed
    steps: list[PlannedStep] = field(default_factory=list)
    nothing: bool = False  # the host held nothing of the environment
    error: str | None = None
    exit_code: int = ExitCode.OK

    def to_dict(self) -> dict:
        return {"host": self.host, "removed": self.found, "nothing_to_remove": self.nothing,
                **({"error": self.error} if self.error else {})}


def remove_environment(env: Env, emit: Emit, *, volumes: bool, dry_run: bool = False,
                       connectors: list | None = None) -> list[HostRemoval]:
    """Removes (or, dry, lists the removal of) the environment on each of its hosts. Raises
    RolloutError naming every host that was not removed, after all were tried."""
    environment = env.settings
    if environment.target == "swarm" and connectors is None:
        results = [_swarm(env, emit, volumes=volumes, dry_run=dry_run)]
    else:
        conns = connectors if connectors is not None else env.connectors()
        names, layout = env.names, env.layout
        shared = None
        if environment.shared_proxy:
            proxy = env.config.proxy
            shared = Shared(shared_dir(environment.state_dir, environment.shared_proxy), environment.shared_proxy,
                            environment.shared_proxy_port,
                            sp.Route(names.app, names.env, tuple(proxy.hosts), proxy.path_prefix, 0))

        def one(conn) -> HostRemoval:  # type: ignore[no-untyped-def]
            try:
                return _host(conn, names, layout, emit, environment.rollout, volumes=volumes, dry_run=dry_run,
                             shared=shared)
            except BaseException as exc:  # noqa: BLE001 - one host's failure is its result
                if not isinstance(exc, (DeployctlError, OSError, EOFError)):
                    raise
                return _failed(conn.host, exc)
            finally:
                conn.close()

        results = each_host_result(conns, one, limit=MAX_AT_ONCE)
    failed = [r for r in results if r.error]
    not_everywhere(results, f"remove --env {env.name} did not finish on every host",
                   failed[0].exit_code if failed else ExitCode.OK, done="removed from",
                   again=f"not removed (or not completely) from: {', '.join(r.host for r in failed)}; "
                         "run it again once they answer (it removes what is left)")
    return results


def _failed(host: str, exc: BaseException) -> HostRemoval:
    error = host_error(host, "remove", exc, UNCHANGED) if connection_failure(exc) else exc
    code = error.exit_code if isinstance(error, DeployctlError) else ExitCode.CONNECT
    return HostRemoval(host, error=why(error), exit_code=code)


# -- a host ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shared:
    """The host's shared proxy an environment is routed by (plan/edge/shared_proxy.py)."""

    dir: str
    name: str
    port: int
    route: sp.Route  # its hosts and prefix (the port is not needed to take it out)


def host_inventory(conn, names: Names, layout: StateLayout, *, volumes: bool, state: bool,  # type: ignore[no-untyped-def]
                   shared: Shared | None = None) -> plan.HostInventory:
    """What the host holds of the environment now (`state`: whether its state root exists;
    `shared`: the directory and name of the host's shared proxy it is routed by, if any)."""
    routes: tuple[str, ...] = ()
    running = None
    if shared is not None:
        found = conn.run(["find", f"{shared.dir}/{sp.ROUTES}", "-maxdepth", "1", "-name",
                          sp.route_glob(names.app, names.env), "-type", "f"])
        routes = plan.parse_names(found.stdout) if found.ok else ()
        state_role = conn.run(dc.status_and_role(sp.container_name(shared.name)))
        running = shared.name if state_role.ok and state_role.stdout.startswith("running") else None
    return plan.HostInventory(
        containers=plan.parse_containers(check(conn, dc.list_containers(names))),
        networks=plan.parse_networks(check(conn, dc.release_networks(names))),
        volumes=plan.parse_names(check(conn, plan.list_volumes(names))) if volumes else (),
        state_root=layout.root if state else None, routes=routes, shared_proxy=running if routes else None)


def _host(conn, names: Names, layout: StateLayout, emit: Emit, rollout, *, volumes: bool,  # type: ignore[no-untyped-def]
          dry_run: bool, shared: Shared | None = None) -> HostRemoval:
    preflight.connect(conn, emit)
    existed = conn.run(plan.state_exists(layout)).ok
    state = HostState(conn, layout, emit)
    if not dry_run:
        # Taken before anything is listed: a deploy under way finishes first (or we wait
        # for nobody: LockHeldError, exit 8, this host untouched).
        take_lock(state, emit, host=conn.host, action="remove", release=None, rollout=rollout)
    held = not dry_run
    try:
        found = host_inventory(conn, names, layout, volumes=volumes, state=existed, shared=shared)
        result = HostRemoval(conn.host, found.to_dict(), plan.host_steps(found), nothing=found.empty)
        if dry_run:
            return result
        # The lock made the state root if it was not there: it goes too, as the last step.
        steps = plan.host_steps(replace(found, state_root=layout.root))
        for step in steps:
            timer = Timer(emit, "remove", host=conn.host, detail=step.step)
            check(conn, step.argv or (), timeout=STEP_TIMEOUT)
            if step.step == "state":
                state.removed_with_state()
                held = False
            elif step.step == "routes" and shared is not None and step.argv and step.argv[0] == "docker":
                # The reload is asynchronous: the app's name answered by the shared proxy's
                # own 404 before its proxy goes, never a refused connection.
                wait_served(conn, shared.name, shared.port, shared.route, routed=False)
            elif step.step == "containers" or (step.step == "scheduler" and not any(s.step == "containers" for s in steps)):
                _late_containers(conn, names, emit)
            timer.done(step.detail if step.step != "state" else layout.root)
        if result.nothing:
            emit(Message(f"nothing to remove: no container, network{', volume' if volumes else ''} or state "
                         f"of {names.app} {names.env} here" + ("" if volumes else " (volumes only with --volumes)"),
                         host=conn.host))
        return result
    finally:
        if held:
            _release(state)


def _late_containers(conn, names: Names, emit: Emit) -> None:  # type: ignore[no-untyped-def]
    """A job container the scheduler started between the listing and its removal."""
    late = [n for n, _ in plan.parse_containers(check(conn, dc.list_containers(names)))]
    if late:
        emit(Message(f"removing {len(late)} container(s) started meanwhile: {', '.join(late)}", host=conn.host))
        check(conn, dc.remove(late), timeout=STEP_TIMEOUT)


# -- a Swarm -----------------------------------------------------------------------------------


def _swarm(env: Env, emit: Emit, *, volumes: bool, dry_run: bool) -> HostRemoval:
    from ..swarm.swarm_deploy import SwarmJob

    environment = env.settings
    job = SwarmJob(env, emit)
    label = f"swarm manager {environment.manager}"
    try:
        site, state = job.open()
        return _swarm_site(site, state, env, emit, volumes=volumes, dry_run=dry_run, label=label)
    except (DeployctlError, OSError, EOFError) as exc:
        result = _failed(label, exc)
        return result
    finally:
        job.close()


def _swarm_site(site, state: HostState, env: Env, emit: Emit, *,  # type: ignore[no-untyped-def]
                volumes: bool, dry_run: bool, label: str) -> HostRemoval:
    manager, names, layout = site.manager, site.names, site.layout
    existed = manager.run(plan.state_exists(layout)).ok
    unreachable: dict[str, str] = {}
    # Asked before the lock, which makes the state root on the manager (a node too).
    nodes_with_state: set[str] = set()
    ready = site.ready_nodes()
    for node in ready:
        try:
            if site.node(node.address).run(plan.state_exists(layout)).ok:
                nodes_with_state.add(node.address)
        except (DeployctlError, OSError, EOFError) as exc:
            unreachable[node.address] = why(exc)
    if not dry_run:
        take_lock(state, emit, host=manager.host, action="remove", release=None,
                  rollout=env.settings.rollout)
    held = not dry_run
    try:
        configured = [v for spec in environment_accessories(env.config, env.name, layout) for v, _ in spec.volumes]
        nodes: dict[str, plan.HostInventory] = {}
        for node in ready:
            if node.address in unreachable:
                continue
            try:
                conn = site.node(node.address)
                there = plan.swarm_volumes(configured, check(conn, plan.list_all_volumes()).split()) if volumes else ()
                nodes[node.address] = plan.HostInventory(
                    volumes=there, state_root=layout.root if node.address in nodes_with_state else None)
            except (DeployctlError, OSError, EOFError) as exc:
                unreachable[node.address] = why(exc)
        found = plan.SwarmInventory(
            services=tuple(sorted(line.split("\t")[0] for line in check(manager, sw.list_services(names)).splitlines()
                                  if line.strip())),
            secrets=plan.parse_names(check(manager, sw.list_secrets(names))),
            configs=plan.parse_names(check(manager, sw.list_configs({LABEL_APP: names.app, LABEL_ENV: names.env}))),
            networks=plan.parse_networks(check(manager, dc.release_networks(names))),
            state_root=layout.root if existed else None, nodes=nodes)
        steps = plan.swarm_manager_steps(found) + [
            PlannedStep(f"node {s.step}", f"{address}: {s.detail}", s.argv)
            for address, inv in nodes.items() for s in plan.host_steps(inv)] + (
            [PlannedStep("state", "the manager's state root and the lock (last)", tuple(dc.remove_tree(layout.root)))]
            if existed else [])
        result = HostRemoval(label, found.to_dict(), steps, nothing=found.empty)
        if dry_run:
            return _with_unreachable(result, unreachable)
        for step in plan.swarm_manager_steps(found):
            timer = Timer(emit, "remove", host=manager.host, detail=step.step)
            if step.step == "services":
                check(manager, step.argv or (), timeout=STEP_TIMEOUT)
                _wait_tasks_gone(manager, found.services)
            else:
                _until_free(manager, step.argv or ())
            if step.step == "networks":
                _wait_listed_gone(manager, dc.release_networks(names))
            timer.done(step.detail)
        for address, inv in nodes.items():
            conn = site.node(address)
            try:
                for step in plan.host_steps(inv):
                    timer = Timer(emit, "remove", host=address, detail=step.step)
                    _until_free(conn, step.argv or ())
                    timer.done(step.detail)
            except (DeployctlError, OSError, EOFError) as exc:
                unreachable[address] = why(exc)
        check(manager, dc.remove_tree(layout.root))
        state.removed_with_state()
        held = False
        if result.nothing:
            emit(Message(f"nothing to remove: no service, secret, config, network or state of {names.app} "
                         f"{names.env} on the Swarm", host=manager.host))
        return _with_unreachable(result, unreachable)
    finally:
        if held:
            _release(state)


def _release(state: HostState) -> None:
    """The lock after a failed removal; a failure here (the connection gone) must not hide
    the one being reported."""
    try:
        state.release()
    except (DeployctlError, OSError, EOFError):
        pass


def _with_unreachable(result: HostRemoval, unreachable: dict[str, str]) -> HostRemoval:
    """The nodes that could not be reached or cleaned: named in the error (exit 4)."""
    if unreachable:
        result.error = "not cleaned on node(s): " + "; ".join(f"{a} ({w})" for a, w in unreachable.items())
        result.exit_code = ExitCode.CONNECT
    return result


def _wait_tasks_gone(manager, services: Sequence[str], timeout: float = SWARM_FREE_WAIT) -> None:  # type: ignore[no-untyped-def]
    """`docker service rm` returns at once; the tasks' containers go after it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = manager.run(sw.service_tasks(list(services)))
        if not result.ok or not result.stdout.strip():
            return
        time.sleep(POLL)


def _wait_listed_gone(manager, listing: Sequence[str], timeout: float = SWARM_FREE_WAIT) -> None:  # type: ignore[no-untyped-def]
    """A Swarm's overlay network can still be listed for a moment after its removal returned
    (seen here once): the listing is asked again until it is empty, so that the result says
    what is true."""
    deadline = time.monotonic() + timeout
    while (left := plan.parse_networks(check(manager, listing))) and time.monotonic() < deadline:
        _until_free(manager, dc.network_remove(left))
        time.sleep(POLL)


def _until_free(conn, argv: Sequence[str], timeout: float = SWARM_FREE_WAIT,  # type: ignore[no-untyped-def]
                gone: Callable[[str], bool] = lambda err: all(
                    "no such" in line.lower() or "not found" in line.lower() for line in err.splitlines() if line.strip())
                ) -> None:
    """argv until it succeeds (an object still in use by a task going away), or raises."""
    deadline = time.monotonic() + timeout
    while True:
        result = conn.run(list(argv), timeout=STEP_TIMEOUT)
        if result.ok or (result.stderr.strip() and gone(result.stderr)):
            return
        if time.monotonic() > deadline:
            check(conn, argv)  # raises RemoteCommandError with its stderr
        time.sleep(POLL)
