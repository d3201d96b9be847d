"""What a host's deploy writes of itself on the host: its history lines (one per outcome,
services/lifecycle/transaction.release_record, with what the rollout's migrations found)
and, once the switch is verified, `current` with the live line.

Which outcome is written when is the deploy's (services/lifecycle/deploy.HostDeploy) and
the one failure path's (services/lifecycle/switch_failures.py); here is only how.
"""

from __future__ import annotations

from typing import Protocol

from ...plan.data.schema import BACKUP, SCHEMA
from ...plan.lifecycle.release_spec import ReleaseSpec
from ...plan.lifecycle.releases import LIVE
from ..data.release_schema import ReleaseDatabase
from ..judging.host_judges import HostJudges
from .deploy_result import DeployOptions
from .host_state import HostState
from .switch import HostSwitch
from .transaction import release_record


class RecordedDeploy(Protocol):
    """What the records read of the host's deploy, at the moment each is written."""

    release: str
    previous: str | None
    options: DeployOptions
    spec: ReleaseSpec
    state: HostState
    switch: HostSwitch
    judges: HostJudges
    database: ReleaseDatabase
    started_at: float | None


class DeployRecords:
    """One host's history lines of a deploy (`write`), and `live` once it is verified."""

    def __init__(self, deploy: RecordedDeploy) -> None:
        self.deploy = deploy

    def write(self, outcome: str, previous: str | None, error: str, extra: dict | None = None) -> None:
        d = self.deploy
        known = {k: v for k, v in ((SCHEMA, d.database.schema), (BACKUP, d.database.backup)) if v}
        d.state.record(release_record(release=d.release, action="deploy", outcome=outcome, previous=previous,
                                      error=error, message=d.options.message, spec=d.spec,
                                      started=d.started_at, extra=known | (extra or {})))

    def live(self) -> None:
        """`current` names the release, and its line says what judged it and what moved."""
        d = self.deploy
        d.state.set_current(d.release)
        moved = d.switch.move.record() if d.switch.move is not None else {}
        self.write(LIVE, d.previous, "", extra={**(d.judges.verdicts() or {}), **moved})
