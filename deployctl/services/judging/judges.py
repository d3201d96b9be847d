"""What judges a new release around its switch, on any target (docs/release-safety.md): the
shadow window and the canary before the switch and the error-rate guard after it, with the
way back each takes when its verdict says so. Written once for a host (host_judges.HostJudges:
one host's proxy) and a Swarm (services/swarm/swarm_judges.SwarmJudges: every node's global
proxy).

A target gives the judges only what differs (`_proxies`, `_put_back`, `_live_spec`,
`_shadow_part`, `_canary_part`, `_serves`, `_route_again`, `_record`); the order of the way
back, the phases, the records, the errors and their exit codes are this module's, so the
two targets cannot drift apart.
The judges act through the deploy they judge (`JudgedDeploy`): its phase, its clean-up and
its history record stay the transaction's one way of doing them.
"""

from __future__ import annotations

import time
from typing import Callable, Protocol, Sequence

from ...events import Emit, Message, Timer
from ...plan.data.schema import REFUSE as SCHEMA_REFUSE
from ...plan.data.schema import decide as schema_decide
from ...plan.judging.canary import PROMOTE, CanaryVerdict
from ...plan.lifecycle.releases import ABORTED, REVERTED, UNCERTAIN
from ..lifecycle.host_calls import why as _why
from ..lifecycle.host_state import HostState
from ..lifecycle.switch import SwitchBackFailed
from ..lifecycle.transaction import GuardReverted
from .canary import CanaryAborted, CanaryGate
from .shadow import ShadowStopped
from .watch import Guard

# The record of a release whose shadow window a killed deployctl left (on any target).
SHADOW_LEFT = "shadow: deployctl stopped before the shadow window was decided; the next deploy removed the mirror"


def canary_left(live: str) -> str:
    """The record of a release whose canary a killed deployctl left (on any target)."""
    return f"canary: deployctl stopped before it was decided; the watchdog (or this deploy) put {live} back at 100%"


class JudgedDeploy(Protocol):
    """What the judges use of any target's deploy (a host's HostDeploy, a Swarm's SwarmDeploy)."""

    host: str
    emit: Emit
    release: str
    previous: str | None
    phase: str
    state: HostState

    def clean_up(self) -> None:
        ...


class JudgedPart(Protocol):
    """A shadow window (or a canary) begun on a target: `judged()` the parts the gate reads
    (a host: itself; a Swarm: one per node, each its proxy's log), `back()` the live-only
    configuration again."""

    def judged(self) -> Sequence:  # type: ignore[type-arg]
        ...

    def back(self) -> None:
        ...


class CanaryPart(JudgedPart, Protocol):
    """A canary begun on a target (a host: services/judging/canary.HostCanary; a Swarm: every
    node, services/swarm/swarm_judges.SwarmCanary): `split()` arms the watchdog(s), then
    splits (returns when live), `disarm()` removes the watchdog(s) (True when one had
    fired), `back()` puts the live-only configuration back, then disarms."""

    def split(self) -> float:
        ...

    def disarm(self) -> bool:
        ...


