"""The release transaction's rules that every target shares (docs/design: "One transaction,
many sites").

A deploy and a rollback go lock -> prepare -> bring up -> [canary] -> route -> verify ->
record -> [guard] -> retire on every target: this machine's engine and SSH hosts
(services/lifecycle/deploy.py, services/lifecycle/rollback.py over services/lifecycle/switch.py) and a Swarm
(services/swarm/swarm_deploy.py over services/swarm/swarm_site.py). What must not differ between them
lives here, once:

- **the lock**: who, from which machine, which process, for what; so a lock whose process
  died is shown STALE on every target (the Swarm's used to record no pid or host, so its
  stale locks could only be broken blind);
- **the record**: one history line per outcome, built the same way for each action;
- **after the verified switch**: retire and prune are best effort. The release is live and
  verified, so their failure is a warning, never the command's failure;
- **the outcome of a failure**: which phase the host was in decides what the rollout (and
  so the exit code, plan/lifecycle/rollout.verdict) says of it;
- **the sequence around the rollout** (`run_transaction`): pre_deploy before any lock,
  pre_migrate before the migrations, post_deploy / post_rollback and on_revert once every
  lock is released. A target builds its jobs (hosts: HostDeploy / HostRollback; a Swarm:
  SwarmDeploy / SwarmRollbackJob) and hands them here; the hooks are wired nowhere else.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any, Callable, Sequence

from ...errors import DeployctlError, DeployError, ExitCode, RollbackError, RolloutError, UncertainError
from ...events import Emit, Message
from ...plan.lifecycle import rollout as outcomes
from ...plan.pipeline.images import PROXY
from ...config.models import Rollout as RolloutSettings
from ...plan.operate.hooks import POST_DEPLOY, POST_ROLLBACK, PRE_DEPLOY, PRE_MIGRATE, HookContext
from ...plan.lifecycle.lock import LockRecord, Unlock, lock_timeout
from ...plan.lifecycle.release_spec import ReleaseSpec
from ...plan.lifecycle.releases import LIVE, REVERTED, ReleaseRecord
from ...plan.timestamps import rfc3339, timing
from .host_calls import UNCHANGED, connection_failure, mapped
from .host_calls import why as _why
from .host_state import HostState
from ..operate.hooks import HookRunner, post_rollout, previous_of
from ..hosts import machine, who
from .rollout import Cancel, HostResult, Rollout

# Where a host was when its part failed -> what the rollout reports for it. "before": nothing
# was switched (failed, exit 6); "switched back": it served the new release for a moment and
# serves the previous one again; "aborted": a canary went back; "uncertain": a switch back
# failed, so what serves is unknown (exit 7).
BEFORE, LIVE_PHASE, SWITCHED_BACK, ABORTED, UNCERTAIN = "before", "live", "switched back", "aborted", "uncertain"
_FAILURE_OUTCOMES = {SWITCHED_BACK: outcomes.SWITCHED_BACK, UNCERTAIN: outcomes.UNCERTAIN, ABORTED: outcomes.ABORTED}


class JudgedBack(DeployError):
    """A judge before the switch (the shadow window stopped, the canary aborted) went back
    to the live release, cleaned up and recorded already (exit 6), on any target. Here, not
    beside the judges: a rollback's failure path (services/lifecycle/switch_failures.py) names it
    without importing them (a rollback has no canary)."""


class GuardReverted(DeployError):
    """The guard saw the new release's error rate cross the limit after its switch and put
    the previous release back (exit 6: the previous release serves), on any target."""


def failure_outcome(phase: str) -> str:
    """The rollout outcome of a host whose part failed in `phase`."""
    return _FAILURE_OUTCOMES.get(phase, outcomes.FAILED)


def deploy_failure(release: str, results: dict, hosts: list, verdict: outcomes.Verdict) -> DeployctlError:
    """The error a deploy that did not reach every host (or its Swarm) ends with. One host
    keeps its own error when that says the same (it names what failed); several get one
    naming each host's outcome."""
    if len(results) == 1:
        exc = next(iter(results.values())).exc
        if isinstance(exc, DeployctlError) and exc.exit_code == verdict.exit_code:
            return exc
    lines = [f"deploy of {release} did not reach every host: {verdict.summary}"]
    lines += [f"{h.host}: {h.outcome}" + (f" ({h.error})" if h.error else "") for h in hosts]
    if verdict.exit_code == ExitCode.DEPLOY_FAILED:
        hint = "every host still serves the release it served before"
    else:
        hint = ("the hosts do not all serve one release, or one is uncertain: `deployctl status --env ...`; "
                "`deployctl rollback --to RELEASE` puts them all on one")
    return RolloutError("\n".join(lines), exit_code=verdict.exit_code, hosts=hosts, hint=hint)


def rollback_failure(target: str, results: dict, hosts: list, verdict: outcomes.Verdict) -> DeployctlError:
    """A failed rollback exits as a failed deploy does (plan/lifecycle/rollout.verdict): 6 when every host
    serves what it served before, 7 when a host is uncertain or the hosts now differ. One host
    keeps its own error (it names the host and what failed; its class carries that code)."""
    if len(results) == 1:
        exc = next(iter(results.values())).exc
        if isinstance(exc, (RollbackError, UncertainError)):
            return exc
    lines = [f"rollback to {target} did not finish: {verdict.summary}"]
    lines += [f"{r.host}: {r.outcome}" + (f" ({r.error})" if r.error else "") for r in results.values()]
    return RolloutError("\n".join(lines), exit_code=verdict.exit_code, hosts=hosts,
                        hint="`deployctl status --env ...` shows what each host serves")


