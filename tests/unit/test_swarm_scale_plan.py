"""`deployctl scale` is recorded and kept (plan/swarm/swarm_scale.py): a rollback runs the
target with the scaled counts, the next deploy keeps them unless deploy.toml's replicas
of that service changed since the scale. Compared as data."""

from __future__ import annotations

from deployctl.plan.swarm import swarm_scale as ss


def test_a_scale_is_recorded_against_the_replicas_it_overrode():
    overrides = ss.after_scale({}, {"frontend": 5}, {"frontend": 3, "backend": 2})
    assert overrides == {"frontend": (5, 3)}
    assert ss.to_extra(overrides) == {"scaled": {"frontend": [5, 3]}}
    assert ss.overrides_in(ss.to_extra(overrides)) == overrides  # through the history's JSON
    again = ss.after_scale(overrides, {"backend": 4}, {"frontend": 3, "backend": 2})
    assert again == {"frontend": (5, 3), "backend": (4, 2)}
    assert ss.to_extra({}) == {}  # no key at all when nothing is scaled
    assert ss.overrides_in({}) == {} and ss.overrides_in(None) == {} and ss.overrides_in({"scaled": {"x": 3}}) == {}


def test_the_next_deploy_keeps_a_scaled_count_until_deploy_toml_changes_that_service():
    overrides = {"frontend": (5, 3), "backend": (1, 2)}
    counts, kept = ss.for_deploy({"frontend": 3, "backend": 2}, overrides)
    assert counts == {"frontend": 5, "backend": 1} and kept == overrides
    # deploy.toml now asks frontend = 4: that is the operator's new word; backend stays scaled.
    counts, kept = ss.for_deploy({"frontend": 4, "backend": 2}, overrides)
    assert counts == {"frontend": 4, "backend": 1} and kept == {"backend": (1, 2)}
    assert ss.for_deploy({"frontend": 3}, {}) == ({"frontend": 3}, {})


def test_a_rollback_runs_the_target_with_the_scaled_counts():
    assert ss.for_rollback({"frontend": 3, "backend": 2}, {"frontend": (5, 3)}) == {"frontend": 5, "backend": 2}
    assert ss.for_rollback({"frontend": 3}, {"worker": (4, 1)}) == {"frontend": 3}  # a service it does not have
