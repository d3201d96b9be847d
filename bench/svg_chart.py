"""Small SVG charts for the benchmark history (docs/benchmarks.md): a line chart (a value
against a number, e.g. deploy seconds against host count or against the run) and a grouped
bar chart (a value per category and series, e.g. rollback seconds per target).

No plotting library: the venv has none, and a chart of a dozen points is a few lines of SVG
that diff well in git. Every bench that records its figures draws them with these two
functions (bench/history.py), so the fleet and Swarm benches add a chart by calling them.

    svg = line_chart("deploy wall time", "hosts", "s", {"parallel": [(1, 9.3), (2, 10.2)]})
    svg = bar_chart("rollback", "s", ["local", "ssh"], {"warm": [0.2, 0.4]})
"""

from __future__ import annotations

import math
from html import escape
from typing import Mapping, Sequence

WIDTH, HEIGHT = 640, 360
LEFT, RIGHT, TOP, BOTTOM = 60, 160, 40, 50  # margins: the legend sits on the right
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 5 × a power of ten apart)."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value < high + step * 0.999:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _label(value: float) -> str:
    return f"{value:g}"


class _Frame:
    """The plot area and its axes: data -> pixels, and the SVG of the axes and legend."""

    def __init__(self, title: str, x_label: str, y_label: str, y_max: float) -> None:
        self.y_ticks = nice_ticks(0.0, y_max or 1.0)
        self.y_top = self.y_ticks[-1]
        self.parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
                      f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
                      f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
                      f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>',
                      f'<text x="{LEFT + self.plot_w / 2}" y="{HEIGHT - 10}" text-anchor="middle">'
                      f'{escape(x_label)}</text>',
                      f'<text x="14" y="{TOP + self.plot_h / 2}" text-anchor="middle" '
                      f'transform="rotate(-90 14 {TOP + self.plot_h / 2})">{escape(y_label)}</text>']
        for tick in self.y_ticks:
            y = self.y(tick)
            self.parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + self.plot_w}" y2="{y:.1f}" '
                              'stroke="#ddd"/>')
            self.parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>')
        self.parts.append(f'<line x1="{LEFT}" y1="{TOP + self.plot_h}" x2="{LEFT + self.plot_w}" '
                          f'y2="{TOP + self.plot_h}" stroke="black"/>')

    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM

    def y(self, value: float) -> float:
        return TOP + self.plot_h * (1 - value / self.y_top)

    def legend(self, names: Sequence[str]) -> None:
        for i, name in enumerate(names):
            y = TOP + 10 + 18 * i
            x = LEFT + self.plot_w + 14
            self.parts.append(f'<rect x="{x}" y="{y - 9}" width="12" height="12" fill="{COLOURS[i % len(COLOURS)]}"/>')
            self.parts.append(f'<text x="{x + 18}" y="{y + 1}">{escape(name)}</text>')

    def svg(self) -> str:
        return "\n".join([*self.parts, "</svg>"]) + "\n"


def line_chart(title: str, x_label: str, y_label: str,
               series: Mapping[str, Sequence[tuple[float, float]]],
               x_names: Mapping[float, str] | None = None) -> str:
    """One line per series through its (x, y) points, with a dot at each and its value.
    `x_names`: the x axis labelled by name (e.g. a run's date) at those x values."""
    points = [p for values in series.values() for p in values]
    if not points:
        raise ValueError(f"{title}: no points to draw")
    frame = _Frame(title, x_label, y_label, max(y for _, y in points))
    x_low, x_high = min(x for x, _ in points), max(x for x, _ in points)
    span = (x_high - x_low) or 1.0

    def x_of(value: float) -> float:
        return LEFT + 20 + (frame.plot_w - 40) * ((value - x_low) / span if x_high > x_low else 0.5)

    labels = x_names or {x: _label(x) for x in sorted({x for x, _ in points})}
    for value, name in labels.items():
        frame.parts.append(f'<text x="{x_of(value):.1f}" y="{TOP + frame.plot_h + 16}" text-anchor="middle">'
                           f'{escape(name)}</text>')
    for i, (name, values) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        ordered = sorted(values)
        path = " ".join(f"{x_of(x):.1f},{frame.y(y):.1f}" for x, y in ordered)
        frame.parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in ordered:
            frame.parts.append(f'<circle cx="{x_of(x):.1f}" cy="{frame.y(y):.1f}" r="3" fill="{colour}">'
                               f'<title>{escape(name)}: {_label(y)}</title></circle>')
            frame.parts.append(f'<text x="{x_of(x):.1f}" y="{frame.y(y) - 7:.1f}" text-anchor="middle" '
                               f'font-size="10" fill="{colour}">{_label(round(y, 2))}</text>')
    frame.legend(list(series))
    return frame.svg()


def bar_chart(title: str, y_label: str, categories: Sequence[str], series: Mapping[str, Sequence[float | None]],
              x_label: str = "") -> str:
    """Grouped bars: for each category, one bar per series (None: no bar), its value above it."""
    values = [v for row in series.values() for v in row if v is not None]
    if not values:
        raise ValueError(f"{title}: no values to draw")
    for name, row in series.items():
        if len(row) != len(categories):
            raise ValueError(f"{title}: series {name!r} has {len(row)} values for {len(categories)} categories")
    frame = _Frame(title, x_label, y_label, max(values))
    group = frame.plot_w / len(categories)
    bar = group * 0.8 / len(series)
    for c, category in enumerate(categories):
        left = LEFT + group * c + group * 0.1
        frame.parts.append(f'<text x="{LEFT + group * (c + 0.5):.1f}" y="{TOP + frame.plot_h + 16}" '
                           f'text-anchor="middle">{escape(category)}</text>')
        for s, row in enumerate(series.values()):
            value = row[c]
            if value is None:
                continue
            x, y = left + bar * s, frame.y(value)
            frame.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar * 0.9:.1f}" '
                               f'height="{TOP + frame.plot_h - y:.1f}" fill="{COLOURS[s % len(COLOURS)]}"/>')
            frame.parts.append(f'<text x="{x + bar * 0.45:.1f}" y="{y - 4:.1f}" text-anchor="middle" '
                               f'font-size="10">{_label(round(value, 2))}</text>')
    frame.legend(list(series))
    return frame.svg()
