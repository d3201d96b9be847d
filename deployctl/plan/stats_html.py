"""`deployctl stats --html FILE`: one self-contained page (inline CSS and SVG, no external
asset), so it can be attached to a CI run or mailed as it is."""

from __future__ import annotations

from html import escape

from .stats import RouteStops, Stats

COLOURS = {"succeeded": "#2e7d32", "reverted": "#c62828", "aborted": "#ad1457", "uncertain": "#6a1b9a",
           "failed": "#ef6c00", "rollback": "#1565c0"}
RESTORE_COLOURS = {"incidents": "#c62828", "drills": "#1565c0"}
# Every outcome a day's bar can count (plan/stats.compute's `days`); one missing here would be
# left out of its bar without a word: a canary's abort served users its share, so it shows.
ORDER = ["succeeded", "failed", "reverted", "aborted", "uncertain", "rollback"]


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"


def _bars(days: dict[str, dict[str, int]]) -> str:
    """Stacked bars: one per day, one colour per outcome."""
    if not days:
        return "<p>No deploys in the window.</p>"
    width, height, gap, top = 28, 160, 6, max(sum(d.values()) for d in days.values())
    parts = []
    for i, (day, counts) in enumerate(days.items()):
        x, y = 40 + i * (width + gap), height
        for label in ORDER:
            n = counts.get(label, 0)
            if not n:
                continue
            h = n / top * (height - 20)
            y -= h
            parts.append(f'<rect x="{x}" y="{y:.1f}" width="{width}" height="{h:.1f}" fill="{COLOURS[label]}">'
                         f"<title>{escape(day)}: {n} {label}</title></rect>")
        parts.append(f'<text x="{x + width / 2}" y="{height + 14}" font-size="9" text-anchor="end" '
                     f'transform="rotate(-45 {x + width / 2} {height + 14})">{escape(day[5:])}</text>')
    total_w = 60 + len(days) * (width + gap)
    axis = (f'<line x1="36" y1="{height}" x2="{total_w}" y2="{height}" stroke="#999"/>'
            f'<text x="30" y="24" font-size="10" text-anchor="end">{top}</text>'
            f'<text x="30" y="{height}" font-size="10" text-anchor="end">0</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{height + 50}" '
            f'role="img" aria-label="deploys per day">{axis}{"".join(parts)}</svg>')


def _legend() -> str:
    return " ".join(f'<span><svg width="10" height="10"><rect width="10" height="10" fill="{COLOURS[k]}"/></svg> {k}</span>'
                    for k in ORDER)


def _outcomes(stats: Stats) -> str:
    rows = [("succeeded", stats.succeeded), ("failed", stats.failed_before_switch),
            ("reverted", stats.reverted), ("rollback", stats.rollbacks)]
    top = max([n for _, n in rows] + [1])
    parts = []
    for i, (label, n) in enumerate(rows):
        w = n / top * 300
        parts.append(f'<text x="0" y="{i * 24 + 15}" font-size="12">{label}</text>'
                     f'<rect x="90" y="{i * 24 + 3}" width="{w:.1f}" height="16" fill="{COLOURS[label]}"/>'
                     f'<text x="{96 + w:.1f}" y="{i * 24 + 15}" font-size="12">{n}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="440" height="{len(rows) * 24 + 4}" '
            f'role="img" aria-label="outcomes">{"".join(parts)}</svg>')


