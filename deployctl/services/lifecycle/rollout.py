"""Rolling one change (a deploy, a rollback) across an environment's hosts (docs/fleet.md).

The order is fixed: every host is checked (by the caller, with `on_every_host`), every
host fetches what needs no lock (`before_lock`: a deploy's pulls, so that the lock is held
for the switch and not for the registry), then the lock is taken on every host, every host prepares (pulls, uploads) without touching what it
serves, a first step runs once (migrations), and then hosts switch batch by batch, up to
`rollout.parallel` at once. When more hosts fail than `rollout.max_failures` allows, no
further host starts; hosts already switched go back to what they served (`on_failure =
"revert"`) or stay (`"halt"`). The locks are released on every host whatever happens.

What each host does is a HostJob (services/lifecycle/deploy.py, services/lifecycle/rollback.py); which hosts
go together and what the outcomes mean is plan/lifecycle/rollout.py. Worker threads never raise:
they turn every exception into the host's outcome, so one host cannot hide another's.
A SIGTERM or Ctrl-C lands in the main thread while it waits; it sets a flag the jobs check
between steps, and the rollout then settles like any stopped rollout.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from ...config.models import Rollout as RolloutSettings
from ...errors import DeployctlError, DeployError
from ...events import Emit, Message, StepDone, StepFailed, StepSkipped, StepStarted, Timer
from ...plan.lifecycle import rollout as plan
from .host_calls import attempt, combined, why

WAIT_TICK = 0.2  # how often the main thread wakes while hosts work (to take a signal)


class Interrupted(DeployError):
    """SIGTERM or Ctrl-C arrived; raised from the CLI's signal handler into the deploy."""


class HostJob(Protocol):
    host: str

    def lock(self) -> None: ...

    def prepare(self) -> None:
        """Work that changes nothing the host serves (pull, upload secrets). On failure it
        cleans up after itself and records the failure in the host's history."""

    def run(self) -> str | None:
        """Start, check, switch. Returns an outcome when not plain SUCCEEDED (ALREADY_LIVE)."""

    def failure_outcome(self) -> str:
        """After prepare() or run() raised: FAILED, SWITCHED_BACK or UNCERTAIN."""

    def can_revert(self) -> bool: ...

    def revert(self, why: str) -> None:
        """Back to the release the host served before this rollout (it had switched)."""

    def skip(self, why: str, outcome: str) -> None:
        """The rollout stopped before this host switched: undo prepare(), record `outcome`
        (SKIPPED; FAILED where the migrations ran: the database changed for a release that
        never went live)."""

    def unlock(self) -> None: ...


@dataclass
class HostResult:
    host: str
    outcome: str
    error: str = ""
    seconds: float = 0.0
    exc: BaseException | None = field(default=None, repr=False, compare=False)


class Cancel:
    """Set once (by a signal); jobs call `check()` between steps and stop there."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: Interrupted | None = None

    def set(self, reason: Interrupted) -> None:
        if self.reason is None:
            self.reason = reason
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self.reason is not None:
            # A fresh exception per thread: one instance raised in several threads at once
            # would share (and garble) its traceback.
            raise Interrupted(self.reason.message, hint=self.reason.hint)


_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _hold_signals() -> set | None:
    """Blocks SIGINT and SIGTERM for the calling thread (the worker threads it starts inherit
    that, so the main thread alone takes them); returns the mask to put back. None where the
    platform cannot, or off the main thread (signals never land there)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        return signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
    except (AttributeError, OSError, ValueError):
        return None


def _release_signals(held: set | None) -> None:
    """Puts the mask back: a signal that came meanwhile is delivered now."""
    if held is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _as_interrupt(exc: BaseException) -> Interrupted:
    if isinstance(exc, Interrupted):
        return exc
    return Interrupted("interrupted", hint="the previous release is still serving; the lock was released")


def unexpected(results: dict[str, "HostResult"]) -> BaseException | None:
    """The first host failure that is a bug rather than an expected error: chained to the
    rollout's error so that --debug shows its traceback."""
    return next((r.exc for r in results.values() if r.exc is not None
                 and not isinstance(r.exc, (DeployctlError, KeyboardInterrupt))), None)


