"""bench/svg_chart.py and bench/history.py: the charts docs/benchmarks.md shows are valid
SVG whose marks sit where the figures say, and a recorded run redraws them."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import history  # noqa: E402
from svg_chart import bar_chart, line_chart, nice_ticks  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"


def test_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0, 6.06) == [0, 2, 4, 6, 8]
    assert nice_ticks(0, 0.37) == [0, 0.1, 0.2, 0.3, 0.4]


def test_bars_are_as_tall_as_their_values():
    root = ET.fromstring(bar_chart("t", "s", ["a", "b"], {"x": [1.0, 2.0], "y": [None, 4.0]}))
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("height") and r.get("width") != "12"][1:]  # not the background
    heights = sorted(float(r.get("height")) for r in bars)
    assert len(heights) == 3 and heights[1] == pytest.approx(2 * heights[0]) and heights[2] == pytest.approx(4 * heights[0])


def test_a_line_has_a_point_per_value_in_x_order():
    root = ET.fromstring(line_chart("t", "hosts", "s", {"a": [(2, 10.0), (1, 9.0), (4, 12.0)]}))
    [line] = root.iter(f"{SVG}polyline")
    xs = [float(p.split(",")[0]) for p in line.get("points").split()]
    assert xs == sorted(xs) and len(list(root.iter(f"{SVG}circle"))) == 3


def test_an_empty_chart_is_refused():
    with pytest.raises(ValueError):
        line_chart("t", "x", "y", {})


def test_a_recorded_run_is_appended_and_the_charts_redrawn(tmp_path):
    path, charts = tmp_path / "history.json", tmp_path / "charts"
    path.write_text("[]")
    history.record("release_speed", {"deploy_ratio_same_work": 0.75, "deploy_ratio_bare": 0.85},
                   load_average="3.0", path=path, charts=charts)
    history.record("fleet_deploy", {"hosts_1": 5.0, "hosts_2": 5.5, "hosts_8": 6.0}, path=path, charts=charts)
    runs = json.loads(path.read_text())
    assert [r["bench"] for r in runs] == ["release_speed", "fleet_deploy"] and runs[0]["load"] == "3.0"
    assert {p.name for p in charts.iterdir()} >= {"deploy_vs_compose.svg", "fleet_hosts.svg"}
    fleet = ET.fromstring((charts / "fleet_hosts.svg").read_text())
    assert len(list(fleet.iter(f"{SVG}circle"))) == 3


def test_the_repository_history_draws_every_chart(tmp_path):
    written = history.draw(history.load(), tmp_path)
    assert {p.name for p in written} == set(history.CHARTS)
