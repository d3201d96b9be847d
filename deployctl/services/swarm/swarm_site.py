"""A Swarm as deployctl drives it: the manager (services, secrets, tasks, nodes) and each
node's proxy (its nginx.conf in the node's state dir, its task reloaded in place).

Only argvs from plan/swarm/services.py and plan/swarm/swarm_plan.py run here; every node is reached with
the same connector settings as the manager (services/hosts.py: ssh_connector), its address
taken from `docker node ls` on the manager.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

from ...adapters.connector import CommandResult, check
from ...errors import ConnectError, DeployError, HealthCheckError, RemoteCommandError
from ...events import Emit, Message, Timer
from ...plan.edge import maintenance
from ...plan.edge.tls_config import TLS_LISTEN_PORT
from ...plan.lifecycle import docker_commands as dc
from ...plan.swarm import services as sw
from ...plan.swarm import swarm_health as sh
from ...plan.lifecycle.names import Names, StateLayout
from ...plan.edge.proxy_config import CONFIG_FILE, CONFIG_PATH, PROXY_MOUNT, STAGED_FILE, live_release
from ...plan.lifecycle.releases import is_release_id
from ...plan.swarm.swarm_plan import SwarmPlan
from ...plan.lifecycle.switch_plan import proxy_move, proxy_swap, proxy_test_staged
from ...secrets import Secret, redactor
from .swarm_health import TaskChecks
from ..lifecycle.switch import SWITCH_BACK_WAIT, HostSwitch
from ..edge.proxy import HostProxy
from ..env import Env

POLL = 0.5
# What a node says when the proxy's `nginx -t` refuses a configuration (the swap and its test alone).
REFUSED = "nginx -t refused the configuration (nothing reloaded)"
UNREAD = object()  # route's `live` not given: read from the nodes
STAGED_PATH = f"{PROXY_MOUNT}/{STAGED_FILE}"  # the staged file as the node's proxy task sees it
T = TypeVar("T")


class SwarmSite:
    def __init__(self, manager, node_connector: Callable[[str], object], names: Names, layout: StateLayout,
                 emit: Emit) -> None:
        self.manager, self.node_connector = manager, node_connector
        self.names, self.layout, self.emit = names, layout, emit
        self._nodes: dict[str, object] = {}  # address -> open connector
        self._nodes_lock = threading.Lock()  # `node` from the prefetch and the switch's threads
        self._node_locks: dict[str, threading.Lock] = {}
        self._prefetch: ThreadPoolExecutor | None = None
        self._prefetched = None  # Future[list[sw.Node]]

    # -- the manager -----------------------------------------------------------------------

    def check_manager(self, attempts: int = 4, pause: float = 1.0) -> str:
        """Refuses a node that is not a Swarm manager; one whose answer is unsettled
        (plan/swarm/services.manager_state) is asked again, up to `attempts` times. Returns
        the engine's version (the same call says it)."""
        for attempt in range(attempts):
            out = self.manager.run(sw.swarm_state(), timeout=30)
            state = sw.manager_state(out.stdout) if out.ok else "no"
            if state == "manager":
                return sw.server_version(out.stdout)
            if state == "no" or attempt == attempts - 1:
                break
            time.sleep(pause)
        raise ConnectError(f"{self.manager.host}: not a Swarm manager (docker info says "
                           f"{out.stdout.strip() or out.stderr.strip()!r})",
                           hint="give a manager node of the Swarm as manager in deploy.toml")

    def nodes(self) -> list[sw.Node]:
        """Every node, listed and inspected in one manager call (plan/swarm/services.inspect_listed_nodes)."""
        return sw.parse_nodes(check(self.manager, sw.inspect_listed_nodes()))

    def ensure_network(self) -> bool:
        if self.manager.run(sw.inspect_network(self.names.network)).ok:
            return False
        check(self.manager, sw.create_network(self.names.network, self.names.labels("network")))
        return True

    def services(self) -> dict[str, tuple[str, str, int]]:
        """Swarm service name -> (release, service, wanted replicas) for this environment's
        release services (the proxy and jobs are not release services). Listed and inspected
        in one manager call (plan/swarm/services.inspect_listed_services)."""
        out = {}
        for line in check(self.manager, sw.inspect_listed_services(self.names)).splitlines():
            parts = line.split("\t")
            # A release label that is no release id is no release of ours (ids become paths prune removes).
            if len(parts) == 4 and is_release_id(parts[1]) and parts[2] and parts[3].isdigit():
                out[parts[0]] = (parts[1], parts[2], int(parts[3]))
        return out

    def tasks(self, services: Sequence[str]) -> list[sw.Task]:
        result = self.manager.run(sw.service_tasks(list(services)), timeout=30)
        return sw.parse_tasks(result.stdout) if result.ok else []

    def create_secrets(self, plan: SwarmPlan, values: dict[str, Secret]) -> int:
        existing = set(check(self.manager, sw.list_secrets(self.names, plan.target.release)).split())
        count = 0
        for name, service, secret in plan.secrets:
            if name in existing:
                continue
            check(self.manager, plan.secret_create(self.names, name, service), stdin=values[secret].reveal().encode())
            count += 1
        return count

    def ensure_release_network(self, release: str, create: Sequence[str]) -> None:
        """The release's own overlay network (plan/swarm/services.py), unless a run that failed
        before its services left it."""
        if not self.manager.run(sw.inspect_network(self.names.release_network(release))).ok:
            check(self.manager, create)

    def remove_release(self, release: str, services: Sequence[str]) -> None:
        """A release's services, secrets and own network (a failed deploy's, or one pruned)."""
        if services:
            self.manager.run(sw.remove_services(list(services)))
        self.remove_secrets(self.manager.run(sw.list_secrets(self.names, release)).stdout.split())
        network = self.names.release_network(release)
        if self.manager.run(sw.inspect_network(network)).ok:
            # One still held after the wait stays (it holds no task; `docker network rm`).
            self._remove_once_free(sw.remove_network(network))

    def remove_secrets(self, secrets: Sequence[str]) -> None:
        if secrets:
            self._remove_once_free(sw.remove_secrets(list(secrets)))

    def _remove_once_free(self, argv: Sequence[str]) -> None:
        """A secret or network stays in use until the removed services' tasks are gone: ask
        again for a few seconds."""
        deadline = time.monotonic() + 20
        while not self.manager.run(argv).ok and time.monotonic() < deadline:
            time.sleep(POLL)

    def run(self, argv: Sequence[str]) -> None:
        check(self.manager, argv, timeout=120)

    def wait_ready(self, wanted: dict[str, int], timeout: float, what: str = "health",
                   checks: TaskChecks | None = None, checkpoint: Callable[[], None] | None = None) -> float:
        """Until every service has its count of running tasks (past their health check in
        the task), and, for a service with an `http`/`tcp` check, each of them passed
        deployctl's own check of it (`checks`, services/swarm/swarm_health.py)."""
        timer = Timer(self.emit, what, host=self.manager.host,
                      detail=", ".join(f"{n}={c}" for n, c in sorted(wanted.items())))
        started = time.monotonic()
        missing: dict[str, tuple[int, int]] = {}
        tasks: list[sw.Task] = []
        checks = checks or TaskChecks(self.manager, self.names, "", "", {}, self.emit)
        before: set[str] | None = None
        try:
            with checks:
                while time.monotonic() - started < timeout:
                    tasks = self.tasks(list(wanted))
                    before = sh.failed_before(tasks) if before is None else before
                    failed = sh.first_crash(tasks, set(wanted), before)
                    if failed is not None:
                        self._task_failed(failed)
                    missing = sw.ready(tasks, wanted)
                    if checks.probes:
                        for name, passed in checks.healthy(tasks).items():
                            if name in wanted and passed < wanted[name] and name not in missing:
                                missing[name] = (passed, wanted[name])
                    if not missing:
                        seconds = time.monotonic() - started
                        checked = f", {sum(wanted[n] for n in checks.probes if n in wanted)} checked by deployctl" \
                            if checks.probes else ""
                        timer.done(f"{sum(wanted.values())} tasks running and healthy{checked} ({seconds:.1f}s)")
                        return seconds
                    if checkpoint is not None:
                        checkpoint()  # a SIGTERM ends the wait at once, as a host's health wait
                    time.sleep(min(POLL, checks.interval))
        except HealthCheckError as exc:
            timer.failed(exc.message.split(": ", 1)[-1])
            raise
        errors = sorted({f"{t.name} on {t.node or '?'}: {t.state}" + (f" ({t.error})" if t.error else "")
                         for t in tasks if t.service in missing and not t.running})[:6]
        errors += sorted({f"{t.name} on {t.node or '?'}: {checks.last_why[t.id]}" for t in tasks
                          if t.id in checks.last_why and t.id not in checks.passed and t.running})[:6]
        short = "; ".join(f"{n}: {r}/{c} running" + (" and checked" if n in checks.probes else "")
                          for n, (r, c) in sorted(missing.items()))
        timer.failed(short, tuple(errors))
        raise HealthCheckError(f"{self.manager.host}: not every task became healthy within {timeout:g}s: {short}",
                               hint="nothing was switched; the previous release is still serving")

    def _task_failed(self, task: sw.Task) -> None:
        """A task of the release failed before every task was healthy: the wait ends now,
        with the task's error (its exit code) and its last log line."""
        logs = self.manager.run(sw.service_logs(task.id, 5, raw=True), timeout=30)
        lines = [line for line in redactor(logs.stdout + logs.stderr).splitlines() if line.strip()] if logs.ok else []
        last = f"; its last log line: {lines[-1].strip()[:300]}" if lines else ""
        why = task.error or (f"{task.state} (it exited, or Swarm stopped it for failing its health check)"
                             if task.complete else task.state)
        raise HealthCheckError(f"{self.manager.host}: {task.name} on {task.node or '?'}: failed before it was "
                               f"healthy: {why}{last}",
                               hint="nothing was switched; the previous release is still serving")

    def task_checks(self, release: str, image: str, probes: dict) -> TaskChecks:
        return TaskChecks(self.manager, self.names, release, image, probes, self.emit)

    def run_job(self, name: str, argv: Sequence[str], timeout: float = 600) -> None:
        """A migration as a replicated job: created, waited for on the manager (one round
        trip: plan/swarm/services.wait_job), its output kept, removed. A leftover of a killed
        run (its name taken) is removed first, only then: one round trip fewer every time."""
        timer = Timer(self.emit, "migrate", host=self.manager.host, detail=name)
        created = self.manager.run(argv)
        if not created.ok and "already exists" in created.stderr:
            self.manager.run(sw.remove_services([name]))  # a leftover of a killed run
            created = self.manager.run(argv)
        if not created.ok:
            raise RemoteCommandError(self.manager.host, argv, created.rc, redactor(created.stderr or created.stdout))
        started = time.monotonic()
        try:
            while time.monotonic() - started < timeout:
                waited = self.manager.run(sw.wait_job(name), timeout=sw.JOB_WAIT + 30)
                tasks = sw.parse_tasks(waited.stdout) if waited.rc in (0, 1) else []
                if any(t.complete for t in tasks):
                    timer.done()
                    return
                if any(t.failed for t in tasks):
                    logs = self.manager.run(sw.service_logs(name, 20, raw=True))
                    output = tuple(redactor(logs.stdout + logs.stderr).strip().splitlines()[-20:])
                    error = next(t.error or t.state for t in tasks if t.failed)
                    timer.failed(error, output)
                    raise DeployError(f"{self.manager.host}: migration job {name} failed: {error}",
                                      hint="nothing was switched; the previous release is still serving")
                if waited.rc not in (0, 1):
                    time.sleep(POLL)  # Swarm did not answer (yet): ask again
            timer.failed(f"not finished within {timeout:g}s")
            raise DeployError(f"{self.manager.host}: migration job {name} did not finish within {timeout:g}s")
        finally:
            self.manager.run(sw.remove_services([name]))

    # -- the nodes' proxies ----------------------------------------------------------------

    def node(self, address: str):  # type: ignore[no-untyped-def]
        with self._nodes_lock:  # one lock per node: a second caller waits for the first's handshake
            lock = self._node_locks.setdefault(address, threading.Lock())
        with lock:
            conn = self._nodes.get(address)
            if conn is None:
                conn = self.node_connector(address)
                conn.connect()
                self._nodes[address] = conn
        return conn

    def ready_nodes(self) -> list[sw.Node]:
        return [n for n in self.nodes() if n.state == "ready"]

    def prefetch_nodes(self) -> None:
        """The ready nodes listed and connected to in the background, while the manager
        takes the lock and prepares (independent round trips: an SSH handshake per node was
        on the switch's critical path). `snapshot` waits for it."""
        def fetch() -> list[sw.Node]:
            nodes = self.ready_nodes()
            _each(nodes, lambda node: self.node(node.address))
            return nodes

        self._prefetch = ThreadPoolExecutor(max_workers=1)
        self._prefetched = self._prefetch.submit(fetch)

    def snapshot(self) -> list[sw.Node]:
        """The ready nodes `prefetch_nodes` listed (else, or if that failed, listed now)."""
        if self._prefetched is not None:
            try:
                return self._prefetched.result()
            except Exception:  # noqa: BLE001 - listed again here, where a failure is the step's
                pass
        return self.ready_nodes()

    def live_config(self, nodes: list[sw.Node] | None = None) -> bytes | None:
        """The proxy configuration the nodes serve now (every node gets the same file; the
        first ready node's copy is the one read back). `nodes`: the switch's snapshot of the
        ready nodes (else listed now)."""
        for node in self.ready_nodes() if nodes is None else nodes:
            return self.node(node.address).read_file(f"{self.layout.proxy_dir}/nginx.conf")
        return None

    def live_release(self) -> str | None:
        return live_release(self.live_config())

    def route(self, plan: SwarmPlan, config: str | bytes, nodes: list[sw.Node] | None = None,
              live: bytes | None | object = UNREAD, resolve: list[str] | None = None,
              running: CommandResult | None = None) -> int:
        """Make every ready node's proxy serve `config`; returns the number of nodes switched.
        `nodes`, `live`: the switch's snapshot of the ready nodes and of what they serve (else
        read now: the judges' ways back). `running`: the proxy service's image as the caller
        just read it (`proxy_image`; else read now). `resolve`: names (`tasks.<service>` of the release
        switched to) each node's proxy waits for Docker's DNS to resolve before any node
        swaps (bounded: plan/swarm/services.wait_resolved), as the gossip reaches nodes apart.

        As on a host (services/edge/proxy.py), the file is staged beside the live one and one
        command on the node tests it, renames it over nginx.conf and reloads: until then the
        live file is untouched, so a deployctl killed in between leaves no node whose next
        load (a restarted proxy task, a rebooted node) takes a release the switch never got
        to, and a file nginx refuses never becomes live. Where no proxy task has read a file
        yet (the proxy service is created now, or a node has none), the file is written as
        nginx.conf directly: its task starts with it."""
        nodes = self.ready_nodes() if nodes is None else nodes
        live = self.live_config(nodes) if live is UNREAD else live
        # Maintenance mode stays as the nodes have it: a deploy or rollback never ends it (as on hosts).
        data = _carried(live, config)
        running = self.proxy_image() if running is None else running
        created = not running.ok
        wanted = plan.target.proxy.image
        if not created and running.stdout.strip() != wanted:
            # Before the new configuration: the replaced tasks start with the live file, and
            # the swap below then reaches nginx of the new image on every node.
            timer = Timer(self.emit, "proxy", host=self.manager.host,
                          detail=f"{running.stdout.strip()} -> {wanted}, one node at a time")
            check(self.manager, sw.update_proxy_image(self.names, wanted), timeout=600)
            timer.done()
        addresses = [n.address for n in nodes]
        if created:
            staged = dict(zip(addresses, _each(nodes, lambda node: self._write(node, data, False))))
            check(self.manager, plan.proxy_service)
            self._wait_proxies(nodes)
            containers = dict(zip(addresses, _each(nodes, lambda node: self._resolved(node, resolve))))
            tested = dict.fromkeys(addresses, False)
        else:
            # The nodes' writes, their proxy tasks' lookups and the manager's look at the
            # proxy tasks at once: independent round trips, one after the other before
            # (issue 26); then each node's DNS wait, which tests the staged file there too
            # (its `docker exec`), so the swap below is a rename and a HUP.
            with ThreadPoolExecutor(max_workers=3 * len(nodes) + 1) as pool:
                proxies = pool.submit(self._wait_proxies, nodes)
                writes = [pool.submit(self._write, node, data, True) for node in nodes]
                lookups = [pool.submit(self._proxy_task, node) for node in nodes]
                waits = [pool.submit(self._resolved_and_tested, node, resolve, write, lookup)
                         for node, write, lookup in zip(nodes, writes, lookups)]
            staged = dict(zip(addresses, [w.result() for w in writes]))
            containers = dict(zip(addresses, [w.result() for w in lookups]))
            tested = dict(zip(addresses, [w.result() for w in waits]))
            proxies.result()
        # All nodes at once, once every node's staged file passed its test (a refusal on one
        # node raised above: no node swapped): the load balancer sends to every node, so the
        # moment they serve different releases is kept as short as the slowest node's reload.
        _each(nodes, lambda node: self._swap(node, staged[node.address], containers[node.address],
                                             tested[node.address]))
        return len(nodes)

    def proxy_image(self) -> CommandResult:
        """The proxy service's image (`docker service inspect`); not ok when there is no proxy
        service yet (the route creates it)."""
        return self.manager.run(sw.proxy_image(self.names))

    def stage(self, nodes: list[sw.Node], config: str | bytes, live: bytes | None) -> dict[str, str]:
        """`config` staged beside every given node's live file (nothing reloads it), each
        node's proxy task looked up, then the staged file tested there (`nginx -t`), all
        nodes at once; returns address -> proxy container for `swap_staged`. A rollback by
        the standby flag stages the target's own configuration this way while its verify
        runs, and swaps it in once verified (services/swarm/swarm_deploy.py): a staged file
        nothing swapped in is what a deployctl killed in a route leaves too."""
        data = _carried(live, config)
        staged_file = f"{self.layout.proxy_dir}/{STAGED_FILE}"
        # Every node serves a file (the flag switched them): staged, no look first. The
        # write (SFTP) and the task's lookup (a command) are independent round trips.
        with ThreadPoolExecutor(max_workers=2 * len(nodes) or 1) as pool:
            writes = [pool.submit(self.node(n.address).put_file, staged_file, data, 0o644) for n in nodes]
            tasks = [pool.submit(self._proxy_task, n) for n in nodes]
        for write in writes:
            write.result()
        containers = {n.address: task.result() for n, task in zip(nodes, tasks)}
        _each(nodes, lambda node: self._tested(node, containers[node.address]))
        return containers

    def _tested(self, node: sw.Node, container: str) -> None:
        self._proxy_command(node, proxy_test_staged(container), REFUSED)

    def swap_staged(self, nodes: list[sw.Node], containers: dict[str, str]) -> None:
        """What `stage` staged and tested made live on every node at once: one command per
        node (rename, HUP), to the proxy task `stage` tested it in."""
        _each(nodes, lambda node: self._proxy_command(node, proxy_move(containers[node.address], self.layout.proxy_dir),
                                                      "the staged configuration was not made live"))

    def _proxy_command(self, node: sw.Node, argv: Sequence[str], failed: str) -> None:
        """One command on the node for its proxy; a failure raises `failed` with what it said."""
        result = self.node(node.address).run(list(argv))
        if not result.ok:
            raise DeployError(f"{node.address}: {failed}: {redactor(result.stderr.strip() or result.stdout.strip())}")

    def _write(self, node: sw.Node, data: bytes, running: bool) -> bool:
        """One node's file: staged when its running proxy read a live one (it swaps it in),
        else written as nginx.conf (its task starts with it). True when staged."""
        conn = self.node(node.address)
        live_file, staged_file = f"{self.layout.proxy_dir}/{CONFIG_FILE}", f"{self.layout.proxy_dir}/{STAGED_FILE}"
        staged = running and conn.read_file(live_file) is not None
        if not staged:  # a node with a live file has its directory: one round trip fewer
            conn.mkdir(self.layout.proxy_dir, mode=0o755)
        conn.put_file(staged_file if staged else live_file, data, 0o644)
        return staged

    def _proxy_task(self, node: sw.Node) -> str:
        container = check(self.node(node.address), sw.proxy_container(self.names)).split()
        if not container:
            raise DeployError(f"{node.address}: no running proxy task to reload")
        return container[0]

    def _resolved(self, node: sw.Node, names: list[str] | None, container: str | None = None) -> str:
        """The node's proxy task, once `names` resolve in it (or the wait's bound passed:
        then routed anyway with a warning, and the verify judges the answers)."""
        container = container or self._proxy_task(node)
        if names:
            timer = Timer(self.emit, "dns", host=node.address, detail=f"{', '.join(names)} on this node")
            result = self.node(node.address).run(sw.wait_resolved(container, names), timeout=sw.RESOLVE_WAIT + 30)
            self._dns_outcome(node, names, result, timer)
        return container

    def _dns_outcome(self, node: sw.Node, names: list[str], result, timer: Timer) -> None:  # type: ignore[no-untyped-def]
        if result.ok:
            timer.done("resolved")
            return
        why = (f"not resolved after {sw.RESOLVE_WAIT:g}s (Docker's DNS gossip): routed anyway, the verify "
               "judges" if result.rc == 1 else
               "the proxy image has no getent to ask Docker's DNS with: not waited for" if
               result.rc == sw.NO_RESOLVER else f"the wait failed: {(result.stderr or result.stdout).strip()}")
        timer.done(why)
        self.warn(f"{node.address}: {', '.join(names)}: {why}")

    def _resolved_and_tested(self, node: sw.Node, names: list[str] | None, write: "Future[bool]",
                             lookup: "Future[str]") -> bool:
        """Once the node's file is written and its proxy task known: with `names`, the DNS
        wait and the staged file's `nginx -t` in one `docker exec` (True: tested, the swap is
        a rename and a HUP); a refusal raises REFUSED here, before any node swaps. Without
        names (a switch back), or a file written as nginx.conf directly: False, the swap
        tests it as before."""
        staged, container = write.result(), lookup.result()
        if not names or not staged:
            self._resolved(node, names, container)
            return False
        timer = Timer(self.emit, "dns", host=node.address, detail=f"{', '.join(names)} on this node")
        result = self.node(node.address).run(sw.wait_resolved_and_test(container, names, STAGED_PATH),
                                             timeout=sw.RESOLVE_WAIT + 30)
        if result.rc == sw.STAGED_REFUSED:
            timer.failed("nginx -t refused the staged configuration")
            raise DeployError(f"{node.address}: {REFUSED}: {redactor(result.stderr.strip() or result.stdout.strip())}")
        self._dns_outcome(node, names, result, timer)
        return sw.TESTED in result.stdout  # else (the exec itself failed) the swap tests it

    def _swap(self, node: sw.Node, staged: bool, container: str | None = None, tested: bool = False) -> None:
        container = container or self._proxy_task(node)
        argv = (proxy_move(container, self.layout.proxy_dir) if tested else proxy_swap(container, self.layout.proxy_dir)) \
            if staged else dc.nginx_test_and_reload(container, CONFIG_PATH)
        self._proxy_command(node, argv, REFUSED if not tested else "the staged configuration was not made live")

    def standby_proxies(self, nodes: list[sw.Node]) -> list[NodeProxy]:
        """The nodes' proxies as a host's (their standby flags: plan/edge/proxy_config.Standby)."""
        return [NodeProxy(self.node(n.address), self.names, self.emit, layout=self.layout) for n in nodes]

    def wait_answers(self, release: str | None, port: int, path: str, timeout: float = SWITCH_BACK_WAIT,
                     nodes: list[sw.Node] | None = None) -> None:
        """After a switch back, until every node's proxy answers from `release` again (as a
        host's switch back waits, services/lifecycle/switch.py): the caller removes the new release's
        tasks next, and requests a node's old workers still held for them would get 502s."""
        if release is None:
            return

        def one(node: sw.Node) -> None:
            switch = HostSwitch(self.node(node.address), self.names, self.layout, self.emit)
            if not switch.answers_from(release, port, path, timeout):
                self.warn(f"{node.address}: the proxy did not answer from {release} within {timeout:g}s "
                          "of the switch back")

        _each(self.ready_nodes() if nodes is None else nodes, one)

    def _wait_proxies(self, nodes: list[sw.Node], timeout: float = 60) -> None:
        """One running proxy task on every node that takes tasks (a global service's)."""
        active = {n.hostname for n in nodes if n.availability == "active"}
        deadline = time.monotonic() + timeout
        while True:
            tasks = [t for t in self.tasks([self.names.proxy]) if t.desired == "Running" and t.running]
            if active <= {t.node for t in tasks}:
                return
            if time.monotonic() > deadline:
                raise DeployError(f"the proxy service runs on {sorted(t.node for t in tasks)}, not on every node "
                                  f"({sorted(active)}) after {timeout:g}s")
            time.sleep(POLL)

    def verify(self, plan: SwarmPlan, port: int, nodes: list[sw.Node] | None = None) -> float:
        """Through every ready node's proxy (as the node itself reaches its published port);
        `nodes`: the switch's snapshot of the ready nodes (else listed now)."""
        def one(node: sw.Node) -> float:
            return HostSwitch(self.node(node.address), self.names, self.layout, self.emit).verify(port, plan.verify)

        return max(_each(self.ready_nodes() if nodes is None else nodes, one), default=0.0)

    def proxies(self) -> list["NodeProxy"]:
        """Every ready node's proxy task, as the guard reads its access log (services/judging/watch.py)."""
        return [NodeProxy(self.node(n.address), self.names, self.emit) for n in self.ready_nodes()]

    def close(self) -> None:
        if self._prefetch is not None:
            self._prefetch.shutdown(wait=True)
            self._prefetch = None
        for conn in self._nodes.values():
            conn.close()
        self._nodes.clear()

    def warn(self, text: str) -> None:
        self.emit(Message(text, level="warning", host=self.manager.host))


