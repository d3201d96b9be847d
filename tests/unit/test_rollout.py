"""The rollout orchestrator (services/lifecycle/rollout.py) with scripted host jobs: the order of
locks, switches, reverts and unlocks, batching and concurrency, stopping, halt vs revert,
interrupts, and one final event per host. No hosts, no threads left behind."""

from __future__ import annotations

import threading
import time

import pytest

from deployctl.config.models import Rollout as Settings
from deployctl.errors import ConnectError, ExitCode, LockHeldError
from deployctl.events import Message, Recorder, StepDone, StepFailed, StepSkipped, StepStarted
from deployctl.plan.lifecycle import rollout as plan
from deployctl.services.lifecycle.host_calls import on_every_host
from deployctl.services.lifecycle.rollout import Interrupted, Rollout


class Log:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[tuple[str, str]] = []
        self.running = 0
        self.most_running = 0

    def add(self, what: str, host: str) -> None:
        with self.lock:
            self.entries.append((what, host))

    def index(self, what: str, host: str) -> int:
        return self.entries.index((what, host))

    def hosts(self, what: str) -> list[str]:
        return [h for w, h in self.entries if w == what]


class Job:
    def __init__(self, host: str, log: Log, *, fail: str | None = None, lock_error: Exception | None = None,
                 revert_error: Exception | None = None, previous: str | None = "R1", delay: float = 0.0,
                 during_switch=None, prepare_delay: float = 0.0) -> None:  # type: ignore[no-untyped-def]
        self.host, self.log, self.fail, self.lock_error = host, log, fail, lock_error
        self.revert_error, self.previous, self.delay, self.during_switch = revert_error, previous, delay, during_switch
        self.prepare_delay = prepare_delay

    def lock(self) -> None:
        if self.lock_error:
            raise self.lock_error
        self.log.add("lock", self.host)

    def prepare(self) -> None:
        self.log.add("prepare", self.host)
        time.sleep(self.prepare_delay)
        if self.fail == "prepare":
            raise ConnectError(f"{self.host}: pull failed")
        self.log.add("prepared", self.host)

    def run(self) -> None:
        self.log.add("switch", self.host)
        with self.log.lock:
            self.log.running += 1
            self.log.most_running = max(self.log.most_running, self.log.running)
        try:
            time.sleep(self.delay)
            if self.during_switch:
                self.during_switch()
            if self.fail in ("health", "switch back", "uncertain"):
                raise ConnectError(f"{self.host}: {self.fail}")
        finally:
            with self.log.lock:
                self.log.running -= 1

    def failure_outcome(self) -> str:
        return {"switch back": plan.SWITCHED_BACK, "uncertain": plan.UNCERTAIN}.get(self.fail or "", plan.FAILED)

    def can_revert(self) -> bool:
        return self.previous is not None

    def revert(self, why: str) -> None:
        self.log.add("revert", self.host)
        if self.revert_error:
            raise self.revert_error

    def skip(self, why: str, outcome: str) -> None:
        self.log.add(f"skip {outcome}", self.host)

    def unlock(self) -> None:
        self.log.add("unlock", self.host)


def run(jobs, **settings):  # type: ignore[no-untyped-def]
    recorder = Recorder()
    rollout = Rollout(jobs, Settings(**settings), recorder, action="deploy")
    return rollout, {h: r.outcome for h, r in rollout.run().items()}, recorder


def test_all_hosts_at_once_every_lock_before_any_switch_and_every_unlock_after():
    log = Log()
    _, results, recorder = run([Job(h, log, delay=0.2) for h in "abc"])
    assert results == {"a": plan.SUCCEEDED, "b": plan.SUCCEEDED, "c": plan.SUCCEEDED}
    assert log.most_running == 3  # parallel defaults to every host
    last_lock = max(log.index("lock", h) for h in "abc")
    assert all(log.index("switch", h) > last_lock for h in "abc")
    assert min(log.index("unlock", h) for h in "abc") > max(log.index("switch", h) for h in "abc")
    started = [e.host for e in recorder.of(StepStarted) if e.step == "deploy"]
    done = [e.host for e in recorder.of(StepDone) if e.step == "deploy"]
    assert sorted(started) == sorted(done) == ["a", "b", "c"]


def test_parallel_bounds_the_hosts_working_at_once():
    log = Log()
    _, results, _ = run([Job(h, log, delay=0.15) for h in "abcd"], parallel=2)
    assert set(results.values()) == {plan.SUCCEEDED} and log.most_running == 2


