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

A rollback (a host's HostRollback, a Swarm's SwarmRollbackJob) goes the same way
(`rollback_guarded`): the same phases, records and exit codes; what it abandons is only what
it started (its target's containers stopped again, or its services scaled back to 0), and
its failures are said as the rollback's ("rollback to R failed: ...").
"""

from __future__ import annotations

from typing import Callable, Protocol, TypeVar

from ...errors import DeployctlError, RollbackError
from ...plan.lifecycle.releases import FAILED, REVERTED, UNCERTAIN
from .host_calls import PREVIOUS, UNKNOWN, connection_failure, mapped
from .host_calls import why as _why
from .switch import SwitchBackFailed, SwitchFailed
from .transaction import LIVE_PHASE, SWITCHED_BACK, JudgedBack, best_effort
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
                   abandon: Callable[[BaseException], BaseException],
                   said: Callable[[DeployctlError], BaseException] | None = None) -> T:
    """`attempt` (bring up, [judge], route, verify) with the outcome of each failure above.
    `record(outcome, error)`: the release's history line; `abandon(exc)`: before the
    switch, what the release started goes, recorded `failed`; returns the error to raise.
    `said(exc)`: the error a switched-back failure is raised as (a rollback's own)."""
    try:
        return attempt()
    except JudgedBack:  # the shadow window stopped, the canary aborted
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
        if said is None:
            raise
        raise said(exc) from None
    except BaseException as exc:
        raise abandon(exc) from None


class RolledBackJob(SwitchedJob, Protocol):
    """What `rollback_guarded` uses of a target's rollback job, beside SwitchedJob's."""

    target: str  # the release it rolls back to
    current: str | None  # the release live when it began
    step: str  # the step under way, for a lost connection's message


def rollback_guarded(job: RolledBackJob, attempt: Callable[[], T], *, record: Callable[[str, str], None]) -> T:
    """A rollback's bring-up and switch (`attempt`) with a deploy's outcomes: `uncertain`
    (exit 7) when a switch back failed, `reverted` (exit 6) when its route or verify was
    switched back, `failed` (exit 6) before the switch; `clean_up` is what the rollback
    started (its target stopped again: services back to 0 on a Swarm). The error names the
    rollback and its target; a lost connection is named with the host and step instead."""

    def said(exc: BaseException) -> BaseException:
        if isinstance(exc, DeployctlError):
            return RollbackError(f"rollback to {job.target} failed: {exc.message}",
                                 hint=f"{job.current or 'the release that was live'} should still be serving; "
                                      "check `deployctl status`")
        return exc

    def abandon(exc: BaseException) -> BaseException:
        error = mapped(job.host, f"rollback ({job.step})", exc, PREVIOUS)
        best_effort(job.emit, job.host, "clean-up", job.clean_up)
        best_effort(job.emit, job.host, "record", lambda: record(FAILED, _why(error)))
        return error if connection_failure(exc) else said(error)

    return switch_guarded(job, attempt, record=record, abandon=abandon, said=said)


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
