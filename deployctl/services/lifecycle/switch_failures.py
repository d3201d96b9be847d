"""Which failure around the switch gives which outcome, written once for every target's
deploy (a host's HostDeploy, a Swarm's SwarmDeploy): the rules of services/lifecycle/
transaction.py applied to the part of a deploy from the bring-up to the verified record.

- a judge that went back (the shadow window stopped, the canary aborted) raises as it is:
  the judges put the live release back, cleaned up and recorded already (exit 6);
- a switch back that failed (SwitchBackFailed): `uncertain`, recorded best effort (exit 7);
- a route or verify that failed and was switched back (SwitchFailed): `switched back`, what
  the release started goes and it is recorded `reverted`, both best effort (exit 6);
- anything else (a failed start or health check, a signal, a lost connection) happened
  before the switch: the job abandons the release (cleaned up, recorded `failed`; exit 6,
  or 4 for a lost connection named with the host and step: services/lifecycle/host_calls.py);
- after the verified switch, `current` and the record: a failure there leaves the release
  live but the history unsure of it, so the host is `uncertain` (exit 7);
- then a promoted canary's watchdogs go: one that cannot be removed would put the previous
  release back at its deadline, so the previous keeps running and the host is `uncertain`
  (exit 7); the release is never abandoned there (its containers serve).
"""

from __future__ import annotations

from typing import Callable, Protocol, TypeVar

from ...plan.lifecycle.releases import REVERTED, UNCERTAIN
from ..judging.canary import CanaryAborted
from ..judging.shadow import ShadowStopped
from .host_calls import UNKNOWN, mapped
from .switch import SwitchBackFailed, SwitchFailed
from .transaction import LIVE_PHASE, SWITCHED_BACK, best_effort
from .transaction import UNCERTAIN as UNCERTAIN_PHASE


T = TypeVar("T")


class SwitchedJob(Protocol):
    """What the one failure path uses of a target's deploy job."""

    host: str
    phase: str

    def emit(self, event: object) -> None:
        ...

    def clean_up(self) -> None:
        """What the release started on the site, once it will not run there."""


def switch_guarded(job: SwitchedJob, attempt: Callable[[], T], *, record: Callable[[str, str], None],
                   abandon: Callable[[BaseException], BaseException]) -> T:
    """`attempt` (bring up, [judge], route, verify) with the outcome of each failure above.
    `record(outcome, error)`: the release's history line; `abandon(exc)`: before the
    switch, what the release started goes, recorded `failed`; returns the error to raise."""
    try:
        return attempt()
    except (CanaryAborted, ShadowStopped):
        raise  # back on the live release, cleaned up and recorded by the judges already
    except SwitchBackFailed as exc:
        job.phase = UNCERTAIN_PHASE
        why = exc.message
        best_effort(job.emit, job.host, "record", lambda: record(UNCERTAIN, why))
        raise
    except SwitchFailed as exc:
        job.phase = SWITCHED_BACK
        why = exc.message
        best_effort(job.emit, job.host, "clean-up", job.clean_up)
        best_effort(job.emit, job.host, "record", lambda: record(REVERTED, why))
        raise
    except BaseException as exc:
        raise abandon(exc) from None


def record_live(job: SwitchedJob, record: Callable[[], None]) -> None:
    """Switched and verified: `current` and the history say so (`record`), or the host is
    uncertain (a rollback computed from them would be wrong)."""
    try:
        record()
    except BaseException as exc:
        job.phase = UNCERTAIN_PHASE
        raise mapped(job.host, "recording the release (it was verified live)", exc, UNKNOWN) from None
    job.phase = LIVE_PHASE


def after_verified(job: SwitchedJob, disarm: Callable[[], None]) -> None:
    """Switched, verified and recorded: the promoted canary's watchdogs go (`disarm`). One
    that cannot be removed stays armed and, at its deadline, puts the previous release back:
    so nothing is retired (the previous release keeps running for it) and the host is
    `uncertain` (exit 7), never abandoned: the new release's containers serve by then."""
    try:
        disarm()
    except BaseException as exc:
        job.phase = UNCERTAIN_PHASE
        raise mapped(job.host, "removing the canary's watchdog (the release is live and recorded; the previous "
                               "release is kept running, as the watchdog puts it back at its deadline)", exc,
                     UNKNOWN) from None