def test_batches_run_one_after_another_with_the_pause_between_them_only():
    log = Log()
    started = time.monotonic()
    _, results, recorder = run([Job(h, log) for h in "abc"], batch=2, pause=0.3)
    assert set(results.values()) == {plan.SUCCEEDED}
    assert time.monotonic() - started >= 0.3
    assert [e.text for e in recorder.of(Message)] == ["pause 0.3s before batch 2/2"]  # none after the last
    assert [e.detail for e in recorder.of(StepStarted) if e.step == "deploy"] == ["batch 1/2", "batch 1/2", "batch 2/2"]


def test_a_failed_host_stops_the_rollout_and_the_switched_hosts_are_reverted():
    log = Log()
    rollout, results, recorder = run([Job("a", log), Job("b", log, fail="health"), Job("c", log)], batch=1)
    assert results == {"a": plan.REVERTED, "b": plan.FAILED, "c": plan.SKIPPED}
    assert log.hosts("switch") == ["a", "b"] and log.hosts("revert") == ["a"] and log.hosts("skip skipped") == ["c"]
    assert sorted(log.hosts("unlock")) == ["a", "b", "c"]
    assert rollout.stop_reason == "b: b: health"
    assert plan.verdict(results).exit_code == ExitCode.DEPLOY_FAILED
    finals = {e.host: type(e) for e in recorder.events if getattr(e, "step", "") == "deploy"
              and not isinstance(e, StepStarted)}
    assert finals == {"a": StepFailed, "b": StepFailed, "c": StepSkipped}


def test_halt_keeps_the_switched_hosts_and_says_so():
    log = Log()
    _, results, recorder = run([Job("a", log), Job("b", log, fail="health"), Job("c", log)], batch=1,
                               on_failure="halt")
    assert results == {"a": plan.KEPT, "b": plan.FAILED, "c": plan.SKIPPED}
    assert log.hosts("revert") == []
    assert plan.verdict(results).exit_code == ExitCode.ROLLBACK_FAILED
    assert any("halt" in e.error for e in recorder.of(StepFailed) if e.host == "a")


def test_max_failures_lets_the_rollout_go_on_but_never_reports_success():
    log = Log()
    _, results, _ = run([Job("a", log), Job("b", log, fail="health"), Job("c", log)], batch=1, max_failures=1)
    assert results == {"a": plan.SUCCEEDED, "b": plan.FAILED, "c": plan.SUCCEEDED}
    assert log.hosts("revert") == []
    assert plan.verdict(results).exit_code == ExitCode.ROLLBACK_FAILED


def test_a_failed_revert_or_switch_back_makes_the_host_uncertain():
    log = Log()
    _, results, _ = run([Job("a", log, revert_error=ConnectError("a: gone")), Job("b", log, fail="switch back")],
                        batch=1)
    assert results == {"a": plan.UNCERTAIN, "b": plan.SWITCHED_BACK}
    assert plan.verdict(results).exit_code == ExitCode.ROLLBACK_FAILED


def test_a_host_without_an_earlier_release_is_kept_not_reverted():
    log = Log()
    _, results, _ = run([Job("a", log, previous=None), Job("b", log, fail="health")], batch=1)
    assert results == {"a": plan.KEPT, "b": plan.FAILED} and log.hosts("revert") == []


def test_a_failed_prepare_stops_before_any_switch():
    log = Log()
    _, results, _ = run([Job("a", log), Job("b", log, fail="prepare"), Job("c", log)])
    assert results == {"a": plan.SKIPPED, "b": plan.FAILED, "c": plan.SKIPPED}
    assert log.hosts("switch") == [] and sorted(log.hosts("unlock")) == ["a", "b", "c"]
    assert plan.verdict(results).exit_code == ExitCode.DEPLOY_FAILED


def test_a_lock_held_anywhere_changes_nothing_and_releases_the_others():
    log = Log()
    jobs = [Job("a", log), Job("b", log, lock_error=LockHeldError("b: the deploy lock is held by alice")), Job("c", log)]
    with pytest.raises(LockHeldError, match="alice"):
        Rollout(jobs, Settings(), Recorder(), action="deploy").run()
    assert log.hosts("prepare") == [] and sorted(log.hosts("unlock")) == ["a", "c"]


