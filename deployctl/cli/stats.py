"""`deployctl stats`: DORA figures from the release history (table, --json, --html FILE)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import finish, table
from .config import EnvOption
from .context import AppContext


def stats(
    ctx: typer.Context,
    env: EnvOption = "local",
    since: Annotated[str, typer.Option("--since", help="The window, back from now: 30d, 2w, 12h...")] = "30d",
    html: Annotated[Optional[Path], typer.Option("--html", metavar="FILE",
                                                 help="Also write a self-contained HTML report here.")] = None,
) -> None:
    """Deployment frequency, lead time, change failure rate and time to restore."""
    from ..plan.stats_html import duration, render_html, route_rows
    from ..services.stats import stats as get_stats

    app: AppContext = ctx.obj
    result = get_stats(app.env(env), since=since, emit=app.emit)
    s = result.stats
    if html is not None:
        html.write_text(render_html(s, env=env), encoding="utf-8")
    if app.mode == "json":
        finish(app, "stats", {"environment": env, "window": since, "hosts": result.hosts_read,
                              "unreachable": result.unreachable, **s.to_dict(),
                              **({"html": str(html)} if html is not None else {})})
        return
    rate = "-" if s.change_failure_rate is None else f"{s.change_failure_rate * 100:.1f}%"
    rows = [
        ["deployment frequency", f"{s.per_day:.2f}/day  {s.per_week:.2f}/week",
         f"{s.succeeded} succeeded deploys"],
        ["lead time (median)", duration(s.lead_time_median),
         f"{len(s.lead_times)} deploys, mean {duration(s.lead_time_mean)}; {s.unknown_revisions} unknown revisions skipped"],
        ["change failure rate", rate,
         f"{s.change_failures} of {s.deploys} switched deploys ({s.reverted} reverted, {s.rolled_back_from} rolled back from)"],
        ["time to restore (median)", duration(s.restore_median), f"{len(s.restores)} restores"],
        ["drills: time to restore (median)", duration(s.drill_restore_median),
         f"{len(s.drills)} drills, apart from the figures above"],
    ]
    window = s.to_dict()
    table(app, f"{env}: {window['since']} to {window['until']} (hosts: {', '.join(result.hosts_read)})",
          ["figure", "value", "from"], rows)
    for d in s.drills:
        app.out(f"drill {d.release} --fail {d.fail}: {d.outcome}"
                + (f" by {d.net}" if d.net else "")
                + f", detected in {duration(d.detect_s)}, restored in {duration(d.restore_s)}"
                + (f"; worst routes: {', '.join(d.routes)}" if d.routes else ""))
    for label, routes in (("stopped releases", s.stop_routes), ("drills", s.drill_routes)):
        if routes:
            table(app, f"worst routes of the {label} (the shadow window's or canary's verdict that stopped them)",
                  ["route", "stops", "the worst", "class", "net"], route_rows(routes))
    if s.failed_before_switch:
        app.out(f"{s.failed_before_switch} deploys failed before their switch (never served; not in the rate)")
    for host, why in result.unreachable.items():
        app.out(f"{host}: UNREACHABLE ({why}); its history was not read")
    if html is not None:
        app.out(f"HTML report: {html}")
