"""The nets that judge one host's new release around its switch (docs/release-safety.md):
the shadow window and the canary before it, the guard after it, and the recovery of a
window or a canary a killed deployctl left on the host.

Split out of the host's deploy (services/lifecycle/deploy.HostDeploy), which keeps the
lifecycle (prepare, migrate, the switch sequence, the record, the clean-up): the judges only
decide, put the live release back when the verdict says so, and tell the deploy what to
record. They act on the host through the deploy they judge (`JudgedDeploy`), so the phase,
the history record and the clean-up stay the transaction's one way of doing them.
"""

from __future__ import annotations

import time
from typing import Protocol

from ...events import Emit, Message, Timer
from ...plan.data.schema import REFUSE as SCHEMA_REFUSE
from ...plan.data.schema import decide as schema_decide
from ...plan.data.schema import differs as schema_differs
from ...plan.data.schema import schema_of
from ...plan.data.schema import show as show_schema
from ...plan.edge.proxy_config import LIVE_COPY
from ...plan.judging.canary import PROMOTE, CanaryVerdict
from ...plan.lifecycle.names import Names, StateLayout
from ...plan.lifecycle.releases import ABORTED, REVERTED, UNCERTAIN
from ...plan.lifecycle.switch_plan import SwitchPlan
from ..data.release_schema import ReleaseDatabase
from ..lifecycle.host_calls import why as _why
from ..lifecycle.host_state import HostState
from ..lifecycle.switch import HostSwitch, SwitchBackFailed
from ..lifecycle.transaction import GuardReverted, release_record
from .canary import CanaryAborted, CanaryGate, HostCanary, recover
from .shadow import HostShadow, ShadowStopped
from .shadow import recover as recover_shadow
from .watch import Guard


class JudgedDeploy(Protocol):
    """What the judges use of the host's deploy (services/lifecycle/deploy.HostDeploy)."""

    host: str
    conn: object
    emit: Emit
    release: str
    previous: str | None
    phase: str
    plan: SwitchPlan
    switch: HostSwitch
    names: Names
    layout: StateLayout
    state: HostState
    database: ReleaseDatabase
    drain: float

    def recorded_spec(self, release: str):  # type: ignore[no-untyped-def]
        ...

    def clean_up(self) -> None:
        ...

    def record(self, outcome: str, previous: str | None, error: str, extra: dict | None = None) -> None:
        ...