def take_lock(state: HostState, emit: Emit, *, host: str, action: str, release: str | None, message: str = "",
              force: Unlock | bool = False, rollout: RolloutSettings) -> None:
    """The site's deploy lock for `action`, or LockHeldError naming its holder. The record
    says who, from which machine and process, and until when it may be held (`rollout`'s
    windows: plan/lifecycle/lock.lock_timeout), so a lock whose holder died is shown STALE; HostState
    says itself what `force` broke. A connection that fails here failed before anything
    changed (exit 4, the host and step named)."""
    record = LockRecord(who=who(), when=rfc3339(time.time()), action=action, release=release, message=message,
                        pid=os.getpid(), host=machine(), timeout=lock_timeout(rollout))
    try:
        state.acquire(record, force=force)
    except BaseException as exc:
        raise mapped(host, "taking the lock", exc, UNCHANGED) from None


def release_record(*, release: str, action: str, outcome: str, previous: str | None, error: str = "",
                   message: str = "", spec: ReleaseSpec | None = None, started: float | None = None,
                   extra: dict | None = None) -> ReleaseRecord:
    """A history line. With `spec`, the release's revision and images by digest, and, on a
    deploy's record, the spec itself: a rollback runs the release again from that record,
    never from today's deploy.toml. A change that made a release live (or live for a moment,
    then reverted) carries its timing for `deployctl stats`."""
    timed = timing(started, time.time()) if outcome in (LIVE, REVERTED) and started else {}
    return ReleaseRecord(
        release=release, revision=spec.revision if spec is not None else None,
        images=({s.service: s.image for s in spec.services} | {PROXY: spec.proxy.image}) if spec is not None else {},
        action=action, outcome=outcome, who=who(), when=rfc3339(time.time()), message=message,
        previous=previous, error=error, dirty=spec.dirty if spec is not None else False,
        spec=spec.to_dict() if spec is not None and action == "deploy" else {},
        extra=timed | (extra or {}))


def best_effort(emit: Emit, host: str, what: str, call: Callable[[], object]) -> None:
    """A step of a failure path (a clean-up, the failure's record) that must not hide the
    failure it follows: only a lost connection is tolerated (a warning: the host may be gone;
    what is left the next command cleans up); any other error is a bug and raised."""
    try:
        call()
    except BaseException as exc:
        if not connection_failure(exc):
            raise
        emit(Message(f"{what} after the failure did not finish: {_why(exc)}", level="warning", host=host))


def after_switch(emit: Emit, host: str, *steps: Callable[[], None]) -> None:
    """Retire, prune and the like once the new release is live and verified: a failure is
    said as a warning (the next command on the site finishes the job), and the steps after
    it still run; none of them can make the command fail."""
    for step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - live and verified; only the clean-up failed
            emit(Message(f"after the switch: {_why(exc)}", level="warning", host=host))


def run_transaction(action: str, jobs: Sequence, settings: RolloutSettings, emit: Emit, *, cancel: Cancel,
                    hooks: HookRunner, context: HookContext,
                    started: Callable[[Rollout], object] | None = None,
                    before_lock: Callable[[Any], None] | None = None,
                    first_step: Callable[[Any], None] | None = None,
                    ) -> tuple[dict[str, HostResult], outcomes.Verdict]:
    """A deploy's or a rollback's sequence, the same on every target: pre_deploy on this
    machine before any lock (a failing, hanging or killed hook changes nothing); the rollout
    (services/lifecycle/rollout.py: `before_lock` on every site, lock every site, prepare, the first
    step once, the switch batch by batch, the outcome of any failure or signal, unlock); then
    on_revert and post_deploy / post_rollback, after the unlock so no hook can hold a lock.

    `before_lock(job)`: what needs no lock (a deploy's pulls, so the lock is held for the
    switch only). The first step, once under the locks before any switch: a deploy's is
    always pre_migrate and its migrations; a rollback's is `first_step` (`--restore-data`'s
    restore). `started(rollout)` sees the rollout before it runs (a canary or shadow gate
    watches its stop reason). Returns each site's result and the verdict: the caller builds
    its own outcome rows and raises `deploy_failure` / `rollback_failure` when it is not ok."""
    hooks.run(PRE_DEPLOY, context)

    def migrate(job):  # type: ignore[no-untyped-def]
        # A failing pre_migrate is the migration's failure: cleaned up, exit 6.
        return job.migrate(before=lambda: hooks.run(PRE_MIGRATE, context))

    rollout = Rollout(list(jobs), settings, emit, action=action, cancel=cancel, before_lock=before_lock,
                      first_step=migrate if action == "deploy" else first_step)
    if started is not None:
        started(rollout)
    results = rollout.run()
    if action == "deploy":
        # What was live when each site was locked, which a concurrent command may have moved
        # since the hooks' context was made before the lock.
        context = replace(context, previous=previous_of(job.previous for job in jobs) or context.previous)
    post_rollout(hooks, context, [r.outcome for r in results.values()],
                 post=POST_DEPLOY if action == "deploy" else POST_ROLLBACK)
    return results, outcomes.verdict({host: r.outcome for host, r in results.items()})