def test_the_first_step_runs_once_before_any_switch_and_its_failure_stops_everything():
    log = Log()
    jobs = [Job(h, log) for h in "abc"]
    Rollout(jobs, Settings(), Recorder(), action="deploy", first_step=lambda job: log.add("migrate", job.host)).run()
    assert log.hosts("migrate") == ["a"] and log.index("migrate", "a") < min(log.index("switch", h) for h in "abc")

    def broken(job):  # type: ignore[no-untyped-def]
        raise ConnectError(f"{job.host}: migration exited 1")

    log = Log()
    results = Rollout([Job(h, log) for h in "abc"], Settings(max_failures=5), Recorder(), action="deploy",
                      first_step=broken).run()
    assert {h: r.outcome for h, r in results.items()} == {"a": plan.FAILED, "b": plan.SKIPPED, "c": plan.SKIPPED}
    assert log.hosts("switch") == []


def test_a_signal_during_the_first_step_lets_it_finish_and_records_that_host_failed_not_skipped():
    """The migration in flight finishes (never cut half-way), nothing switches; the host it
    ran on says FAILED (its database changed for a release that never went live)."""
    log = Log()
    holder: list[Rollout] = []

    def migrate(job):  # type: ignore[no-untyped-def]
        holder[0].cancel.set(Interrupted("interrupted by SIGTERM"))
        log.add("migrated", job.host)

    rollout = Rollout([Job(h, log) for h in "ab"], Settings(), Recorder(), action="deploy", first_step=migrate)
    holder.append(rollout)
    results = rollout.run()
    assert {h: r.outcome for h, r in results.items()} == {"a": plan.FAILED, "b": plan.SKIPPED}
    assert log.hosts("migrated") == ["a"] and log.hosts("switch") == []
    assert log.hosts("skip failed") == ["a"] and log.hosts("skip skipped") == ["b"]
    assert results["a"].error.startswith("the migrations ran here, then the deploy stopped (interrupted by SIGTERM")


def test_the_first_step_overlaps_the_others_preparing_and_moves_on_when_the_first_host_cannot_prepare():
    log = Log()
    jobs = [Job("a", log), Job("b", log, prepare_delay=0.3)]
    Rollout(jobs, Settings(), Recorder(), action="deploy", first_step=lambda job: log.add("migrate", job.host)).run()
    assert log.index("migrate", "a") < log.index("prepared", "b") < min(log.index("switch", h) for h in "ab")

    log = Log()
    jobs = [Job("a", log, fail="prepare"), Job("b", log), Job("c", log)]
    results = Rollout(jobs, Settings(max_failures=1), Recorder(), action="deploy",
                      first_step=lambda job: log.add("migrate", job.host)).run()
    assert log.hosts("migrate") == ["b"] and sorted(log.hosts("switch")) == ["b", "c"]
    assert {h: r.outcome for h, r in results.items()} == {"a": plan.FAILED, "b": plan.SUCCEEDED, "c": plan.SUCCEEDED}


def test_an_interrupt_stops_at_the_next_host_and_reverts_the_switched_ones():
    log = Log()
    holder: list[Rollout] = []
    jobs = [Job("a", log, during_switch=lambda: holder[0].cancel.set(Interrupted("interrupted by SIGTERM"))),
            Job("b", log), Job("c", log)]
    rollout = Rollout(jobs, Settings(batch=1), Recorder(), action="deploy")
    holder.append(rollout)
    results = {h: r.outcome for h, r in rollout.run().items()}
    assert results == {"a": plan.REVERTED, "b": plan.SKIPPED, "c": plan.SKIPPED}
    assert rollout.stop_reason == "interrupted by SIGTERM" and sorted(log.hosts("unlock")) == ["a", "b", "c"]


def test_on_every_host_reports_every_failed_host_in_one_error():
    def check(host: str) -> str:
        if host != "a":
            raise ConnectError(f"{host}: cannot connect over SSH: timed out")
        return host.upper()

    class Named(str):
        @property
        def host(self) -> str:
            return str(self)

    assert on_every_host([Named("a")], check, None) == ["A"]
    with pytest.raises(ConnectError) as single:
        on_every_host([Named("a"), Named("b")], check, None)
    assert single.value.message.startswith("b: ")
    with pytest.raises(Exception) as several:
        on_every_host([Named(h) for h in "abc"], check, 2)
    assert several.value.exit_code == ExitCode.CONNECT
    assert "b: cannot connect" in several.value.message and "c: cannot connect" in several.value.message
