"""The judges of a Swarm's new release (services/judging/judges.py, written once for every
target) acting on every node's global proxy: the guard reads every node's access log and
its revert puts the configuration from before the switch back on every node; the shadow
window mirrors copies to the new release's service on every node (the same staged swap
node by node as the route, services/swarm/swarm_site.route) and the gate gives one
verdict over every node's log, each node a row of the board as a host of a fleet's.

A deployctl killed during the window leaves the mirror on the nodes (users still get the
live release's answers; the copies only add load): the next deploy, under the lock, puts
the live release's own configuration back first (`recover`), rendered from its record, so
no later switch back restores a mirror.
"""

from __future__ import annotations

import time

from ...errors import DeployError
from ...events import Emit, Message, Timer
from ...plan.edge.proxy_config import live_release, shadow_of
from ...plan.judging.shadow import ShadowSpec
from ...plan.lifecycle.release_spec import ReleaseSpec
from ...plan.lifecycle.releases import ABORTED
from ...plan.swarm.swarm_plan import SwarmPlan, proxy_config_for, shadow_config_for
from ..judging.canary import CanaryGate
from ..judging.judges import SHADOW_LEFT, JudgedDeploy, Judges
from ..judging.watch import ProxyLog
from ..lifecycle.transaction import release_record
from .swarm_site import NodeProxy, SwarmSite


def put_back(site: SwarmSite, plan: SwarmPlan, config: bytes, port: int) -> None:
    """`config` (what served before this command's switch) on every node, then until every
    node answers from its live release again: the caller removes the new release next. The
    switch's own switch back (swarm_deploy._switch) and the judges' ways back."""
    site.route(plan, config)
    site.wait_answers(live_release(config), port, plan.verify.path)


class NodeJudged:
    """One node's proxy as a gate reads it (services/judging/canary.CanaryGate)."""

    def __init__(self, proxy: NodeProxy, release: str, live: ReleaseSpec) -> None:
        self.host = proxy.conn.host
        self.log = ProxyLog(proxy)  # type: ignore[arg-type]
        self.release, self.live = release, live

    def decision(self) -> tuple[str, str] | None:
        return None  # the window is short and no user is exposed: no decision by hand


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
        except BaseException:
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


class SwarmJudges(Judges):
    """The shadow window and the guard of a Swarm's deploy (services/swarm/swarm_deploy.SwarmDeploy)."""

    uncertain_hint = "the proxies may not all serve one release: `deployctl status`"

    def __init__(self, deploy: JudgedDeploy, site: SwarmSite, plan: SwarmPlan, port: int,
                 shadow_gate: CanaryGate | None) -> None:
        super().__init__(deploy, shadow_gate)
        self.site, self.plan, self.port = site, plan, port
        # The configuration every node served before this deploy touched the proxies (read
        # after the health check): what the shadow window's stop, a failed verify and the
        # guard's revert put back.
        self.live_only: bytes | None = None
        self._mirror: SwarmShadow | None = None

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

    def _record(self, outcome: str, error: str, extra: dict | None = None) -> None:
        self.deploy.record(outcome, error, extra)  # type: ignore[attr-defined]

    def _drain(self) -> float:
        return self.plan.drain

    def unmirror(self) -> None:
        """A failure (or a signal) during the window: the live-only configuration back."""
        if self._mirror is not None and self._mirror.parts:
            self._mirror.back()

    def recover(self) -> None:
        """Under the lock, before anything else changes: a mirror a killed deployctl left on
        the nodes goes (the live release's own configuration back on every node, rendered
        from its record), its release's services are removed, recorded `aborted`."""
        d, site = self.deploy, self.site
        shadow = shadow_of(site.live_config())
        if shadow is None:
            return
        d.emit(Message(f"a shadow window of {shadow.release} was not decided (deployctl stopped): the proxies still "
                       "copied requests to it; the live release's configuration goes back", level="warning",
                       host=d.host))
        live = self._live_spec()
        if live is None:
            raise DeployError(f"{d.host}: the proxies still mirror to {shadow.release} and the live release "
                              f"{d.previous or '(none)'} has no recorded spec to render its configuration from",
                              hint="check the proxies' nginx.conf, then roll back")
        site.route(self.plan, proxy_config_for(live))
        left = [name for name, (release, _, _) in site.services().items() if release == shadow.release]
        if shadow.release != d.previous:
            site.remove_release(shadow.release, left)
            site.manager.remove_tree(site.layout.release_secrets(shadow.release))
            d.state.record(release_record(release=shadow.release, action="deploy", outcome=ABORTED,
                                          previous=d.previous, error=SHADOW_LEFT))
