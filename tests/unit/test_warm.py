"""The warm window as data: which release stays running, which ones a command stops, and a
rollback to running containers that starts none."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deployctl.config.models import Rollout
from deployctl.plan.lifecycle.warm import WarmRelease, after_switch, expired, parse_warm, render_warm


def test_the_replaced_release_goes_warm_for_the_window() -> None:
    assert after_switch("v2", "v1", now=100.0, window=600) == [WarmRelease("v1", 100.0, 700.0)]


@pytest.mark.parametrize("previous,window", [(None, 600), ("v2", 600), ("v1", 0)])
def test_nothing_goes_warm_without_a_previous_release_or_a_window(previous, window) -> None:
    assert after_switch("v2", previous, now=100.0, window=window) == []


def test_expired_releases_are_stopped_never_the_kept_ones() -> None:
    warm = [WarmRelease("v1", 0, 50), WarmRelease("v2", 0, 500), WarmRelease("v3", 0, 10)]
    stop, remain = expired(warm, now=100, keep={"v3"})
    assert stop == ["v1"]
    assert remain == [WarmRelease("v2", 0, 500)]


def test_the_record_round_trips_and_a_torn_one_is_empty() -> None:
    warm = [WarmRelease("20261127-101500-abc1234", 1.5, 601.5)]
    assert parse_warm(render_warm(warm)) == warm
    assert parse_warm(b'[{"release": "v1"') == [] and parse_warm(None) == []


def test_warm_window_config() -> None:
    assert Rollout().warm_window == 600
    assert Rollout(warm_window=0).warm_window == 0
    for bad in (-1, 86401):
        with pytest.raises(ValidationError):
            Rollout(warm_window=bad)


def test_drain_waits_for_the_release_that_just_left_the_proxy() -> None:
    from deployctl.plan.lifecycle.warm import drain_left
    assert drain_left({"v2"}, warm_before=[], now=100.0, drain=3.0) == 3.0


def test_a_warm_release_that_left_the_proxy_a_deploy_ago_is_stopped_at_once() -> None:
    from deployctl.plan.lifecycle.warm import drain_left
    warm = [WarmRelease("v1", 50.0, 650.0)]
    assert drain_left({"v1"}, warm_before=warm, now=100.0, drain=3.0) == 0.0
    # ...but not before its own drain is over, when deploys follow each other quickly
    assert drain_left({"v1"}, warm_before=warm, now=51.0, drain=3.0) == 2.0


def test_the_previous_release_kept_through_the_guards_watch_is_stopped_without_a_second_drain() -> None:
    from deployctl.plan.lifecycle.warm import drain_left
    # Kept warm when the switch made it previous (at 100), stopped once the 30 s watch passed.
    kept = [WarmRelease("v2", 100.0, 190.0)]
    assert drain_left({"v2"}, warm_before=kept, now=131.0, drain=3.0) == 0.0


def test_a_release_the_host_knows_nothing_about_gets_the_whole_drain() -> None:
    from deployctl.plan.lifecycle.warm import drain_left
    warm = [WarmRelease("v1", 50.0, 650.0)]
    assert drain_left({"v1", "v0"}, warm_before=warm, now=100.0, drain=3.0) == 3.0
    assert drain_left(set(), warm_before=warm, now=100.0, drain=3.0) == 0.0
