"""The canary (issue 15, docs/release-safety.md) as data and decisions: its settings, the
verdict from the two releases' access-log windows, the board that merges every host's
window into one, the decision file `deploy --promote/--abort` writes, and the record a
host keeps while a canary runs (so `status` and the next deploy can say what happened to
one whose deployctl was killed). Pure: services/judging/canary.py does what this decides.

Verdict: aborted as soon as the new release's error rate exceeds the live release's by more
than `max_error_rate` (with `min_requests` seen), so a bad canary is cut short; promoted at
the end of the window when both its error rate and its p95 latency are within their margins
of the live release's over the same window. Too few requests by then: aborted (nothing
proves the release good; `--promote` decides by hand).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .access_log import LogEntry, Window, window
from .chance import tail
from ..lifecycle.releases import is_release_id
from .routes import RouteBoard, RouteRule, route_board

PROMOTE, ABORT, WAIT = "promote", "abort", "wait"
# The watchdog restores the live-only proxy this long after the window's end unless the
# deploy removed it first: room for the last log read and the decision, never a second
# window's worth of half-switched traffic.
WATCHDOG_MARGIN = 10.0


@dataclass(frozen=True)
class CanarySpec:
    """`share` percent of requests to the new release for `window` seconds, then judged."""

    share: int
    window: float
    max_error_rate: float
    max_p95_ms: float
    min_requests: int
    routes: RouteRule = RouteRule()

    @property
    def watchdog_seconds(self) -> int:
        return int(self.window + WATCHDOG_MARGIN + 0.999)

    step = "canary"  # the gate's step name (services/judging/canary.CanaryGate)

    def headline(self, release: str, where: str) -> str:
        return f"{release}: {self.share}% for {self.window:g}s on {where}"

    def board(self, logs: Mapping[str, list[LogEntry]], new: str, live: str, since: float) -> "Board":
        return board(logs, new, live, since=since, max_routes=self.routes.max_routes)

    def judge(self, current: "Board", left: float) -> "CanaryVerdict":
        return current.verdict(self, final=left <= 0)

    def summary(self, current: "Board") -> str:
        return current.describe()

    def describe(self) -> str:
        return (f"{self.share}% of requests to the new release for {self.window:g}s, the proxy's access log read "
                f"every second on every host: abort as soon as its error rate exceeds the live release's by "
                f"{self.max_error_rate:.1%} (from {self.min_requests} requests), or on any route its share of 5xx or "
                f"4xx answers exceeds the live release's by {self.routes.max_shift:.0%} (from "
                f"{self.routes.min_requests} requests on that route on each side); at the end promote when its p95 is "
                f"within {self.max_p95_ms:g} ms of the live release's too")


def canary_spec(rollout, share: int | None = None) -> CanarySpec | None:  # type: ignore[no-untyped-def]
    """From `[environments.<env>.rollout]`, `share` (--canary N) overriding `canary`; None when 0."""
    percent = rollout.canary if share is None else share
    if not percent:
        return None
    return CanarySpec(percent, rollout.canary_window, rollout.canary_max_error_rate, rollout.canary_max_p95_ms,
                      rollout.canary_min_requests, RouteRule(rollout.canary_route_max_shift,
                                                             rollout.canary_route_min_requests, rollout.max_routes))


@dataclass(frozen=True)
class CanaryVerdict:
    decision: str  # promote | abort | wait
    new: Window
    live: Window
    reason: str = ""
    by_hand: bool = False
    hosts: dict = field(default_factory=dict)  # host -> {"new": ..., "live": ...} windows
    routes: RouteBoard = RouteBoard()  # per route, both sides (plan/judging/routes.py)

    def with_board(self, board: "Board") -> "CanaryVerdict":
        """This decision with the board's per-host numbers and routes."""
        return CanaryVerdict(self.decision, self.new, self.live, self.reason, self.by_hand, board.per_host(),
                             board.routes)

    def with_routes(self, text: str) -> str:
        """`text` and, for the output, the worst routes with both sides' counts."""
        return f"{text}; worst routes: {self.routes.describe()}" if self.routes.routes else text

    def to_dict(self) -> dict:
        return {"decision": self.decision, "reason": self.reason, "by_hand": self.by_hand,
                "new": self.new.to_dict(), "live": self.live.to_dict(), "hosts": self.hosts,
                "routes": [r.to_dict() for r in self.routes.worst()]}


