"""The guard's decision, from per-release windows of the proxy's access log
(plan/judging/access_log.py); the canary's is in plan/judging/canary.py. Pure, so each decision is a unit
test; each carries the numbers that made it, which go to the output and into the history.

Guard: after a switch, the new release is reverted when its error rate crosses the limit,
over the whole watch or over its last RECENT seconds (a release that starts failing late
in the watch is not diluted by its good start), once at least `min_requests` were seen in
that span. Below that count nothing is decided: three requests, one failed, is not 33%.
"""

from __future__ import annotations

from dataclasses import dataclass

from .access_log import LogEntry, Window, window

RECENT = 10.0  # seconds: the guard's sliding span


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
