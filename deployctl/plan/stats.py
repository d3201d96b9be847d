"""DORA figures from a release history (releases.jsonl): pure, so every answer is a unit test.

- deployment frequency: successful deploys per day and per week over the window;
- lead time: from the commit (its time, given by the caller from git) to the deploy live;
- change failure rate: deploys that failed after their switch (reverted, by the error-rate
  guard too; uncertain; a canary aborted: it served its share) or that a
  later rollback left, over the deploys that reached their switch (a deploy that failed before
  the switch never served: it counts in `failed_before_switch`, not in the rate; so does a
  deploy the shadow window stopped, though recorded `aborted` as a canary's is);
- time to restore: a rollback's start (recorded since `extra.started`; older records: the
  moment the release it left went live) to the good release live again; a reverted deploy's
  own start to its switch back (its record's time).

Drills (`deployctl drill`, plan/judging/drill.py) are kept apart: the drill release's own records (its
aborted, failed, reverted or rolled-back deploy) count in none of the figures above; each
drill is one entry of `drills`, with the net that caught it and its times to detect and to
restore.

Worst routes: a shadow window's or a canary's verdict that stopped a release keeps its three
worst routes (plan/judging/routes.py) in the release's record (`extra.shadow.routes`,
`extra.canary.routes`). `stop_routes` counts, over the real releases stopped in the window,
how often each route was among them (and how often it was the worst); `drill_routes` the
same over the drills' releases, and each drill names its own.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

from .timestamps import timing  # noqa: F401 - re-exported (services/judging/drill.py, tests)
from .lifecycle.releases import ABORTED, DRILL, EXEC, FAILED, LIVE, REVERTED, SKIPPED, UNCERTAIN, ReleaseRecord

DAY = 86400.0
ROUTES_SHOWN = 10  # the routes most often worst, in the figures (a scanner's paths stay out)
JUDGES = ("shadow", "canary")  # the verdicts a release's record keeps with their worst routes


def parse_when(when: str | None) -> float | None:
    """RFC 3339 UTC (`2026-11-27T10:15:00Z`, fractions allowed) -> epoch seconds."""
    if not when:
        return None
    text = when.strip().removesuffix("Z")
    head, _, frac = text.partition(".")
    try:
        seconds = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    return seconds + (float(f"0.{frac}") if frac.isdigit() else 0.0)


def parse_since(text: str) -> float:
    """`30d`, `12h`, `2w`, `90m`, `45s` or plain seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": DAY, "w": 7 * DAY}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            value = float(text[:-1]) * units[text[-1]]
        else:
            value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration (e.g. 30d, 12h, 2w)") from None
    if value <= 0:
        raise ValueError(f"{text!r}: the window must be longer than zero")
    return value


@dataclass(frozen=True)
class Restore:
    release: str  # the release that came back (the good one)
    left: str | None  # the release that failed
    seconds: float
    how: str  # rollback | reverted
    at: float | None = None  # when the good release was live again (epoch seconds)


@dataclass(frozen=True)
class DrillRun:
    """One `deployctl drill`: what failed on purpose, which net caught it (None: no net did,
    the drill rolled back itself), its times to detect and to restore."""

    release: str
    at: float  # when the drill ended
    fail: str
    outcome: str
    net: str | None
    detect_s: float | None
    restore_s: float | None
    routes: list[str] = field(default_factory=list)  # its stopping verdict's worst routes, worst first


@dataclass(frozen=True)
class RouteStops:
    """One route, over the releases a verdict stopped: how many named it among their worst
    routes, how many as the worst, which status class rose on it, which net said so."""

    route: str
    stops: int
    worst: int
    classes: dict[str, int]  # 5xx | 4xx -> stops
    nets: dict[str, int]  # shadow | canary -> stops