def canary_verdict(new: Window, live: Window, *, max_error_rate: float, max_p95_ms: float, min_requests: int,
                   final: bool, max_p95_ratio: float | None = None, keys: str = "canary",
                   routes: RouteBoard | None = None, route_rule: RouteRule | None = None,
                   significance: float | None = None, out_of_time: bool = True,
                   bar: float | None = None) -> CanaryVerdict:
    """`final`: the window is over (promote or abort); else only an early abort, or wait.
    The shadow window (plan/judging/shadow.py) is judged here too: `keys` names its settings in the
    reasons, and `max_p95_ratio` stops a new p95 over that multiple of the live one (when it
    is also `max_p95_ms` slower: a ratio of two small numbers is noise). `routes` with
    `route_rule`: a route whose 5xx or 4xx share rose too much aborts early too, whatever
    the rates over all requests say (plan/judging/routes.py).
    `significance` (the shadow window's; the canary passes none): an error rate over the margin
    stops only when its errors are more than chance (plan/judging/chance.py) at that level, or
    when `out_of_time` (the window's time is up, whatever was seen); in between it waits for
    more requests, even when `final`. `bar`: the windows were judged by that timeout (their
    `cut_off`), which the reason names."""
    excess = new.error_rate - live.error_rate
    undecided = False
    if new.requests >= min_requests and excess > max_error_rate:
        reason = (f"error rate {new.error_rate:.1%} ({new.errors} of {new.requests}) vs live "
                  f"{live.error_rate:.1%}: {excess:+.1%} exceeds {keys}_max_error_rate {max_error_rate:.1%}"
                  f"{_cut_off(new, live, keys, bar)}")
        if significance is None:
            return CanaryVerdict(ABORT, new, live, reason)
        rate = min(1.0, live.error_rate + max_error_rate)
        odds = tail(new.errors, new.requests, rate)
        if odds < significance:
            return CanaryVerdict(ABORT, new, live, f"{reason}; more than chance (a release failing {rate:.1%} "
                                                   f"shows as many with p {odds:.2g} < {significance:g})")
        if out_of_time:
            return CanaryVerdict(ABORT, new, live, f"{reason} at the end of the window (p {odds:.2g}: not more "
                                                   f"than chance, but nothing more was seen)")
        undecided = True  # over the margin by a few errors: more requests decide
    regressed = route_rule.judge(routes, keys) if routes is not None and route_rule is not None else ""
    if regressed:
        return CanaryVerdict(ABORT, new, live, regressed)
    if not final or undecided:
        return CanaryVerdict(WAIT, new, live)
    if new.requests < min_requests:
        by_hand = "; `--promote` decides by hand" if keys == "canary" else ""
        return CanaryVerdict(ABORT, new, live,
                             f"only {new.requests} requests reached the {keys} ({keys}_min_requests = "
                             f"{min_requests}): nothing proves it good{by_hand}")
    if new.p95_ms is not None:
        slower = new.p95_ms - (live.p95_ms or 0.0)
        if max_p95_ratio is None and slower > max_p95_ms:
            return CanaryVerdict(ABORT, new, live,
                                 f"p95 {new.p95_ms:.0f} ms vs live {live.p95_ms or 0:.0f} ms: {slower:+.0f} ms "
                                 f"exceeds canary_max_p95_ms {max_p95_ms:g}")
        if max_p95_ratio is not None and slower > max_p95_ms and new.p95_ms > max_p95_ratio * (live.p95_ms or 0.0):
            return CanaryVerdict(ABORT, new, live,
                                 f"p95 {new.p95_ms:.0f} ms vs live {live.p95_ms or 0:.0f} ms: over "
                                 f"{keys}_max_p95_ratio {max_p95_ratio:g}x the live release's")
    return CanaryVerdict(PROMOTE, new, live,
                         f"error rate {new.error_rate:.1%} vs live {live.error_rate:.1%}, p95 "
                         f"{new.p95_ms or 0:.0f} ms vs {live.p95_ms or 0:.0f} ms: within the margins")


def _cut_off(new: Window, live: Window, keys: str, bar: float | None) -> str:
    """What the bar made errors on each side, when it made any."""
    if bar is None or not (new.cut_off or live.cut_off):
        return ""
    return (f"; of these, {new.cut_off} copies cut off at {keys}_timeout {bar:g}s, and {live.cut_off} live "
            f"answers as slow counted as errors on the live side")


