"""What a deploy is asked and what it answers, shared by every target's deploy
(services/lifecycle/deploy.py for local and ssh hosts, services/swarm/swarm_deploy.py for a Swarm) and by
`release`: here, so neither deploy module imports the other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...plan.lifecycle.lock import Unlock


@dataclass(frozen=True)
class DeployOptions:
    message: str = ""
    force_unlock: Unlock | bool = False  # True: break a stale lock (plan.lock.Unlock)
    no_guard: bool = False  # --no-guard: skip the error-rate guard after the switch, this once
    canary: int | None = None  # --canary N: this share instead of rollout.canary (0: none), this once
    shadow: float | None = None  # --shadow N: this many seconds instead of rollout.shadow_window (0: none), this once
    hooks: bool = True  # False: --no-hooks (each configured hook is skipped with a warning)
    # The rollout's Cancel (services/lifecycle/rollout.py), for a caller that must know whether an
    # interrupt stopped the deploy whatever error it ended with (a shadow window or canary the
    # interrupt cut short ends "stopped"; a fleet's, with a RolloutError): `deployctl drill`.
    # Hosts only: a Swarm deploy keeps its own (the drill refuses a Swarm).
    cancel: Any = None


@dataclass
class HostOutcome:
    host: str
    release: str
    previous: str | None
    outcome: str
    seconds: float
    error: str = ""


@dataclass
class DeployResult:
    release: str
    revision: str | None
    hosts: list[HostOutcome] = field(default_factory=list)
    # What judged the release before its switch ("shadow", "canary": plan/judging/canary.CanaryVerdict
    # as a dict, with its worst routes), for `--json`.
    verdicts: dict = field(default_factory=dict)
