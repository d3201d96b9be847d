"""The judges of a Swarm's new release (services/judging/judges.py, written once for every
target) acting on every node's global proxy: the guard reads every node's access log and
its revert puts the configuration from before the switch back on every node; the shadow
window mirrors copies to the new release's service on every node, and the canary splits
every node's traffic (`SwarmCanary`), each by the same staged swap node by node as the
route (services/swarm/swarm_site.route); a gate gives one verdict over every node's log,
each node a row of the board as a host of a fleet's.

The canary's watchdog is a host's (plan/lifecycle/docker_commands.run_canary_watchdog),
started on every node's engine and joined to that node's proxy task: a deployctl killed
during the canary leaves the split for at most `canary_window` + 10 s. Its record
(canary.json) and the decision file of `deploy --promote` / `--abort` are in the manager's
state dir, where `decide` (services/judging/canary.py) finds them for a Swarm environment
(its connector is the manager's); each node's proxy dir holds the live-only copy the
watchdog puts back and the watchdog's `canary-fired` report.

A deployctl killed during either leaves the mirror or the split on the nodes: the next
deploy, under the lock, puts the live release's own configuration back first (`recover`),
rendered from its record, removes the watchdogs and the abandoned release, and records it
`aborted`, so no later switch back restores a mirror or a split.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from ...adapters.connector import check
from ...errors import DeployError
from ...events import Emit, Message, Timer
from ...plan.edge.proxy_config import CONFIG_FILE, LIVE_COPY, live_release, shadow_of
from ...plan.swarm import canary_files
from ...plan.judging.canary import CanaryRecord, CanarySpec, parse_decision
from ...plan.judging.shadow import ShadowSpec
from ...plan.lifecycle import docker_commands as dc
from ...plan.lifecycle.release_spec import ReleaseSpec
from ...plan.lifecycle.releases import ABORTED
from ...plan.swarm import services as sw
from ...plan.swarm.swarm_plan import SwarmPlan, canary_config_for, proxy_config_for, shadow_config_for
from ..judging.canary import CanaryGate
from ..judging.judges import SHADOW_LEFT, JudgedDeploy, Judges, canary_left
from ..judging.watch import ProxyLog
from ..lifecycle.host_calls import why as _why
from ..lifecycle.transaction import release_record
from .swarm_site import NodeProxy, SwarmSite


def put_back(site: SwarmSite, plan: SwarmPlan, config: bytes, port: int) -> None:
    """`config` (what served before this command's switch) on every node, then until every
    node answers from its live release again: the caller removes the new release next. The
    switch's own switch back (swarm_deploy._switch) and the judges' ways back."""
    site.route(plan, config)
    site.wait_answers(live_release(config), port, plan.verify.path)


class NodeJudged:
    """One node's proxy as a gate reads it (services/judging/canary.CanaryGate). `decision`:
    where a decision by hand is read (the canary's first node: the manager's decision file);
    None: none (the shadow window is short and no user is exposed)."""

    def __init__(self, proxy: NodeProxy, release: str, live: ReleaseSpec,
                 decision: Callable[[], tuple[str, str] | None] | None = None) -> None:
        self.host = proxy.conn.host
        self.log = ProxyLog(proxy)  # type: ignore[arg-type]
        self.release, self.live = release, live
        self._decision = decision

    def decision(self) -> tuple[str, str] | None:
        return self._decision() if self._decision is not None else None


class SwarmShadow:
    """The shadow window on every node of a Swarm: mirror, the nodes' logs, the way back."""

    def __init__(self, site: SwarmSite, plan: SwarmPlan, live: ReleaseSpec, spec: ShadowSpec, live_only: bytes,
                 emit: Emit, host: str) -> None:
        self.site, self.plan, self.live, self.spec = site, plan, live, spec
        self.live_only, self.emit, self.host = live_only, emit, host
        self.parts: list[NodeJudged] = []

    @property
    def release(self) -> str:
        return self.plan.target.release

    def mirror(self) -> float:
        """The mirroring configuration on every node; returns when every node serves it. A
        failure puts the live-only configuration back on every node before it is raised."""
        timer = Timer(self.emit, "mirror", host=self.host,
                      detail=f"copies of {'/'.join(self.spec.methods)} requests to {self.release} on every node; "
                             f"{self.live.release} answers")
        config = shadow_config_for(self.plan.target, self.live, self.spec.methods, self.spec.timeout)
        try:
            nodes = self.site.route(self.plan, config)
        except BaseException as exc:
            timer.failed(_why(exc))  # the step's own failure, as a host's mirror says it
            self.site.route(self.plan, self.live_only)
            raise
        self.parts = [NodeJudged(proxy, self.release, self.live) for proxy in self.site.proxies()]
        timer.done(f"{nodes} node{'s' if nodes != 1 else ''}")
        return time.time()

    def judged(self) -> list[NodeJudged]:
        return self.parts

    def back(self) -> None:
        """Stopped: the live-only configuration on every node (staged, tested, swapped)."""
        self.site.route(self.plan, self.live_only)


class SwarmCanary:
    """The canary on every node of a Swarm: the watchdog on each node's engine, the split on
    every node's proxy, the nodes' logs and the manager's decision file, the way back."""

    def __init__(self, site: SwarmSite, plan: SwarmPlan, live: ReleaseSpec, spec: CanarySpec, live_only: bytes,
                 emit: Emit, host: str) -> None:
        self.site, self.plan, self.live, self.spec = site, plan, live, spec
        self.live_only, self.emit, self.host = live_only, emit, host
        self.parts: list[NodeJudged] = []
        self.nodes: list = []  # the nodes' connectors the watchdogs were started on

    @property
    def release(self) -> str:
        return self.plan.target.release

    def split(self) -> float:
        """The watchdog on every ready node, then the split on every node; returns when every
        node serves it. A failure puts the live-only configuration back before it is raised."""
        site, layout = self.site, self.site.layout
        timer = Timer(self.emit, "split", host=self.host,
                      detail=f"{self.spec.share}% to {self.release}, the rest to {self.live.release}, on every node")
        # This release's proxy image first, still live-only (route rolls it over the nodes):
        # a watchdog joined to a task that is then replaced would die with it.
        running = site.manager.run(sw.proxy_image(site.names))
        if running.stdout.strip() != self.plan.target.proxy.image:
            site.route(self.plan, self.live_only)
        site.manager.run(list(canary_files.forget_decision(layout)))
        self._record(time.time())  # before any watchdog: the next deploy finds what this one started
        self.nodes = [site.node(node.address) for node in site.ready_nodes()]
        try:
            # Every node at once (seconds apart one by one on a loaded machine); the deadline
            # recorded is then the last watchdog's, never earlier than one fires.
            with ThreadPoolExecutor(max_workers=max(1, len(self.nodes))) as pool:
                list(pool.map(self._arm, self.nodes))
            self._record(time.time())
            site.route(self.plan, canary_config_for(self.plan.target, self.live, self.spec.share))
        except BaseException as exc:
            timer.failed(_why(exc))  # the step's own failure, as a host's split says it
            self.back()
            raise
        proxies = site.proxies()
        self.parts = [NodeJudged(proxy, self.release, self.live, self.decision if i == 0 else None)
                      for i, proxy in enumerate(proxies)]
        timer.done(f"{len(proxies)} node{'s' if len(proxies) != 1 else ''}; every node's watchdog restores "
                   f"{self.live.release} at 100% in {self.spec.watchdog_seconds}s unless the canary is decided")
        return time.time()

    def _record(self, armed: float) -> None:
        """canary.json on the manager: the watchdogs fire `watchdog_seconds` after `armed`."""
        record = CanaryRecord(self.release, self.live.release, self.spec.share, armed,
                              armed + self.spec.watchdog_seconds, self.site.names.canary_watchdog)
        self.site.manager.put_file(self.site.layout.canary, record.to_json(), 0o644)

    def _arm(self, conn) -> None:  # type: ignore[no-untyped-def]
        """One node's watchdog, joined to its proxy task, with the live-only copy it puts back."""
        layout, names = self.site.layout, self.site.names
        conn.run(list(canary_files.forget_mark(layout)))
        conn.put_file(f"{layout.proxy_dir}/{LIVE_COPY}", self.live_only, 0o644)
        conn.run(dc.remove([names.canary_watchdog]))  # one left by a killed deploy
        task = check(conn, sw.proxy_container(names)).split()
        if not task:
            raise DeployError(f"{conn.host}: no running proxy task for the canary's watchdog to join")
        check(conn, list(self.plan.watchdog_on(task[0])))

    def decision(self) -> tuple[str, str] | None:
        return parse_decision(self.site.manager.read_file(self.site.layout.canary_decision))

    def judged(self) -> list[NodeJudged]:
        return self.parts

    def disarm(self) -> bool:
        """Every node's watchdog goes (after `docker rm -f` returns it cannot fire), then the
        records. True when one had fired."""
        layout, names = self.site.layout, self.site.names
        fired = False
        for conn in self.nodes:
            conn.run(dc.remove([names.canary_watchdog]))
            fired = conn.read_file(layout.canary_fired) is not None or fired
            conn.run(list(canary_files.clear_node(layout)))
        self.site.manager.run(list(canary_files.clear_records(layout)))
        return fired

    def back(self) -> None:
        """Abort: the live-only configuration on every node, then the watchdogs (armed until
        then: if this dies half-way, they still put the live release back)."""
        self.site.route(self.plan, self.live_only)
        self.disarm()


class SwarmJudges(Judges):
    """The shadow window, the canary and the guard of a Swarm's deploy
    (services/swarm/swarm_deploy.SwarmDeploy)."""

    uncertain_hint = "the proxies may not all serve one release: `deployctl status`"

    def __init__(self, deploy: JudgedDeploy, site: SwarmSite, plan: SwarmPlan, port: int,
                 shadow_gate: CanaryGate | None, gate: CanaryGate | None = None) -> None:
        super().__init__(deploy, shadow_gate, gate)
        self.site, self.plan, self.port = site, plan, port
        # The configuration every node served before this deploy touched the proxies (read
        # after the health check): what the shadow window's stop, a failed verify and the
        # guard's revert put back.
        self.live_only: bytes | None = None
        self._mirror: SwarmShadow | None = None
        self._split: SwarmCanary | None = None

    def _guard_spec(self):  # type: ignore[no-untyped-def]
        return self.plan.guard

    def _can_switch_back(self) -> bool:
        return self.deploy.previous is not None and self.live_only is not None

    def _proxies(self) -> list:  # type: ignore[type-arg]
        return self.site.proxies()

    def _put_back(self) -> None:
        assert self.live_only is not None
        put_back(self.site, self.plan, self.live_only, self.port)

    def _live_spec(self) -> ReleaseSpec | None:
        record = self.deploy.state.history().deployed(self.deploy.previous or "")
        return ReleaseSpec.from_dict(record.spec) if record is not None and record.spec else None

    def _shadow_part(self, live: ReleaseSpec) -> SwarmShadow:
        assert self.shadow_gate is not None and self.live_only is not None
        self._mirror = SwarmShadow(self.site, self.plan, live, self.shadow_gate.spec, self.live_only,
                                   self.deploy.emit, self.deploy.host)
        return self._mirror

    def _canary_part(self, live: ReleaseSpec) -> SwarmCanary:
        assert self.gate is not None and self.live_only is not None
        self._split = SwarmCanary(self.site, self.plan, live, self.gate.spec, self.live_only, self.deploy.emit,
                                  self.deploy.host)
        return self._split

    def _serves(self) -> bool:
        path = f"{self.site.layout.proxy_dir}/{CONFIG_FILE}"
        return {live_release(self.site.node(n.address).read_file(path)) for n in self.site.ready_nodes()} \
            == {self.deploy.release}

    def _route_again(self) -> None:
        self.site.route(self.plan, self.plan.proxy_config)

    def _record(self, outcome: str, error: str, extra: dict | None = None) -> None:
        self.deploy.record(outcome, error, extra)  # type: ignore[attr-defined]

    def _drain(self) -> float:
        return self.plan.drain

    def unmirror(self) -> None:
        """A failure (or a signal) during the window or the canary: the live-only
        configuration back (and the canary's watchdogs removed)."""
        if self._split is not None and self._split.nodes:
            self._split.back()
        elif self._mirror is not None and self._mirror.parts:
            self._mirror.back()

    def recover(self) -> None:
        """Under the lock, before anything else changes: a canary or a mirror a killed
        deployctl left on the nodes goes (the live release's own configuration back on
        every node, rendered from its record; the watchdogs removed), its release's
        services are removed, recorded `aborted`."""
        self._recover_canary()
        d, site = self.deploy, self.site
        shadow = shadow_of(site.live_config())
        if shadow is None:
            return
        d.emit(Message(f"a shadow window of {shadow.release} was not decided (deployctl stopped): the proxies still "
                       "copied requests to it; the live release's configuration goes back", level="warning",
                       host=d.host))
        self._route_live(f"the proxies still mirror to {shadow.release}")
        if shadow.release != d.previous:
            self._remove_left(shadow.release, d.previous, SHADOW_LEFT)

    def _recover_canary(self) -> None:
        """The canary a killed deployctl left (its record on the manager): whatever the
        watchdogs did, every node gets the configuration of the release `current` names
        (rendered from its record), then the watchdogs and the records go."""
        d, site, layout = self.deploy, self.site, self.site.layout
        record = CanaryRecord.parse(site.manager.read_file(layout.canary))
        if record is None:
            return
        nodes = [site.node(n.address) for n in site.ready_nodes()]
        fired = sorted({(conn.read_file(layout.canary_fired) or b"").decode().strip() for conn in nodes} - {""})
        d.emit(Message(record.what_happened(now=time.time(), fired=fired[0] if fired else None), level="warning",
                       host=d.host))
        for conn in nodes:
            conn.run(dc.remove([site.names.canary_watchdog]))
        self._route_live(f"a canary of {record.release} was left")
        for conn in nodes:
            conn.run(list(canary_files.clear_node(layout)))
        site.manager.run(list(canary_files.clear_records(layout)))
        if record.release != d.previous:
            self._remove_left(record.release, record.live, canary_left(record.live))

    def _route_live(self, left: str) -> None:
        """The live release's own configuration on every node, rendered from its record
        (what a killed deployctl's mirror or split gives way to)."""
        d = self.deploy
        live = self._live_spec()
        if live is None:
            raise DeployError(f"{d.host}: {left} and the live release {d.previous or '(none)'} has no recorded spec "
                              "to render its configuration from", hint="check the proxies' nginx.conf, then roll back")
        self.site.route(self.plan, proxy_config_for(live))

    def _remove_left(self, release: str, previous: str | None, error: str) -> None:
        """The services, secrets and network of a release a killed deployctl left, recorded."""
        d, site = self.deploy, self.site
        left = [name for name, (of, _, _) in site.services().items() if of == release]
        site.remove_release(release, left)
        site.manager.remove_tree(site.layout.release_secrets(release))
        d.state.record(release_record(release=release, action="deploy", outcome=ABORTED, previous=previous,
                                      error=error))
