"""The pure rollout decisions (plan/lifecycle/rollout.py): batches, concurrency, when to stop, the
verdict's exit code, and the release a fleet rollback goes to."""

from __future__ import annotations

import pytest

from deployctl.errors import ExitCode, RollbackError, UncertainError
from deployctl.plan.lifecycle import rollout as plan
from deployctl.plan.lifecycle.rollout import HostReleases

HOSTS = ["a", "b", "c", "d", "e"]


def test_batches_keep_host_order_and_default_to_one_batch_of_all():
    assert plan.batches(HOSTS, None) == [HOSTS]
    assert plan.batches(HOSTS, 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert plan.batches(HOSTS, 1) == [[h] for h in HOSTS]
    assert plan.batches(HOSTS, 9) == [HOSTS]
    assert plan.batches([], None) == []


@pytest.mark.parametrize("size,parallel,expected", [(5, None, 5), (5, 2, 2), (2, 8, 2), (1, None, 1), (0, None, 1)])
def test_concurrency_is_parallel_capped_by_the_batch(size, parallel, expected):
    assert plan.concurrency(size, parallel) == expected


def test_stop_counts_only_the_hosts_own_failures():
    assert not plan.should_stop({"a": plan.SUCCEEDED, "b": plan.SKIPPED}, 0)
    assert plan.should_stop({"a": plan.FAILED}, 0)
    assert plan.should_stop({"a": plan.SWITCHED_BACK}, 0)
    assert plan.should_stop({"a": plan.UNCERTAIN}, 0)
    assert not plan.should_stop({"a": plan.FAILED, "b": plan.SUCCEEDED}, 1)
    assert plan.should_stop({"a": plan.FAILED, "b": plan.FAILED}, 1)
    # A host reverted because of another one's failure is not a failure of its own.
    assert not plan.should_stop({"a": plan.REVERTED, "b": plan.KEPT}, 0)


@pytest.mark.parametrize("outcomes,code", [
    ({"a": plan.SUCCEEDED, "b": plan.SUCCEEDED}, ExitCode.OK),
    ({"a": plan.SUCCEEDED, "b": plan.ALREADY_LIVE}, ExitCode.OK),
    # Every host back on (or never off) what it served before: 6.
    ({"a": plan.REVERTED, "b": plan.FAILED, "c": plan.SKIPPED}, ExitCode.DEPLOY_FAILED),
    ({"a": plan.SWITCHED_BACK}, ExitCode.DEPLOY_FAILED),
    # Hosts on different releases (halt, tolerated failures, no release to go back to): 7.
    ({"a": plan.KEPT, "b": plan.FAILED}, ExitCode.ROLLBACK_FAILED),
    ({"a": plan.SUCCEEDED, "b": plan.FAILED}, ExitCode.ROLLBACK_FAILED),
    # Any host uncertain: 7, even when all the others are back.
    ({"a": plan.UNCERTAIN, "b": plan.REVERTED}, ExitCode.ROLLBACK_FAILED),
])
def test_verdict(outcomes, code):
    assert plan.verdict(outcomes).exit_code == code


def test_verdict_summary_counts_outcomes():
    verdict = plan.verdict({"a": plan.REVERTED, "b": plan.FAILED, "c": plan.SKIPPED, "d": plan.SKIPPED})
    assert verdict.summary == "1 failed, 1 reverted, 2 skipped" and not verdict.ok


def test_rollback_goes_where_every_host_agrees():
    hosts = [HostReleases("a", "R3", "R2"), HostReleases("b", "R3", "R2")]
    assert plan.rollback_target(hosts, None) == "R2"


def test_rollback_refuses_hosts_that_disagree_and_names_each_choice():
    hosts = [HostReleases("a", "R3", "R2"), HostReleases("b", "R2", "R1")]
    with pytest.raises(UncertainError, match=r"disagree.*a: live R3, previous R2; b: live R2, previous R1") as info:
        plan.rollback_target(hosts, None)
    assert "--to" in info.value.hint and info.value.exit_code == ExitCode.ROLLBACK_FAILED  # apart already: 7
    assert plan.rollback_target(hosts, "R2") == "R2"


def test_rollback_refuses_when_only_some_hosts_have_something_earlier():
    # A halted rollout left `a` on R2: it would go to R1, `b` (live R1) has nowhere to go.
    with pytest.raises(UncertainError, match=r"disagree.*a: live R2, previous R1; b: live R1, previous none"):
        plan.rollback_target([HostReleases("a", "R2", "R1"), HostReleases("b", "R1", None)], None)
    # The same release live everywhere, different histories: refused, nothing changed, 6.
    with pytest.raises(RollbackError, match=r"disagree") as info:
        plan.rollback_target([HostReleases("a", "R2", "R1"), HostReleases("b", "R2", None)], None)
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED


def test_rollback_refuses_when_no_host_has_anything_earlier():
    with pytest.raises(RollbackError, match=r"no earlier good release to roll back to \(live: R1\)") as info:
        plan.rollback_target([HostReleases("a", "R1", None), HostReleases("b", "R1", None)], None)
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED
