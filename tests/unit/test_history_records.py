"""releases.jsonl lines are checked by type before use: a wrong one is skipped with its line
number, and what reads the history (rollback's target, prune, releases, stats) keeps working."""

from __future__ import annotations

import json

from deployctl.adapters.local import LocalConnector
from deployctl.events import Recorder
from deployctl.plan.lifecycle.names import StateLayout
from deployctl.plan.lifecycle.releases import History, prune_selection
from deployctl.plan.stats import compute, merge
from deployctl.services.lifecycle.host_state import HostState

R1, R2, R3 = "20261201-100000-aaaaaaa", "20261202-100000-bbbbbbb", "20261203-100000-ccccccc"


def _line(release, **extra) -> str:
    data = {"release": release, "revision": "abc1234", "images": {"web": "repo@sha256:" + "a" * 64},
            "action": "deploy", "outcome": "succeeded", "who": "ci@x", "when": "2026-12-01T10:00:00Z", **extra}
    return json.dumps(data)


BAD = [
    _line(1),  # the reproduced crash: a number where the release id goes
    _line("../../etc"),
    _line(R3, images=["web"]),
    _line(R3, images={"web": 5}),
    _line(R3, who=None),
    _line(R3, previous=7),
    _line(R3, dirty="yes"),
    _line(R3, spec={"services": 5}),
    '["a list"]',
    '{"release": "' + R3 + '", "action": "dep',  # torn by a crash mid-append
]
TEXT = "\n".join([_line(R1), *BAD, _line(R2)]) + "\n"


def test_a_record_of_the_wrong_shape_is_skipped_with_its_line_number_never_a_crash():
    history = History.parse(TEXT)
    assert [r.release for r in history.records] == [R1, R2]
    assert [number for number, _ in history.skipped] == list(range(2, 2 + len(BAD)))
    why = dict(history.skipped)
    assert why[2] == "release 1 is not a release id"
    assert why[4] == why[5] == "images is not a mapping of service names to image references"
    assert why[9].startswith("spec is not a release spec")
    assert why[11] == "not JSON (a torn write?)"
    # What deploy, rollback and prune ask of the history still answers.
    assert history.previous_good(R2) == R1 and history.ids() == {R1, R2}
    assert prune_selection([R1, R2], keep=1, live=R2, previous_good=history.previous_good(R2)) == []


def test_the_host_state_warns_once_per_skipped_line_and_stats_still_count(tmp_path):
    layout = StateLayout(str(tmp_path), "shop", "prod")
    (tmp_path / "shop" / "prod").mkdir(parents=True)
    (tmp_path / "shop" / "prod" / "releases.jsonl").write_text(TEXT)
    events = Recorder()
    state = HostState(LocalConnector(), layout, events)
    state.history()
    records = state.history().records
    warnings = [e.text for e in events.events if getattr(e, "level", "") == "warning"]
    assert len(warnings) == len(BAD)  # once each, though the history was read twice
    assert warnings[0] == f"{layout.history} line 2 skipped: release 1 is not a release id"
    stats = compute(merge([records]), now=1796000000.0, window=10**9, commit_times={})
    assert stats.to_dict()  # computed over the two valid records