class Judges:
    """The shadow window (met with the rollout's other sites at `shadow_gate`; None: off),
    the canary (at `gate`; None: off) and the guard (`guard_spec`; None: off) of one site's
    deploy."""

    # What the user is told to look at when a way back fails (the target's own words).
    uncertain_hint = "the host's state is uncertain: check `deployctl status` and the proxy"

    def __init__(self, deploy: JudgedDeploy, shadow_gate: CanaryGate | None, gate: CanaryGate | None = None) -> None:
        self.deploy = deploy
        self.shadow_gate = shadow_gate  # the shadow window's meeting point (None: none)
        self.gate = gate  # the canary's meeting point (None: no canary)
        self.shadow: CanaryVerdict | None = None  # the shadow window's verdict that passed it
        self.canary: CanaryVerdict | None = None  # the canary's that promoted it
        self.schema_blocked = ""  # the guard could not switch back: why (plan/data/schema.decide)

    # -- what a target gives -------------------------------------------------------------------

    def _guard_spec(self):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def _can_switch_back(self) -> bool:
        """A previous release and the proxy configuration that served it."""
        raise NotImplementedError

    def _proxies(self) -> list:  # type: ignore[type-arg]
        """The proxies whose access logs the guard reads (one verdict over all of them)."""
        raise NotImplementedError

    def _put_back(self) -> None:
        """The configuration from before the switch on every proxy, until the previous
        release answers through each again (the caller removes the new release next)."""
        raise NotImplementedError

    def _live_spec(self):  # type: ignore[no-untyped-def]
        """The live release's recorded spec (its routed service), None without one."""
        raise NotImplementedError

    def _shadow_part(self, live) -> JudgedPart:  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def _canary_part(self, live) -> CanaryPart:  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def _serves(self) -> bool:
        """Whether every proxy routes all the traffic to the new release (after the switch)."""
        raise NotImplementedError

    def _route_again(self) -> None:
        """The switch's configuration on every proxy again (a watchdog fired meanwhile)."""
        raise NotImplementedError

    def _before_canary_abort(self) -> None:
        """What the target says before a canary goes back (a host: the schema it leaves)."""

    def _record(self, outcome: str, error: str, extra: dict | None = None) -> None:
        raise NotImplementedError

    # -- the shadow window (services/judging/shadow.py) ----------------------------------------

    def verdicts(self) -> dict | None:
        """What judged this release before its switch, for its history record."""
        extra = {name: verdict.to_dict() for name, verdict in (("shadow", self.shadow), ("canary", self.canary))
                 if verdict is not None}
        return extra or None

    def judge_shadow(self) -> None:
        """Mirror, meet the other sites, and go on (passed) or back (stopped: raises
        ShadowStopped, recorded `aborted`; SwitchBackFailed when the mirror stays)."""
        d, gate = self.deploy, self.shadow_gate
        if gate is None:
            return
        met = self._meet(gate, "shadow window skipped: no live release here to copy requests from",
                         self._shadow_part, lambda shadow: shadow.mirror())
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
        self._record(ABORTED, f"shadow: {verdict.reason}", {"shadow": verdict.to_dict()})
        raise ShadowStopped(verdict.with_routes(f"{d.host}: shadow window stopped {d.release} before its "
                                                f"switch: {verdict.reason}"),
                            hint=f"{d.previous} answered every user throughout; nothing was switched")

    def _meet(self, gate: CanaryGate, skipped: str, part: Callable, begin: Callable):  # type: ignore[no-untyped-def]
        """What a canary and a shadow window share: skipped (saying `skipped`) without a live
        release; else this site's `part(live)` begun (its proxies changed; the gate left if
        that fails) and then the one verdict of every site. Returns (the part, the verdict)."""
        d = self.deploy
        live = self._live_spec() if self._can_switch_back() else None
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
        return judged, gate.join_all(judged.judged(), since)

    # -- the canary (services/judging/canary.py) -----------------------------------------------

    def judge_canary(self) -> CanaryPart | None:
        """The canary alone (a step of its own where the target runs its switch as steps):
        the promoted canary, None without one; raises CanaryAborted after going back."""
        return self._canary() if self.gate is not None else None

    def leave(self) -> None:
        """This site fails before its split: the other sites do not wait for it."""
        for meeting in (self.gate, self.shadow_gate):
            if meeting is not None:
                meeting.leave(self.deploy.host)

    def promoted(self, canary: CanaryPart) -> None:
        """After the promoted canary's switch is verified: its watchdogs go. Only now: a
        deployctl killed before this leaves them armed, and they put back the release
        `current` still names. Had one fired during the switch (a switch ending right at
        its deadline), the switch's configuration is routed again."""
        d = self.deploy
        if canary.disarm() and not self._serves():
            d.emit(Message("the canary's watchdog fired during the switch: routing again", level="warning",
                           host=d.host))
            self._route_again()

    def _canary(self) -> CanaryPart | None:
        """Split, meet the other sites, and go on to the switch (promote: returns this site's
        canary, its watchdogs still armed) or back (abort: raises)."""
        gate = self.gate
        assert gate is not None
        met = self._meet(gate, "canary skipped: no live release here to share the traffic with",
                         self._canary_part, lambda canary: canary.split())
        if met is None:
            return None
        canary, verdict = met
        if verdict.decision == PROMOTE:
            self.canary = verdict
            return canary
        self._before_canary_abort()
        self._canary_abort(canary, verdict)
        return None  # not reached: the abort raises

    def _canary_abort(self, canary: CanaryPart, verdict: CanaryVerdict) -> None:
        d = self.deploy
        timer = Timer(d.emit, "abort", host=d.host, detail=f"proxy -> {d.previous} only")
        self._back_or_uncertain(timer, canary.back, f"canary: {verdict.reason}; going back",
                                " (its watchdog still puts the live release back at its deadline)",
                                "check `deployctl status` and the proxy")
        d.phase = "aborted"
        timer.done(f"{d.previous} serves 100% again")
        time.sleep(self._drain())  # requests the canary still holds
        d.clean_up()
        self._record(ABORTED, f"canary: {verdict.reason}", {"canary": verdict.to_dict()})
        raise CanaryAborted(verdict.with_routes(f"{d.host}: canary aborted: {verdict.reason}; {d.previous} "
                                                "serves 100% again"),
                            hint="the previous release never stopped serving most of the traffic")

    # -- the error-rate guard after the switch (services/judging/watch.py) ----------------------

    def guarded(self) -> bool:
        """Whether the guard watches after this switch (it is on, and there is a release to
        switch back to); says so when it is on but cannot."""
        d = self.deploy
        if self._guard_spec() is None:
            return False
        if not self._can_switch_back():
            d.emit(Message("guard skipped: no earlier release here to switch back to", host=d.host))
            return False
        return True

    def guard(self, since: float, stopped: Callable[[], bool]) -> None:
        """The guard's watch from `since` over every proxy's log; a revert goes back and
        raises GuardReverted (SwitchBackFailed when going back fails)."""
        d = self.deploy
        spec = self._guard_spec()
        assert spec is not None, "guarded() first"
        guard = Guard(self._proxies(), d.emit, window=spec.window, max_error_rate=spec.max_error_rate,
                      min_requests=spec.min_requests, stopped=stopped, host=d.host)
        verdict = guard.watch(d.release, since=since)
        if verdict.revert:
            self._guard_revert(verdict.reason, verdict.numbers())

    def _guard_revert(self, reason: str, numbers: dict) -> None:
        """Back to the previous release (still running: retire has not run) by a proxy switch,
        then the new release goes, and the history says why, with the numbers."""
        d = self.deploy
        blocked = schema_decide(d.state.history(), d.previous or "", automatic=True)
        if blocked.action == SCHEMA_REFUSE:
            # Old code on a newer schema could do worse than the errors seen: the new release
            # keeps serving; the deploy fires on_revert with this outcome and exits 7.
            self.schema_blocked = f"guard: {reason}; {blocked.message}"
            d.emit(Message(self.schema_blocked, level="error", host=d.host))
            return
        timer = Timer(d.emit, "revert", host=d.host, detail=f"proxy -> {d.previous}")
        decided = time.time()
        self._back_or_uncertain(timer, self._put_back, f"guard: {reason}; switching back", "", self.uncertain_hint)
        switched = time.time() - decided
        d.state.set_current(d.previous or "")
        d.phase = "switched back"
        timer.done(f"{d.previous} serves again ({switched:.2f}s)")
        time.sleep(self._drain())  # requests the new release still holds
        d.clean_up()
        self._record(REVERTED, f"guard: {reason}", {"guard": {**numbers, "switch_back_seconds": round(switched, 3)}})
        raise GuardReverted(f"{d.host}: guard: {reason}; switched back to {d.previous}",
                            hint="the previous release is serving again")

    def _back_or_uncertain(self, timer: Timer, back: Callable[[], None], what: str, note: str, hint: str) -> None:
        """A judge's way back (`back`); when it fails, the release is recorded `uncertain`
        and SwitchBackFailed raised (exit 7): `what` failed, and why."""
        d = self.deploy
        try:
            back()
        except BaseException as exc:
            timer.failed(_why(exc))
            d.phase = "uncertain"
            self._record(UNCERTAIN, f"{what} failed: {_why(exc)}")
            raise SwitchBackFailed(f"{d.host}: {what} failed: {_why(exc)}{note}", hint=hint) from None

    def _drain(self) -> float:
        raise NotImplementedError