@dataclass
class Stats:
    since: float  # epoch seconds: the window's start
    until: float
    deploys: int  # deploys that reached their switch (succeeded, reverted, uncertain)
    succeeded: int
    reverted: int
    failed_before_switch: int
    rollbacks: int
    rolled_back_from: int  # succeeded deploys a later rollback left
    change_failures: int
    change_failure_rate: float | None
    per_day: float
    per_week: float
    lead_times: list[float] = field(default_factory=list)  # seconds, one per known revision
    lead_time_median: float | None = None
    lead_time_mean: float | None = None
    unknown_revisions: int = 0  # succeeded deploys whose commit time is unknown
    restores: list[Restore] = field(default_factory=list)
    restore_median: float | None = None
    days: dict[str, dict[str, int]] = field(default_factory=dict)  # YYYY-MM-DD -> outcome -> count
    drills: list[DrillRun] = field(default_factory=list)
    drill_restore_median: float | None = None
    stop_routes: list[RouteStops] = field(default_factory=list)  # real releases stopped, most often worst first
    drill_routes: list[RouteStops] = field(default_factory=list)  # the drills' releases, the same

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["since"] = _iso(self.since)
        data["until"] = _iso(self.until)
        return data


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def merge(histories: Iterable[Iterable[ReleaseRecord]]) -> list[ReleaseRecord]:
    """Several hosts' histories as one: the same release's same action and outcome counted once
    (a release rolled out to three hosts is one deploy), ordered by time."""
    seen: dict[tuple[str, str, str, str], ReleaseRecord] = {}
    for records in histories:
        for r in records:
            key = (r.release, r.action, r.outcome, r.when if r.action == "rollback" else "")
            if key not in seen:
                seen[key] = r
    return sorted(seen.values(), key=lambda r: parse_when(r.when) or 0.0)


def compute(records: Iterable[ReleaseRecord], *, now: float, window: float,
            commit_times: Mapping[str, float] | None = None) -> Stats:
    commit_times = commit_times or {}
    since = now - window
    # `deployctl exec` lines (plan/operate/exec.py) change no release: not a deploy, not a rollback, not a day's count.
    everything = sorted((r for r in records if r.action != EXEC), key=lambda r: parse_when(r.when) or 0.0)
    drill_lines = [r for r in everything if r.action == DRILL]
    drilled = {r.release for r in drill_lines}
    # The drill releases' own deploy records, for the routes their verdicts named.
    drill_deploys = [r for r in everything if r.action == "deploy" and r.release in drilled]
    # A drill release's deploy and the drill's own rollback from it are no real change.
    everything = [r for r in everything if r.action != DRILL and r.release not in drilled
                  and not (r.action == "rollback" and r.previous in drilled)]
    live_at: dict[str, float] = {}  # release -> when its deploy went live (from all history)
    for r in everything:
        at = parse_when(r.when)
        if at is not None and r.action == "deploy" and r.outcome == LIVE:
            live_at.setdefault(r.release, at)
    inside = [r for r in everything if (parse_when(r.when) or 0.0) >= since and (parse_when(r.when) or 0.0) <= now]
    deploys = [r for r in inside if r.action == "deploy" and r.outcome not in (SKIPPED,)]
    # A deploy the shadow window stopped never served (its switch never came): it failed before
    # its switch, like a failed health check, and is neither a change failure nor a restore.
    unseen = [r for r in deploys if shadow_stopped(r)]
    reverted = [r for r in deploys if r.outcome in (REVERTED, UNCERTAIN, ABORTED) and not shadow_stopped(r)]
    # A release the guard reverted (or a stopped rollout) has a `succeeded` record first: it
    # is one deploy, and a failed one, so its `succeeded` record does not count.
    failed_ids = {r.release for r in reverted}
    succeeded = [r for r in deploys if r.outcome == LIVE and r.release not in failed_ids]
    switched = succeeded + reverted
    # A stopped rollout's put-back is not a rollback (its deploy counts as reverted already).
    rollbacks = [r for r in inside if r.action == "rollback" and r.outcome == LIVE and not r.reverts]
    left = {r.previous for r in rollbacks if r.previous}
    rolled_back_from = [r for r in succeeded if r.release in left]
    failures = len(reverted) + len(rolled_back_from)

    leads, unknown = [], 0
    for r in succeeded:
        committed = commit_times.get(r.revision or "")
        at = parse_when(r.when)
        if committed is None or at is None:
            unknown += 1
            continue
        leads.append(round(max(0.0, at - committed), 3))

    restores = []
    for r in rollbacks:
        end = parse_when(str(r.extra.get("live", ""))) or parse_when(r.when)
        start = parse_when(str(r.extra.get("started", ""))) or live_at.get(r.previous or "")
        if end is not None and start is not None:
            restores.append(Restore(r.release, r.previous, round(max(0.0, end - start), 3), "rollback", end))
    for r in reverted:
        end = parse_when(str(r.extra.get("live", ""))) or parse_when(r.when)
        start = parse_when(str(r.extra.get("started", "")))
        if end is not None and start is not None:
            restores.append(Restore(r.previous or "-", r.release, round(max(0.0, end - start), 3), "reverted", end))

    days: dict[str, dict[str, int]] = {}
    for r in inside:
        at = parse_when(r.when)
        if at is None or (r.action == "deploy" and r.outcome == SKIPPED):
            continue
        key = time.strftime("%Y-%m-%d", time.gmtime(at))
        label = "rollback" if r.action == "rollback" else FAILED if shadow_stopped(r) else r.outcome
        bucket = days.setdefault(key, {})
        bucket[label] = bucket.get(label, 0) + 1

    named: dict[str, list[tuple[str, str, str]]] = {}
    for r in drill_deploys:
        routes = stopped_routes(r)
        if routes and r.release not in named:
            named[r.release] = routes
    drills = [drill_run(r, [route for _, route, _ in named.get(r.release, [])]) for r in drill_lines
              if since <= (parse_when(r.when) or 0.0) <= now]
    in_drills = {d.release for d in drills}
    drill_restores = [d.restore_s for d in drills if d.restore_s is not None]

    import statistics  # here: the module (with decimal, fractions, random) costs the rollback's start-up

    span_days = window / DAY
    return Stats(
        since=since, until=now, deploys=len(switched), succeeded=len(succeeded), reverted=len(reverted),
        failed_before_switch=sum(1 for r in deploys if r.outcome == FAILED) + len(unseen), rollbacks=len(rollbacks),
        rolled_back_from=len(rolled_back_from), change_failures=failures,
        change_failure_rate=round(failures / len(switched), 4) if switched else None,
        per_day=round(len(succeeded) / span_days, 4), per_week=round(len(succeeded) / span_days * 7, 4),
        lead_times=leads, lead_time_median=statistics.median(leads) if leads else None,
        lead_time_mean=round(statistics.fmean(leads), 3) if leads else None, unknown_revisions=unknown,
        restores=restores, restore_median=statistics.median([x.seconds for x in restores]) if restores else None,
        days=dict(sorted(days.items())),
        drills=drills, drill_restore_median=statistics.median(drill_restores) if drill_restores else None,
        stop_routes=route_stops(deploys),
        drill_routes=route_stops(r for r in drill_deploys if r.release in in_drills),
    )


