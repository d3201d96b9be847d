"""The shadow window (issue 27, docs/release-safety.md) on a host: after the new release
passed its health checks and before the switch, the host's proxy keeps answering every user
from the live release and copies live requests of the chosen methods to the new release
(nginx `mirror`, plan/edge/proxy_config.Shadow), through the same staged swap as any route. The
copies' answers are thrown away by nginx and logged stamped with the new release; the hosts
of a rollout meet at one CanaryGate (services/judging/canary.py), which reads every host's log and
gives them all one verdict (plan/judging/shadow.ShadowSpec judges with the canary's verdict). Pass:
the switch replaces the mirroring configuration. Stop: the live-only configuration goes
back, the new release's containers are removed, exit 6; no user ever got its answer.

A deployctl killed during the window leaves users on the live release (the copies only add
load); the next deploy on the host puts the live-only configuration back first (`recover`,
from nginx.live.conf written before the mirror), so no later switch back restores a mirror.
"""

from __future__ import annotations

import time

from ...errors import DeployError
from ...events import Emit, Message, Timer
from ...plan.lifecycle.names import StateLayout
from ...plan.edge.proxy_config import LIVE_COPY, shadow_of
from ...plan.lifecycle.release_spec import ReleaseSpec
from ...plan.judging.shadow import ShadowSpec
from ...plan.lifecycle.switch_plan import SwitchPlan, shadow_config
from .canary import JudgedHost
from ..lifecycle.host_calls import why as _why
from ..lifecycle.switch import HostSwitch
from ..lifecycle.transaction import JudgedBack


class ShadowStopped(JudgedBack):
    """The shadow window's verdict stopped the deploy before its switch: the live release
    never stopped serving, and no user got an answer from the new one (exit 6)."""


class HostShadow(JudgedHost):
    """One host's part of the shadow window, as the gate meets it. No decision by hand: the
    window is short, and no user is exposed meanwhile."""

    def __init__(self, switch: HostSwitch, layout: StateLayout, emit: Emit, plan: SwitchPlan,
                 live: ReleaseSpec, spec: ShadowSpec) -> None:
        super().__init__(switch, emit, plan, live, spec)
        self.layout = layout

    @property
    def live_copy(self) -> str:
        return f"{self.layout.proxy_dir}/{LIVE_COPY}"

    def mirror(self) -> float:
        """The mirroring configuration, staged and swapped in; returns when it is live."""
        live_only = self.switch.previous_config
        if live_only is None:
            raise DeployError(f"{self.host}: the proxy has no configuration to keep the live release on")
        timer = Timer(self.emit, "mirror", host=self.host,
                      detail=f"copies of {'/'.join(self.spec.methods)} requests to {self.release}; "
                             f"{self.live.release} answers")
        # What `recover` puts back if this deployctl dies before the verdict.
        self.conn.put_file(self.live_copy, live_only, 0o644)
        config = shadow_config(self.plan.target, self.live, self.spec.methods, self.spec.timeout)
        try:
            self.switch.proxy.route(self.plan.proxy, config)
        except BaseException as exc:
            # Said as this step's failure: nginx -t refuses a mirror to a release whose
            # container is gone (a crash between two restarts), which is the shadow window
            # catching it before any user got an answer (plan/judging/drill.SETUP_OF_NET).
            timer.failed(_why(exc))
            raise
        timer.done()
        return time.time()

    def back(self) -> None:
        """Stopped: the live-only configuration (tested, renamed, reloaded)."""
        self.switch.proxy.put_back(self.switch.previous_config)
        self.conn.run(["rm", "-f", self.live_copy])


def recover(switch: HostSwitch, layout: StateLayout, emit: Emit) -> str | None:
    """Under the lock, before anything else changes: the mirror a killed deployctl left on
    this host goes (its live-only configuration back). Returns the release it mirrored to,
    for the caller to remove and record; None when there was none."""
    shadow = shadow_of(switch.proxy.live_config())
    if shadow is None:
        return None
    live_only = switch.conn.read_file(f"{layout.proxy_dir}/{LIVE_COPY}")
    emit(Message(f"a shadow window of {shadow.release} was not decided (deployctl stopped): the proxy still copied "
                 "requests to it; the live-only configuration goes back", level="warning", host=switch.conn.host))
    if live_only is None or shadow_of(live_only) is not None:
        raise DeployError(f"{switch.conn.host}: the proxy still mirrors to {shadow.release} and its live-only "
                          f"configuration ({LIVE_COPY}) is missing", hint="deploy again with --force-unlock after "
                          "checking the proxy directory, or roll back")
    switch.proxy.put_back(live_only)
    switch.conn.run(["rm", "-f", f"{layout.proxy_dir}/{LIVE_COPY}"])
    return shadow.release
