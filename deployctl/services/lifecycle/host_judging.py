"""Where a host's deploy meets its judges (services/judging/host_judges.HostJudges, which
decide and put the live release back): the shadow window's and the canary's steps between
the health check and the switch, the canary that promoted (its watchdog armed until the
switch is verified and recorded), and the guard's step after the record, with what is
retired beside its watch.

The deploy (services/lifecycle/deploy.HostDeploy) says where these steps go in its sequence
and what a failure around them means (services/lifecycle/switch_failures.py).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Protocol

from ...plan.lifecycle.steps import Step
from ...plan.lifecycle.switch_plan import SwitchPlan, canary_file_rows
from ..env import Env
from ..judging.canary import HostCanary
from ..judging.host_judges import HostJudges
from .rollout import Cancel

GUARD_HOLD_MARGIN = 60.0  # seconds the previous release is kept warm beyond a guard's watch


class JudgedSwitch(Protocol):
    """What the judges' steps use of the host's deploy: `started_at` when its switch
    sequence began, `switched` when the verified switch ended."""

    env: Env
    plan: SwitchPlan
    judges: HostJudges
    cancel: Cancel
    started_at: float | None
    switched: float


class HostJudging:
    """The judges' steps of one host's deploy; `retire(warm_window)` retires and prunes
    (the deploy's, best effort), here beside the guard's watch."""

    def __init__(self, deploy: JudgedSwitch, retire: Callable[[float], None]) -> None:
        self.deploy = deploy
        self.retire = retire
        self.promoted: HostCanary | None = None  # the canary that promoted: its watchdog armed until recorded
        self.guard_watched = False  # the guard watched (and the releases but the previous were retired beside it)

    def before_switch(self) -> list[Step]:
        """[the shadow window], [the canary]: between the health check and the switch. Each
        raises (ShadowStopped, CanaryAborted) once the live release is back."""
        d = self.deploy
        steps = []
        if d.plan.shadow is not None:
            steps.append(Step("shadow", tuple(d.plan.shadow_rows()), d.judges.judge_shadow))
        if d.plan.canary is not None:
            steps.append(Step("canary", (*d.plan.canary_rows(), *canary_file_rows(d.env.layout)), self._canary))
        return steps

    def after_record(self) -> list[Step]:
        """[the guard]: after the record, before the retire."""
        plan = self.deploy.plan
        return [Step("guard", tuple(plan.guard_rows()), self._guard)] if plan.guard is not None else []

    def switched_back(self) -> None:
        """The switch went back to the live-only configuration: a promoted canary's watchdog
        has nothing left to put back."""
        if self.promoted is not None:
            self.promoted.disarm()

    def _canary(self) -> None:
        self.promoted = self.deploy.judges.judge_canary()

    def _guard(self) -> None:
        """Beside the guard's watch, every release but this one and the previous is retired
        (the guard's revert needs only the previous, still running); the previous then
        follows the warm window as after any switch (HostDeploy's retire step). A guarded
        deploy used to pay the drain, the stop and the prune after its watch (issue 15:
        deploy wall time)."""
        d = self.deploy
        if not d.judges.guarded():
            return
        assert d.plan.guard is not None
        self.guard_watched = True
        warm_window = d.env.settings.rollout.warm_window
        with ThreadPoolExecutor(max_workers=1) as pool:
            # Kept running for the watch at least; a deployctl killed during it leaves the
            # previous warm for this long, and the next command on the host stops it.
            early = pool.submit(self.retire, max(warm_window, d.plan.guard.window + GUARD_HOLD_MARGIN))
            try:
                # From the switch when the new release had answers in the log before it (a
                # canary's, the shadow window's copies): the guard judges what users got.
                judged_before = d.judges.canary or d.judges.shadow
                d.judges.guard(since=d.switched if judged_before else d.started_at or d.switched,
                               stopped=d.cancel.is_set)
            finally:
                early.result()