def shadow_stopped(r: ReleaseRecord) -> bool:
    """A deploy the shadow window stopped, or whose undecided window the next deploy undid
    (services/lifecycle/deploy.py records both `aborted` with a `shadow:` error): no user got
    an answer from it."""
    return r.action == "deploy" and r.outcome == ABORTED and r.error.startswith("shadow:")


def stopped_routes(r: ReleaseRecord) -> list[tuple[str, str, str]]:
    """(net, route, class) of the verdict that stopped this release, worst first; [] when no
    shadow window or canary stopped it (a verdict that passed it names no culprit)."""
    # Here: a rollback imports this module for `timing`, and never the canary's (tests/unit/test_startup.py).
    from .judging.canary import ABORT

    out = []
    for net in JUDGES:
        verdict = r.extra.get(net)
        if not isinstance(verdict, dict) or verdict.get("decision") != ABORT:
            continue
        for route in verdict.get("routes") or []:
            if isinstance(route, dict) and isinstance(route.get("route"), str):
                out.append((net, route["route"], str(route.get("class", ""))))
    return out


def route_stops(records: Iterable[ReleaseRecord]) -> list[RouteStops]:
    """The routes most often among a stopped release's worst, each release counted once per
    route; the first ROUTES_SHOWN by stops, then by times the worst, then by name."""
    tally: dict[str, tuple[int, int, dict[str, int], dict[str, int]]] = {}
    counted: set[str] = set()  # a release once, whichever of its records kept the verdict
    for r in records:
        if r.release in counted or not stopped_routes(r):
            continue
        counted.add(r.release)
        seen: set[str] = set()
        for i, (net, route, cls) in enumerate(stopped_routes(r)):
            if route in seen:
                continue
            seen.add(route)
            stops, worst, classes, nets = tally.get(route, (0, 0, {}, {}))
            classes[cls] = classes.get(cls, 0) + 1
            nets[net] = nets.get(net, 0) + 1
            tally[route] = (stops + 1, worst + (i == 0), classes, nets)
    ranked = sorted(tally.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:ROUTES_SHOWN]
    return [RouteStops(route, stops, worst, dict(sorted(classes.items())), dict(sorted(nets.items())))
            for route, (stops, worst, classes, nets) in ranked]


def drill_run(r: ReleaseRecord, routes: list[str] | None = None) -> DrillRun:
    nets = [n for n in r.extra.get("nets", []) if isinstance(n, dict)]
    caught = next((n for n in nets if n.get("result") == "caught"), None) or {}
    number = lambda v: float(v) if isinstance(v, (int, float)) else None  # noqa: E731
    return DrillRun(r.release, parse_when(r.when) or 0.0, str(r.extra.get("fail", "")), r.outcome,
                    caught.get("net"), number(caught.get("detect_s")), number(caught.get("restore_s")),
                    list(routes or []))
