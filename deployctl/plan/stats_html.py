"""`deployctl stats --html FILE`: one self-contained page (inline CSS and SVG, no external
asset), so it can be attached to a CI run or mailed as it is."""

from __future__ import annotations

from html import escape

from .stats import Stats

COLOURS = {"succeeded": "#2e7d32", "reverted": "#c62828", "uncertain": "#6a1b9a",
           "failed": "#ef6c00", "rollback": "#1565c0"}
ORDER = ["succeeded", "failed", "reverted", "uncertain", "rollback"]


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


def render_html(stats: Stats, *, env: str, title: str = "deployctl stats") -> str:
    rate = "-" if stats.change_failure_rate is None else f"{stats.change_failure_rate * 100:.1f}%"
    figures = [
        ("Deployment frequency", f"{stats.per_day:.2f}/day, {stats.per_week:.2f}/week ({stats.succeeded} succeeded)"),
        ("Lead time (median)", f"{duration(stats.lead_time_median)} over {len(stats.lead_times)} deploys"
                               f" ({stats.unknown_revisions} unknown revisions)"),
        ("Change failure rate", f"{rate} ({stats.change_failures} of {stats.deploys})"),
        ("Time to restore (median)", f"{duration(stats.restore_median)} over {len(stats.restores)} restores"),
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
</body></html>
"""
