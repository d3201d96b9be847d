"""The benchmarks' history: every recorded run's figures (bench/history.json) and the charts
docs/benchmarks.md shows, drawn from it (docs/benchmarks/*.svg, with bench/svg_chart.py).

A bench records a run with `record(bench, figures, load=..., note=...)` (its `--record`
flag), which appends it and redraws every chart; `python bench/history.py` redraws them
from the file alone. A chart is a function from the history to SVG text in CHARTS: a bench
that wants a new chart (the fleet's hosts, the Swarm's rollback) adds one there.

Figures are seconds unless their name says otherwise (`..._ratio`); a run with a range
(two runs, or `min-max`) records its median or the middle of the range, and says so in its note.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from svg_chart import bar_chart, line_chart  # noqa: E402

HISTORY = Path(__file__).resolve().parent / "history.json"
CHART_DIR = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"


def load(path: Path = HISTORY) -> list[dict]:
    return json.loads(path.read_text()) if path.exists() else []


def runs_of(history: list[dict], bench: str) -> list[dict]:
    return sorted((r for r in history if r["bench"] == bench), key=lambda r: r["when"])


def record(bench: str, figures: dict[str, float], *, load_average: str | None = None, note: str = "",
           path: Path = HISTORY, charts: Path = CHART_DIR) -> None:
    """Appends a run (now, this machine's load unless given) and redraws every chart."""
    history = load(path)
    if load_average is None:
        now = os.getloadavg()[0]
        load_average = f"{now:.1f}"
    history.append({"bench": bench, "when": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
                    "load": load_average, "figures": {k: round(v, 3) for k, v in figures.items()}, "note": note})
    path.write_text(json.dumps(history, indent=1) + "\n")
    draw(history, charts)


def _over_runs(title: str, y_label: str, bench: str, names: dict[str, str]) -> Callable[[list[dict]], str]:
    """A line per figure across the bench's recorded runs (x: the run's date)."""
    def chart(history: list[dict]) -> str:
        runs = runs_of(history, bench)
        series = {label: [(i, r["figures"][name]) for i, r in enumerate(runs) if name in r["figures"]]
                  for name, label in names.items()}
        x_names = {i: r["when"][5:10] + (" " + r["when"][11:16] if r["when"][11:16] != "00:00" else "")
                   for i, r in enumerate(runs)}
        return line_chart(title, "run (UTC)", y_label, {k: v for k, v in series.items() if v}, x_names)
    return chart


def _fleet(history: list[dict]) -> str:
    """Deploy wall time against the number of hosts, one line per recorded run."""
    series = {}
    for run in runs_of(history, "fleet_deploy"):
        points = sorted((int(k.split("_")[1]), v) for k, v in run["figures"].items()
                        if k.startswith("hosts_") and k.split("_")[1].isdigit())
        if points:
            series[f"{run['when'][:10]} (load {run['load']})"] = points
    return line_chart("fleet deploy wall time (parallel)", "hosts", "seconds", series)


def _rollback_per_target(history: list[dict]) -> str:
    """The latest rollback figure of each target, warm window (or the Swarm's) as measured."""
    latest: dict[str, float | None] = {}
    for bench, name, label in ROLLBACK_BARS:
        runs = [r for r in runs_of(history, bench) if name in r["figures"]]
        latest[label] = runs[-1]["figures"][name] if runs else None
    categories = [label for label, value in latest.items() if value is not None]
    return bar_chart("rollback, latest run per target", "seconds", categories,
                     {"seconds": [latest[c] for c in categories]})


ROLLBACK_BARS = [
    ("release_speed", "rollback_warm_traffic_on", "local: traffic back (service call)"),
    ("rollback_command", "rollback_traffic_on", "local: traffic back (command)"),
    ("rollback_command", "rollback_wall", "local: `deployctl rollback`"),
    ("swarm_deploy", "rollback_ssh_hosts", "3 ssh hosts"),
    ("swarm_deploy", "rollback_swarm", "Swarm, 3 nodes"),
]

CHARTS: dict[str, Callable[[list[dict]], str]] = {
    "deploy_vs_compose.svg": _over_runs("deploy wall time / docker-compose up -d", "ratio (lower is faster)",
                                        "release_speed", {"deploy_ratio_same_work": "same work (migration, secret)",
                                                          "deploy_ratio_bare": "bare"}),
    "warm_rollback.svg": _over_runs("warm rollback: traffic all on the previous release", "seconds",
                                    "release_speed", {"rollback_warm_traffic_on": "service call",
                                                      "rollback_warm_cli_wall": "`deployctl rollback` wall"}),
    "rollback_per_target.svg": _rollback_per_target,
    "fleet_hosts.svg": _fleet,
}


def draw(history: list[dict], charts: Path = CHART_DIR) -> list[Path]:
    charts.mkdir(parents=True, exist_ok=True)
    written = []
    for name, chart in CHARTS.items():
        try:
            svg = chart(history)
        except ValueError:  # nothing recorded for it yet
            continue
        (charts / name).write_text(svg)
        written.append(charts / name)
    return written


if __name__ == "__main__":
    for written in draw(load()):
        print(written)