def _restores_over_time(stats: Stats) -> str:
    """Time to restore against the time it happened: real incidents and drills, one series
    each (the style of bench/svg_chart.py's line chart: plain SVG, a legend on the right)."""
    series = {"incidents": [(r.at, r.seconds) for r in stats.restores if r.at is not None],
              "drills": [(d.at, d.restore_s) for d in stats.drills if d.restore_s is not None]}
    points = [p for values in series.values() for p in values]
    if not points:
        return "<p>No restores and no drills in the window.</p>"
    width, height, left, right, top, bottom = 640, 260, 60, 130, 20, 40
    x0, x1 = stats.since, max(stats.until, max(x for x, _ in points))
    y1 = max(y for _, y in points) * 1.1 or 1.0

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / ((x1 - x0) or 1.0) * (width - left - right),
                height - bottom - y / y1 * (height - top - bottom))

    parts = [f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#999"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#999"/>',
             f'<text x="{left - 6}" y="{top + 4}" font-size="10" text-anchor="end">{escape(duration(y1))}</text>',
             f'<text x="{left - 6}" y="{height - bottom}" font-size="10" text-anchor="end">0</text>',
             f'<text x="{left}" y="{height - bottom + 16}" font-size="10">{escape(stats.to_dict()["since"][:10])}</text>',
             f'<text x="{width - right}" y="{height - bottom + 16}" font-size="10" text-anchor="end">'
             f'{escape(stats.to_dict()["until"][:10])}</text>']
    for i, (name, values) in enumerate(series.items()):
        colour = RESTORE_COLOURS[name]
        xy = [at(x, y) for x, y in sorted(values)]
        if len(xy) > 1:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="'
                         + " ".join(f"{x:.1f},{y:.1f}" for x, y in xy) + '"/>')
        for (x, y), (_, seconds) in zip(xy, sorted(values)):
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}">'
                         f"<title>{name}: {escape(duration(seconds))}</title></circle>")
        parts.append(f'<rect x="{width - right + 12}" y="{top + i * 18}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{width - right + 28}" y="{top + i * 18 + 9}" font-size="11">{name} '
                     f"({len(values)})</text>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="time to restore over time, incidents and drills">{"".join(parts)}</svg>')


def _counted(counts: dict[str, int]) -> str:
    """{"5xx": 2, "4xx": 1} -> "5xx 2, 4xx 1" (one key: its name alone)."""
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def route_rows(routes: list[RouteStops]) -> list[list[str]]:
    """The worst routes' rows, for the command's table and the page's."""
    return [[r.route, str(r.stops), str(r.worst), _counted(r.classes), _counted(r.nets)] for r in routes]


def _routes(routes: list[RouteStops], what: str) -> str:
    if not routes:
        return f"<p>No {escape(what)} named a route.</p>"
    head = "".join(f"<th>{h}</th>" for h in ("route", "stops", "the worst", "class", "net"))
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in route_rows(routes))
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(stats: Stats, *, env: str, title: str = "deployctl stats") -> str:
    rate = "-" if stats.change_failure_rate is None else f"{stats.change_failure_rate * 100:.1f}%"
    figures = [
        ("Deployment frequency", f"{stats.per_day:.2f}/day, {stats.per_week:.2f}/week ({stats.succeeded} succeeded)"),
        ("Lead time (median)", f"{duration(stats.lead_time_median)} over {len(stats.lead_times)} deploys"
                               f" ({stats.unknown_revisions} unknown revisions)"),
        ("Change failure rate", f"{rate} ({stats.change_failures} of {stats.deploys})"),
        ("Time to restore (median)", f"{duration(stats.restore_median)} over {len(stats.restores)} restores"),
        ("Drills: time to restore (median)", f"{duration(stats.drill_restore_median)} over {len(stats.drills)} "
                                             "drills (not in the figures above)"),
    ]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in figures)
    window = f"{stats.to_dict()['since']} to {stats.to_dict()['until']}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}: {escape(env)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}
th,td{{text-align:left;padding:4px 12px;border-bottom:1px solid #ddd}}h2{{margin-top:1.5em}}</style>
</head><body>
<h1>{escape(title)}: {escape(env)}</h1>
<p>{escape(window)}</p>
<table>{rows}</table>
<h2>Deploys per day</h2>
<p>{_legend()}</p>
{_bars(stats.days)}
<h2>Outcomes</h2>
{_outcomes(stats)}
<h2>Time to restore over time: incidents and drills</h2>
{_restores_over_time(stats)}
<h2>Worst routes of the stopped releases</h2>
<p>How often each route was among the worst three of the shadow window's or canary's verdict that
stopped a release ("the worst": named first).</p>
{_routes(stats.stop_routes, "stopped release's verdict")}
<h2>Worst routes of the drills</h2>
{_routes(stats.drill_routes, "drill's verdict")}
</body></html>
"""