def combine(entries_by_host: Mapping[str, Iterable[LogEntry]]) -> list[LogEntry]:
    """A fleet's canary is judged on every host's requests together."""
    return [e for entries in entries_by_host.values() for e in entries]


@dataclass(frozen=True)
class Board:
    """The canary's numbers: both releases over the window, on every host and together."""

    new: Window
    live: Window
    hosts: dict[str, tuple[Window, Window]]  # host -> (new, live)
    routes: RouteBoard = RouteBoard()

    @property
    def share(self) -> float:
        """The share of requests the canary answered (what the split gave it, measured)."""
        total = self.new.requests + self.live.requests
        return self.new.requests / total if total else 0.0

    def describe(self) -> str:
        return (f"new {self.new.requests} req/{self.new.errors} err, live {self.live.requests} req/"
                f"{self.live.errors} err ({self.share:.0%} to the new)")

    def per_host(self) -> dict:
        return {host: {"new": new.to_dict(), "live": live.to_dict()} for host, (new, live) in self.hosts.items()}

    def verdict(self, spec: CanarySpec, *, final: bool) -> CanaryVerdict:
        v = canary_verdict(self.new, self.live, max_error_rate=spec.max_error_rate, max_p95_ms=spec.max_p95_ms,
                           min_requests=spec.min_requests, final=final, routes=self.routes, route_rule=spec.routes)
        return v.with_board(self)

    def by_hand(self, decision: str, who: str) -> CanaryVerdict:
        return CanaryVerdict(decision, self.new, self.live, f"{decision} by hand ({who}): {self.describe()}",
                             by_hand=True).with_board(self)


def board(entries_by_host: Mapping[str, list[LogEntry]], new: str, live: str, *, since: float,
          max_routes: int = RouteRule.max_routes, bar: float | None = None) -> Board:
    """`bar`: both sides' answers that took that long count as errors (the shadow window's
    timeout, plan/judging/shadow.py); the canary's split sends users' requests, with no cap."""
    hosts = {host: (window(entries, new, since=since, bar=bar), window(entries, live, since=since, bar=bar))
             for host, entries in entries_by_host.items()}
    merged = [e for e in combine(entries_by_host) if e.at >= since]
    return Board(window(merged, new, bar=bar), window(merged, live, bar=bar), hosts,
                 route_board(merged, new, live, max_routes=max_routes, bar=bar))


# -- by hand: `deploy --promote` / `--abort` from another shell --------------------------------

def render_decision(decision: str, who: str) -> bytes:
    if decision not in (PROMOTE, ABORT):
        raise ValueError(decision)
    return f"{decision} {who}\n".encode()


def parse_decision(raw: bytes | None) -> tuple[str, str] | None:
    """(decision, who) from the host's decision file; None when absent or not one."""
    if not raw:
        return None
    decision, _, who = raw.decode(errors="replace").strip().partition(" ")
    return (decision, who or "unknown") if decision in (PROMOTE, ABORT) else None


# -- while it runs: the host's record of it ------------------------------------------------------

@dataclass(frozen=True)
class CanaryRecord:
    """Written before the split goes live, removed once the canary is decided: one that
    remains was interrupted (deployctl killed), and its watchdog restored the live release."""

    release: str
    live: str
    share: int
    started: float
    deadline: float  # when the watchdog restores the live-only proxy
    watchdog: str  # its container

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()

    @classmethod
    def parse(cls, raw: bytes | None) -> "CanaryRecord | None":
        if not raw:
            return None
        try:
            data = json.loads(raw)
            if not (is_release_id(data["release"]) and is_release_id(data["live"])):
                return None  # not a record deployctl wrote: its ids would become names
            return cls(str(data["release"]), str(data["live"]), int(data["share"]), float(data["started"]),
                       float(data["deadline"]), str(data["watchdog"]))
        except (ValueError, KeyError, TypeError):
            return None

    def what_happened(self, *, now: float, fired: str | None) -> str:
        """For `status` and the next deploy: what became of it (read while it runs, or after
        its deployctl died: a decided canary leaves no record)."""
        head = f"canary of {self.release} ({self.share}% beside {self.live})"
        if fired:
            return f"{head} was not decided (deployctl stopped): its watchdog put {self.live} back at 100% at {fired}"
        if now < self.deadline:
            return (f"{head} running; if its deployctl is gone, the watchdog puts {self.live} back at 100% in "
                    f"{self.deadline - now:.0f}s")
        return f"{head} was not decided and its watchdog did not report by its deadline: check the proxy"
