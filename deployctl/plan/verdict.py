"""The guard's and the canary's decisions, from per-release windows of the proxy's access log
(plan/access_log.py). Pure, so each decision is a unit test; each carries the numbers that
made it, which go to the output and into the release history.

Guard: after a switch, the new release is reverted when its error rate crosses the limit,
over the whole watch or over its last RECENT seconds (a release that starts failing late
in the watch is not diluted by its good start), once at least `min_requests` were seen in
that span. Below that count nothing is decided: three requests, one failed, is not 33%.

Canary: aborted as soon as the new release's error rate exceeds the live release's by more
than `max_error_rate` (with `min_requests` seen), so a bad canary is cut short; promoted at
the end of the window when both its error rate and its p95 latency are within their margins
of the live release's over the same window. Too few requests by then: aborted (nothing
proves the release good; `--promote` decides by hand).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .access_log import LogEntry, Window, window

RECENT = 10.0  # seconds: the guard's sliding span
PROMOTE, ABORT, WAIT = "promote", "abort", "wait"


@dataclass(frozen=True)
class GuardVerdict:
    revert: bool
    whole: Window
    recent: Window
    reason: str = ""

    def numbers(self) -> dict:
        return {"whole": self.whole.to_dict(), "recent": self.recent.to_dict()}


def guard_verdict(entries: list[LogEntry], release: str, *, since: float, now: float, max_error_rate: float,
                  min_requests: int) -> GuardVerdict:
    whole = window(entries, release, since=since)
    recent = window(entries, release, since=max(since, now - RECENT))
    for span, name in ((recent, f"over the last {RECENT:g}s"), (whole, "since the switch")):
        if span.requests >= min_requests and span.error_rate > max_error_rate:
            return GuardVerdict(True, whole, recent,
                                f"{release}'s error rate {span.error_rate:.1%} {name} ({span.errors} of "
                                f"{span.requests} requests) crossed guard_max_error_rate {max_error_rate:.1%}")
    return GuardVerdict(False, whole, recent)


@dataclass(frozen=True)
class CanaryVerdict:
    decision: str  # promote | abort | wait
    new: Window
    live: Window
    reason: str = ""
    by_hand: bool = False
    numbers: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"decision": self.decision, "reason": self.reason, "by_hand": self.by_hand,
                "new": self.new.to_dict(), "live": self.live.to_dict()}


def canary_verdict(new: Window, live: Window, *, max_error_rate: float, max_p95_ms: float, min_requests: int,
                   final: bool) -> CanaryVerdict:
    """`final`: the window is over (promote or abort); else only an early abort, or wait."""
    excess = new.error_rate - live.error_rate
    if new.requests >= min_requests and excess > max_error_rate:
        return CanaryVerdict(ABORT, new, live,
                             f"error rate {new.error_rate:.1%} ({new.errors} of {new.requests}) vs live "
                             f"{live.error_rate:.1%}: {excess:+.1%} exceeds canary_max_error_rate "
                             f"{max_error_rate:.1%}")
    if not final:
        return CanaryVerdict(WAIT, new, live)
    if new.requests < min_requests:
        return CanaryVerdict(ABORT, new, live,
                             f"only {new.requests} requests reached the canary (canary_min_requests = "
                             f"{min_requests}): nothing proves it good; `--promote` decides by hand")
    if new.p95_ms is not None:
        slower = new.p95_ms - (live.p95_ms or 0.0)
        if slower > max_p95_ms:
            return CanaryVerdict(ABORT, new, live,
                                 f"p95 {new.p95_ms:.0f} ms vs live {live.p95_ms or 0:.0f} ms: {slower:+.0f} ms "
                                 f"exceeds canary_max_p95_ms {max_p95_ms:g}")
    return CanaryVerdict(PROMOTE, new, live,
                         f"error rate {new.error_rate:.1%} vs live {live.error_rate:.1%}, p95 "
                         f"{new.p95_ms or 0:.0f} ms vs {live.p95_ms or 0:.0f} ms: within the margins")


def combine(entries_by_host: dict[str, list[LogEntry]]) -> list[LogEntry]:
    """A fleet's canary is judged on every host's requests together."""
    return [e for entries in entries_by_host.values() for e in entries]
