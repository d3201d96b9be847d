"""The nets that judge one host's new release around its switch (docs/release-safety.md):
the shadow window and the canary before it, the guard after it, and the recovery of a
window or a canary a killed deployctl left on the host. The shadow window, the canary and
the guard, with their ways back, are the target-neutral Judges' (services/judging/judges.py,
which a Swarm's deploy uses too); this class says how they act on one host.

Split out of the host's deploy (services/lifecycle/deploy.HostDeploy), which keeps the
lifecycle (prepare, migrate, the switch sequence, the record, the clean-up): the judges only
decide, put the live release back when the verdict says so, and tell the deploy what to
record. They act on the host through the deploy they judge (`JudgedDeploy`), so the phase,
the history record and the clean-up stay the transaction's one way of doing them.
"""

from __future__ import annotations

from typing import Protocol

from ...events import Message
from ...plan.data.schema import differs as schema_differs
from ...plan.data.schema import schema_of
from ...plan.data.schema import show as show_schema
from ...plan.edge.proxy_config import LIVE_COPY
from ...plan.lifecycle.names import Names, StateLayout
from ...plan.lifecycle.releases import ABORTED
from ...plan.lifecycle.switch_plan import SwitchPlan
from ..data.release_schema import ReleaseDatabase
from ..lifecycle.switch import HostSwitch
from ..lifecycle.transaction import release_record
from .canary import CanaryGate, HostCanary, recover
from .judges import SHADOW_LEFT, JudgedDeploy, Judges, canary_left
from .shadow import HostShadow
from .shadow import recover as recover_shadow


class JudgedHostDeploy(JudgedDeploy, Protocol):
    """What the host's judges use of the host's deploy (services/lifecycle/deploy.HostDeploy)."""

    conn: object
    plan: SwitchPlan
    switch: HostSwitch
    names: Names
    layout: StateLayout
    database: ReleaseDatabase
    drain: float

    def recorded_spec(self, release: str):  # type: ignore[no-untyped-def]
        ...

    def record(self, outcome: str, previous: str | None, error: str, extra: dict | None = None) -> None:
        ...


class HostJudges(Judges):
    """One host's canary and shadow window (each met with the rollout's other hosts at its
    CanaryGate; None: off) and its guard (the plan's guard spec), written once in the
    target-neutral Judges (services/judging/judges.py); what a killed deployctl left is
    recovered from the host's own files."""

    deploy: JudgedHostDeploy

    def __init__(self, deploy: JudgedHostDeploy, gate: CanaryGate | None, shadow_gate: CanaryGate | None) -> None:
        super().__init__(deploy, shadow_gate, gate)

    # -- what the target-neutral judges ask of a host ------------------------------------------

    def _guard_spec(self):  # type: ignore[no-untyped-def]
        return self.deploy.plan.guard

    def _can_switch_back(self) -> bool:
        return self.deploy.previous is not None and self.deploy.switch.previous_config is not None

    def _proxies(self) -> list:  # type: ignore[type-arg]
        return [self.deploy.switch.proxy]

    def _put_back(self) -> None:
        d = self.deploy
        d.switch.put_back(d.plan, d.switch.previous_config)  # and until the previous answers

    def _live_spec(self):  # type: ignore[no-untyped-def]
        d = self.deploy
        return d.recorded_spec(d.previous) if d.previous is not None else None

    def _shadow_part(self, live) -> HostShadow:  # type: ignore[no-untyped-def]
        d = self.deploy
        assert self.shadow_gate is not None
        return HostShadow(d.switch, d.layout, d.emit, d.plan, live, self.shadow_gate.spec)

    def _record(self, outcome: str, error: str, extra: dict | None = None) -> None:
        self.deploy.record(outcome, self.deploy.previous, error, extra)

    def _drain(self) -> float:
        return self.deploy.drain

    def _canary_part(self, live) -> HostCanary:  # type: ignore[no-untyped-def]
        d = self.deploy
        assert self.gate is not None
        return HostCanary(d.switch, d.names, d.layout, d.emit, d.plan, live, self.gate.spec)

    def _serves(self) -> bool:
        return self.deploy.switch.proxy.live_release() == self.deploy.release

    def _route_again(self) -> None:
        d = self.deploy
        d.switch.proxy.route(d.plan.proxy, d.plan.proxy_config)

    def switched(self, promoted: HostCanary | None) -> None:
        """After the switch: the canary's watchdog goes (Judges.promoted), or the shadow
        window's live copy."""
        d = self.deploy
        if promoted is not None:
            self.promoted(promoted)
        elif self.shadow is not None:
            d.conn.run(["rm", "-f", f"{d.layout.proxy_dir}/{LIVE_COPY}"])  # type: ignore[attr-defined]

    def recover(self) -> None:
        """A canary or a shadow window a killed deployctl left here: the live-only proxy
        back, its release's containers removed, recorded `aborted`."""
        d = self.deploy
        record = recover(d.switch, d.names, d.layout, d.emit)
        if record is not None and record.release != d.previous:
            self._remove_left(record.release)
            d.state.record(release_record(
                release=record.release, action="deploy", outcome=ABORTED, previous=record.live,
                error=canary_left(record.live)))
        release = recover_shadow(d.switch, d.layout, d.emit)
        if release is not None and release != d.previous:
            self._remove_left(release)
            d.state.record(release_record(
                release=release, action="deploy", outcome=ABORTED, previous=d.previous,
                error=SHADOW_LEFT))

    def _remove_left(self, release: str) -> None:
        d = self.deploy
        d.switch.remove(d.switch.release_containers().get(release, []))
        d.switch.remove_release_networks([release])
        d.conn.remove_tree(d.layout.release_secrets(release))  # type: ignore[attr-defined]

    def _before_canary_abort(self) -> None:
        """A canary runs after the migrations, so the live release served most requests on
        the new schema throughout it; going back to 0% changes nothing of that (not refused,
        unlike the guard's switch back), but the user must know (plan/data/schema.py)."""
        d = self.deploy
        old = schema_of(d.state.history(), d.previous or "")
        new = d.database.schema
        if schema_differs(old, new):
            d.emit(Message(f"canary aborted after the migrations changed the schema ({show_schema(new)}; "
                           f"{d.previous} was recorded with {show_schema(old)}): {d.previous} keeps serving "
                           "on the new schema, as it did during the canary", level="warning", host=d.host))