class NodeProxy(HostProxy):
    """One node's task of the global proxy service, seen as a host's proxy: the node's
    connector, the container whose stdout is the access log (services/judging/watch.ProxyLog).
    With `layout` (the node's proxy_dir is the layout's, as on hosts), also the configuration
    on the node and its staged swap (HostProxy.replace: maintenance mode) and, with `ports`,
    where the node publishes them (services/edge/tls.py). The anchor of a host's proxy has
    no part here: the task publishes its ports itself."""

    def __init__(self, conn, names: Names, emit: Emit,  # type: ignore[no-untyped-def]
                 ports: dict[int, int] | None = None, layout: StateLayout | None = None) -> None:
        super().__init__(conn, names, layout, emit)  # type: ignore[arg-type]
        self.ports = ports or {}  # port inside the task -> the node's published port (host mode)

    def running_nginx(self) -> str | None:
        result = self.conn.run(sw.proxy_container(self.names), timeout=30)
        return next(iter(result.stdout.split()), None) if result.ok else None

    def port(self, listen_port: int) -> int | None:
        """Where the node publishes the task's `listen_port` (as services/edge/proxy.HostProxy.port
        answers for a host's anchor; services/edge/tls.py asks it)."""
        return self.ports.get(listen_port)


def node_proxies(site: SwarmSite, env: Env) -> tuple[list, list[NodeProxy]]:
    """Every ready node's connector and its proxy task, with the environment's published
    ports (HTTP, and HTTPS where on), as services/edge/tls.py and services/edge/maintenance.py
    take a host's proxy."""
    ports = {env.config.proxy.port: env.proxy_port}
    published = env.tls_port
    if published is not None:
        ports[TLS_LISTEN_PORT] = published
    conns = [site.node(node.address) for node in site.ready_nodes()]
    return conns, [NodeProxy(conn, site.names, site.emit, ports, site.layout) for conn in conns]


def _carried(live: bytes | None, config: str | bytes) -> bytes:
    text = config.decode() if isinstance(config, bytes) else config
    return maintenance.carry(live, text).encode()


def _each(nodes: list[sw.Node], work: Callable[[sw.Node], T]) -> list[T]:
    """`work` on every node at once; the first error (by node order) is raised after all ended."""
    if not nodes:
        return []
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        futures = [pool.submit(work, node) for node in nodes]
    return [future.result() for future in futures]


at_once = _each  # for the nodes' proxies too (services/swarm/swarm_deploy.py: the standby flag)
