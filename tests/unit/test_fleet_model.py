"""bench/fleet_model.py runs deployctl's own deploy against its model host (a scripted host
with a network delay per call): a change to the Connector protocol that the model host does
not follow broke it once without a word (the verify's `headers` argument), found only when
the bench was next run. One deploy at no delay keeps it in step, in well under a second."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import fleet_model  # noqa: E402


def test_the_model_host_deploys_and_counts_its_round_trips():
    one = fleet_model.one_host(0.0, 0.0)
    # A deploy's critical path is some hundred round trips and a few dozen docker commands
    # (docs/benchmarks.md: 155 and 29 on 2026-12-06); a broken model fails the deploy instead.
    assert 50 < one.round_trips < 1000 and 10 < one.docker_commands < 200