class HostJudges:
    """One host's canary and shadow window (each met with the rollout's other hosts at its
    CanaryGate; None: off) and its guard (the plan's guard spec)."""

    def __init__(self, deploy: JudgedDeploy, gate: CanaryGate | None, shadow_gate: CanaryGate | None) -> None:
        self.deploy = deploy
        self.gate = gate  # the canary's meeting point (None: no canary)
        self.shadow_gate = shadow_gate  # the shadow window's (None: none)
        self.canary: CanaryVerdict | None = None  # the verdict that promoted this release
        self.shadow: CanaryVerdict | None = None  # the shadow window's verdict that passed it
        self.schema_blocked = ""  # the guard could not switch back: why (plan/data/schema.decide)

    @property
    def before_switch(self) -> bool:
        """Whether anything judges the release between its health check and its switch."""
        return self.gate is not None or self.shadow_gate is not None

    def judge(self) -> HostCanary | None:
        """Before the switch: the shadow window, then the canary. Returns the promoted canary
        (its watchdog still armed until `switched`), None without one; raises ShadowStopped or
        CanaryAborted after going back to the live release."""
        self._shadow()
        return self._canary() if self.gate is not None else None

    def leave(self) -> None:
        """This host fails before its split: the other hosts do not wait for it."""
        for meeting in (self.gate, self.shadow_gate):
            if meeting is not None:
                meeting.leave(self.deploy.host)

    def switched(self, promoted: HostCanary | None) -> None:
        """After the switch: the canary's watchdog goes, or the shadow window's live copy."""
        d = self.deploy
        if promoted is not None:
            # Only now: a deployctl killed before this point leaves the watchdog armed, and
            # it puts back the release `current` still names.
            if promoted.disarm() and d.switch.proxy.live_release() != d.release:
                # The watchdog fired during the switch (a switch ending right at its deadline).
                d.emit(Message("the canary's watchdog fired during the switch: routing again", level="warning",
                               host=d.host))
                d.switch.proxy.route(d.plan.proxy, d.plan.proxy_config)
        elif self.shadow is not None:
            d.conn.run(["rm", "-f", f"{d.layout.proxy_dir}/{LIVE_COPY}"])  # type: ignore[attr-defined]

    def verdicts(self) -> dict | None:
        """What judged this release before its switch, for its history record."""
        extra = {name: verdict.to_dict() for name, verdict in (("shadow", self.shadow), ("canary", self.canary))
                 if verdict is not None}
        return extra or None

    def recover(self) -> None:
        """A canary or a shadow window a killed deployctl left here: the live-only proxy
        back, its release's containers removed, recorded `aborted`."""
        d = self.deploy
        record = recover(d.switch, d.names, d.layout, d.emit)
        if record is not None and record.release != d.previous:
            self._remove_left(record.release)
            d.state.record(release_record(
                release=record.release, action="deploy", outcome=ABORTED, previous=record.live,
                error="canary: deployctl stopped before it was decided; the watchdog (or this deploy) put "
                      f"{record.live} back at 100%"))
        release = recover_shadow(d.switch, d.layout, d.emit)
        if release is not None and release != d.previous:
            self._remove_left(release)
            d.state.record(release_record(
                release=release, action="deploy", outcome=ABORTED, previous=d.previous,
                error="shadow: deployctl stopped before the shadow window was decided; the next deploy removed the "
                      "mirror"))

    def _remove_left(self, release: str) -> None:
        d = self.deploy
        d.switch.remove(d.switch.release_containers().get(release, []))
        d.switch.remove_release_networks([release])
        d.conn.remove_tree(d.layout.release_secrets(release))  # type: ignore[attr-defined]

    # -- the shadow window (services/judging/shadow.py) ----------------------------------------

    def _shadow(self) -> None:
        """Mirror, meet the other hosts, and go on (passed) or back (stopped: raises)."""
        d, gate = self.deploy, self.shadow_gate
        if gate is None:
            return
        met = self._meet(gate, "shadow window skipped: no live release here to copy requests from",
                         lambda live: HostShadow(d.switch, d.layout, d.emit, d.plan, live, gate.spec),
                         lambda shadow: shadow.mirror())
        if met is None:
            return
        shadow, verdict = met
        if verdict.decision == PROMOTE:
            self.shadow = verdict
            return
        timer = Timer(d.emit, "stop", host=d.host, detail=f"proxy -> {d.previous} only, no copies")
        try:
            shadow.back()
        except BaseException as exc:
            timer.failed(_why(exc))
            raise SwitchBackFailed(f"{d.host}: shadow: {verdict.reason}; removing the mirror failed: {_why(exc)} "
                                   f"({d.previous} still answers every user)",
                                   hint="check `deployctl status` and the proxy") from None
        d.phase = "aborted"
        timer.done(f"{d.previous} answers every user, as it did throughout")
        d.clean_up()
        d.record(ABORTED, d.previous, f"shadow: {verdict.reason}", extra={"shadow": verdict.to_dict()})
        raise ShadowStopped(verdict.with_routes(f"{d.host}: shadow window stopped {d.release} before its "
                                                f"switch: {verdict.reason}"),
                            hint=f"{d.previous} answered every user throughout; nothing was switched")

    # -- the canary (services/judging/canary.py) -----------------------------------------------

    def _canary(self) -> HostCanary | None:
        """Split, meet the other hosts, and go on to the switch (promote: returns the host's
        canary, its watchdog still armed) or back (abort: raises)."""
        d, gate = self.deploy, self.gate
        assert gate is not None
        met = self._meet(gate, "canary skipped: no live release here to share the traffic with",
                         lambda live: HostCanary(d.switch, d.names, d.layout, d.emit, d.plan, live, gate.spec),
                         lambda canary: canary.split())
        if met is None:
            return None
        canary, verdict = met
        if verdict.decision == PROMOTE:
            self.canary = verdict
            return canary
        self._warn_schema_on_abort()
        self._canary_abort(canary, verdict)
        return None  # not reached: the abort raises

    def _meet(self, gate: CanaryGate, skipped: str, part, begin):  # type: ignore[no-untyped-def]
        """What a canary and a shadow window share: skipped (saying `skipped`) without a live
        release; else this host's `part(live)` begun (its proxy changed; the gate left if that
        fails) and then the one verdict of every host. Returns (the part, the verdict)."""
        d = self.deploy
        live = self._live_spec()
        if live is None:
            gate.leave(d.host)
            d.emit(Message(skipped, host=d.host))
            return None
        judged = part(live)
        try:
            since = begin(judged)
        except BaseException:
            gate.leave(d.host)
            raise
        return judged, gate.join(judged, since)

    def _live_spec(self):  # type: ignore[no-untyped-def]
        """The live release's recorded spec (its routed upstream), None without one."""
        d = self.deploy
        if d.previous is None or d.switch.previous_config is None:
            return None
        return d.recorded_spec(d.previous)

    def _warn_schema_on_abort(self) -> None:
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

    def _canary_abort(self, canary: HostCanary, verdict: CanaryVerdict) -> None:
        d = self.deploy
        timer = Timer(d.emit, "abort", host=d.host, detail=f"proxy -> {d.previous} only")
        try:
            canary.back()
        except BaseException as exc:
            timer.failed(_why(exc))
            d.phase = "uncertain"
            d.record(UNCERTAIN, d.previous, f"canary: {verdict.reason}; going back failed: {_why(exc)}")
            raise SwitchBackFailed(f"{d.host}: canary: {verdict.reason}; going back failed: {_why(exc)} (its "
                                   "watchdog still puts the live release back at its deadline)",
                                   hint="check `deployctl status` and the proxy") from None
        d.phase = "aborted"
        timer.done(f"{d.previous} serves 100% again")
        time.sleep(d.drain)  # requests the canary still holds
        d.clean_up()
        d.record(ABORTED, d.previous, f"canary: {verdict.reason}", extra={"canary": verdict.to_dict()})
        raise CanaryAborted(verdict.with_routes(f"{d.host}: canary aborted: {verdict.reason}; {d.previous} "
                                                "serves 100% again"),
                            hint="the previous release never stopped serving most of the traffic")

    # -- the error-rate guard after the switch (services/judging/watch.py) ----------------------

    def guarded(self) -> bool:
        """Whether the guard watches after this switch (it is on, and there is a release to
        switch back to); says so when it is on but cannot."""
        d = self.deploy
        if d.plan.guard is None:
            return False
        if d.previous is None or d.switch.previous_config is None:
            d.emit(Message("guard skipped: no earlier release here to switch back to", host=d.host))
            return False
        return True

    def guard(self, since: float, stopped) -> None:  # type: ignore[no-untyped-def]
        """The guard's watch from `since`; a revert goes back and raises GuardReverted."""
        d = self.deploy
        spec = d.plan.guard
        assert spec is not None, "guarded() first"
        guard = Guard([d.switch.proxy], d.emit, window=spec.window, max_error_rate=spec.max_error_rate,
                      min_requests=spec.min_requests, stopped=stopped)
        verdict = guard.watch(d.release, since=since)
        if verdict.revert:
            self._guard_revert(verdict.reason, verdict.numbers())

    def _guard_revert(self, reason: str, numbers: dict) -> None:
        """Back to the previous release (still running: retire has not run) by a proxy switch,
        then the new release's containers go, and the history says why, with the numbers."""
        d = self.deploy
        blocked = schema_decide(d.state.history(), d.previous or "", automatic=True)
        if blocked.action == SCHEMA_REFUSE:
            # Old code on a newer schema could do worse than the errors seen: the new release
            # keeps serving; deploy() fires on_revert with this outcome and exits 7.
            self.schema_blocked = f"guard: {reason}; {blocked.message}"
            d.emit(Message(self.schema_blocked, level="error", host=d.host))
            return
        timer = Timer(d.emit, "revert", host=d.host, detail=f"proxy -> {d.previous}")
        decided = time.time()
        try:
            d.switch.put_back(d.plan, d.switch.previous_config)  # and until the previous answers
        except BaseException as exc:
            timer.failed(_why(exc))
            d.phase = "uncertain"
            d.record(UNCERTAIN, d.previous, f"guard: {reason}; switching back failed: {_why(exc)}")
            raise SwitchBackFailed(f"{d.host}: guard: {reason}; switching back failed: {_why(exc)}",
                                   hint="the host's state is uncertain: check `deployctl status` and the proxy") from None
        switched = time.time() - decided
        d.state.set_current(d.previous or "")
        d.phase = "switched back"
        timer.done(f"{d.previous} serves again ({switched:.2f}s)")
        time.sleep(d.drain)  # requests the new release still holds
        d.clean_up()
        d.record(REVERTED, d.previous, f"guard: {reason}",
                 extra={"guard": {**numbers, "switch_back_seconds": round(switched, 3)}})
        raise GuardReverted(f"{d.host}: guard: {reason}; switched back to {d.previous}",
                            hint="the previous release is serving again")