class Rollout:
    def __init__(self, jobs: Sequence[HostJob], settings: RolloutSettings, emit: Emit, *, action: str,
                 first_step: Callable[[HostJob], None] | None = None, cancel: Cancel | None = None,
                 before_lock: Callable[[Any], None] | None = None) -> None:
        """`before_lock(job)`: on every host, up to `rollout.parallel` at once, before any
        lock; it must change nothing a host serves and never raise (a failure is the job's
        to report from `prepare`, under the lock, where it can be recorded)."""
        self.jobs, self.settings, self.emit, self.action = list(jobs), settings, emit, action
        self.first_step = first_step
        self.before_lock = before_lock
        self.cancel = cancel or Cancel()
        self.results: dict[str, HostResult] = {}
        self.stop_reason: str | None = None
        self._started: dict[str, float] = {}
        self._first_done = first_step is None

    # -- the whole rollout -------------------------------------------------------------------

    def run(self) -> dict[str, HostResult]:
        """Every host's result, in host order. Raises only when the locks cannot all be taken
        (nothing changed then)."""
        if self.before_lock is not None:
            self._before_lock(self.before_lock)
        locked = self._lock_all()
        try:
            try:
                self._work()
            except (Interrupted, KeyboardInterrupt) as exc:  # a signal outside a wait
                self._interrupted(exc)
            self._settle()
        finally:
            self._unlock(locked)
        return {job.host: self.results[job.host] for job in self.jobs}

    def _before_lock(self, fn: Callable[[Any], None]) -> None:
        """A signal meanwhile sets the cancel flag: the rollout then locks, settles every host
        as skipped (recorded) and unlocks, as a rollout stopped before its first switch."""
        try:
            self._on_all(self.jobs, fn, plan.concurrency(len(self.jobs), self.settings.parallel))
        except (Interrupted, KeyboardInterrupt) as exc:  # a signal outside the wait
            self._interrupted(exc)

    def _lock_all(self) -> list[HostJob]:
        outcomes = self._on_all(self.jobs, lambda job: job.lock(), len(self.jobs))
        locked = [job for job in self.jobs if not isinstance(outcomes[job.host], BaseException)]
        errors = {h: out for h, out in outcomes.items() if isinstance(out, BaseException)}
        if errors:
            self._unlock(locked)
            raise combined(errors)
        return locked

    def _work(self) -> None:
        groups = plan.batches([job.host for job in self.jobs], self.settings.batch)
        for number, group in enumerate(groups, 1):
            for host in group:
                self._started[host] = time.monotonic()
                self.emit(StepStarted(self.action, f"batch {number}/{len(groups)}", host=host))
        prepared = self._on_all(self.jobs, self._prepare, plan.concurrency(len(self.jobs), self.settings.parallel))
        if self._check_stop():
            return
        ready = [job for job in self.jobs if prepared[job.host] is None]
        if not self._first_done and ready:  # the first host could not prepare (tolerated): the next one
            self._on_all(ready[:1], self._first, 1)
            ready = [job for job in ready if job.host not in self.results]
            if self._check_stop():
                return
        by_host = {job.host: job for job in ready}
        for number, group in enumerate(groups, 1):
            jobs = [by_host[h] for h in group if h in by_host]
            if number > 1 and self.settings.pause:
                self.emit(Message(f"pause {self.settings.pause:g}s before batch {number}/{len(groups)}"))
                time.sleep(self.settings.pause)
            self._on_all(jobs, self._switch, plan.concurrency(len(jobs), self.settings.parallel))
            if self._check_stop():
                return

    # -- per host, in worker threads ---------------------------------------------------------

    def _prepare(self, job: HostJob) -> BaseException | None:
        if self.stop_reason or self.cancel.is_set():
            return None
        try:
            self.cancel.check()
            job.prepare()
        except BaseException as exc:  # noqa: BLE001 - the host's outcome
            self._failed(job, exc)
            return exc
        if job is self.jobs[0] and not self._first_done:
            # On the first host as soon as it is ready, while the others still prepare.
            return self._first(job)
        return None

    def _first(self, job: HostJob) -> BaseException | None:
        """The once-per-rollout step (migrations). Its failure stops the rollout whatever
        max_failures says: the release cannot work on any host."""
        try:
            self.cancel.check()
            self.first_step(job)  # type: ignore[misc]
        except BaseException as exc:  # noqa: BLE001 - the host's outcome
            self.stop_reason = self.stop_reason or f"{job.host}: {why(exc)}"
            self._failed(job, exc)
            return exc
        self._first_done = True
        return None

    def _switch(self, job: HostJob) -> None:
        if self.stop_reason or self.cancel.is_set():
            return  # never started: settled as skipped
        try:
            self.cancel.check()
            outcome = job.run() or plan.SUCCEEDED
        except BaseException as exc:  # noqa: BLE001 - the host's outcome
            self._failed(job, exc)
            return
        self.results[job.host] = HostResult(job.host, outcome, seconds=self._elapsed(job.host))

    def _failed(self, job: HostJob, exc: BaseException) -> None:
        self.results[job.host] = HostResult(job.host, job.failure_outcome(), why(exc),
                                            self._elapsed(job.host), exc)
        # Decided here, in the worker, so that hosts still queued in this batch do not start.
        if self.stop_reason is None and plan.should_stop(self._outcomes(), self.settings.max_failures):
            self.stop_reason = f"{job.host}: {why(exc)}"

    # -- waiting, in the main thread ---------------------------------------------------------

    def _on_all(self, jobs: Sequence[HostJob], fn: Callable[[HostJob], Any], workers: int) -> dict[str, Any]:
        """fn on every job, up to `workers` at once, waking regularly so that a signal can
        land; after a signal the waiting goes on (jobs stop at their next check)."""
        if not jobs:
            return {}
        out: dict[str, Any] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rollout") as pool:
            # A signal landing inside pool.submit (Thread.start) escaped before the pool knew
            # of the thread it had started, so nothing waited for that host's work (a
            # migration ran on while the rollout settled as skipped): the signals wait until
            # every worker is started and are then taken inside the loop below.
            held = _hold_signals()
            try:
                futures = {pool.submit(attempt, fn, job): job for job in jobs}
            except BaseException:
                _release_signals(held)
                raise
            pending = set(futures)
            while pending:
                try:
                    _release_signals(held)  # a signal held back lands here, inside the try
                    held = None
                    done, pending = wait(pending, timeout=WAIT_TICK, return_when=FIRST_COMPLETED)
                except (Interrupted, KeyboardInterrupt) as exc:
                    self._interrupted(exc)
                    continue
                for future in done:
                    out[futures[future].host] = future.result()
        return out

    def _interrupted(self, exc: BaseException) -> None:
        interrupt = _as_interrupt(exc)
        self.cancel.set(interrupt)
        if self.stop_reason is None:
            self.stop_reason = interrupt.message
        self.emit(Message(f"{interrupt.message}: stopping the {self.action} at each host's next step",
                          level="warning"))

    def _check_stop(self) -> bool:
        if self.stop_reason is None and self.cancel.is_set() and self.cancel.reason is not None:
            self.stop_reason = self.cancel.reason.message
        return self.stop_reason is not None

    # -- after the last batch ----------------------------------------------------------------

    def _settle(self) -> None:
        """Every host gets an outcome: the ones never reached are skipped; with a stopped
        rollout, the switched ones are reverted or kept."""
        reason = self.stop_reason or "the rollout stopped"
        for job in self.jobs:
            if job.host not in self.results:
                if self.first_step is not None and self._first_done and job is self.jobs[0]:
                    outcome, note = plan.FAILED, f"the migrations ran here, then the {self.action} stopped ({reason})"
                else:
                    outcome, note = plan.SKIPPED, f"the {self.action} stopped before this host ({reason})"
                try:
                    job.skip(note, outcome)
                    self.results[job.host] = HostResult(job.host, outcome, note, self._elapsed(job.host))
                except BaseException as exc:  # noqa: BLE001 - cleaning up a host that never switched
                    self.results[job.host] = HostResult(job.host, outcome, f"{note}; clean-up: {why(exc)}",
                                                        self._elapsed(job.host), exc)
        switched = [job for job in self.jobs if self.results[job.host].outcome == plan.SUCCEEDED]
        incomplete = any(r.outcome not in plan.DONE for r in self.results.values())
        if self.stop_reason is not None and incomplete and switched:
            self.emit(Message(f"the {self.action} stopped ({reason}); {len(switched)} host"
                              f"{'s' if len(switched) != 1 else ''} already switched", level="warning"))
            if self.settings.on_failure == "revert":
                self._revert(switched, reason)
            else:
                for job in switched:
                    self.results[job.host] = HostResult(job.host, plan.KEPT, f"on_failure = halt ({reason})",
                                                        self._elapsed(job.host))
        for job in self.jobs:
            self._report(self.results[job.host])

    def _revert(self, switched: list[HostJob], reason: str) -> None:
        def revert(job: HostJob) -> None:
            if not job.can_revert():
                self.results[job.host] = HostResult(job.host, plan.KEPT, "no earlier release here to go back to",
                                                    self._elapsed(job.host))
                return
            timer = Timer(self.emit, "revert", host=job.host, detail=reason)
            try:
                job.revert(reason)
            except BaseException as exc:  # noqa: BLE001 - the host's outcome
                timer.failed(why(exc))
                self.results[job.host] = HostResult(job.host, plan.UNCERTAIN, f"revert failed: {why(exc)}",
                                                    self._elapsed(job.host), exc)
                return
            timer.done()
            self.results[job.host] = HostResult(job.host, plan.REVERTED, reason, self._elapsed(job.host))

        # Uninterruptible on purpose: the signal handler ignores later signals, and a revert
        # cut short is exactly the uncertain state this step exists to avoid.
        self._on_all(switched, revert, plan.concurrency(len(switched), self.settings.parallel))

    def _report(self, result: HostResult) -> None:
        detail = f"{result.outcome}: {result.error}" if result.error else result.outcome
        if result.outcome in plan.DONE:
            self.emit(StepDone(self.action, detail, round(result.seconds, 3), host=result.host))
        elif result.outcome == plan.SKIPPED:  # the renderers say "skipped" themselves
            self.emit(StepSkipped(self.action, result.error, host=result.host))
        else:
            self.emit(StepFailed(self.action, detail, host=result.host))

    def _unlock(self, jobs: Sequence[HostJob]) -> None:
        outcomes = self._on_all(jobs, lambda job: job.unlock(), len(jobs) or 1)
        for host, out in outcomes.items():
            if isinstance(out, BaseException):
                self.emit(Message(f"could not release the lock: {why(out)}", level="error", host=host))

    def _outcomes(self) -> dict[str, str]:
        return {host: r.outcome for host, r in list(self.results.items())}

    def _elapsed(self, host: str) -> float:
        started = self._started.get(host)
        return round(time.monotonic() - started, 3) if started is not None else 0.0
