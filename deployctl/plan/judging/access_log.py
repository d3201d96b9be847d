"""The proxy's access log (plan/edge/proxy_config.py, log format `deployctl`) as numbers per release:
requests, errors, p95 latency over a window. Pure: the guard and the canary (services/judging/watch.py)
feed it the lines `docker logs --timestamps --since` returned, and unit tests feed it recorded
lines.

A line as `docker logs --timestamps` gives it:

    2026-12-01T17:50:00.123456789Z 172.17.0.1 [2026-12-01T17:50:00+00:00] "GET / HTTP/1.1" 200 12
        rt=0.003 upstream=172.18.0.3:8000 ustatus=200 urt=0.003 release=20261201-175000-abc1234

An error is a 5xx answer: the app's own, or nginx's 502/504 when the upstream failed (those
still carry the release: the stamp is keyed on the upstream nginx tried). Lines with no
release (the proxy answering itself) belong to no release and are not counted.
"""

from __future__ import annotations

import calendar
import math
import re
from dataclasses import dataclass
from typing import Iterable

_LINE = re.compile(
    r'^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)\s.*?"(?P<method>[A-Z]*)(?: (?P<target>[^" ]*))?[^"]*" (?P<status>\d{3}) \S+ '
    r"rt=(?P<rt>\S+) upstream=\S* ustatus=\S* urt=(?P<urt>.*?) release=(?P<release>\S*)\s*\Z")


@dataclass(frozen=True)
class LogEntry:
    at: float  # epoch seconds (docker's timestamp: when nginx wrote the line)
    status: int
    seconds: float  # the upstream's response time (nginx's own when there was none)
    release: str
    method: str = ""  # the request's (the shadow window compares the methods it copied)
    # The request's path, its query string dropped here (it can carry tokens, and the
    # per-route verdict names paths in the output and the history: plan/judging/routes.py).
    path: str = ""

    @property
    def error(self) -> bool:
        return self.status >= 500

    def over(self, bar: float | None) -> bool:
        """Its upstream took `bar` seconds or more (the shadow window's `shadow_timeout`): a copy
        nginx cut off there (its 504), or a live answer slower than any copy was allowed to be.
        nginx logs milliseconds: a cut-off copy reads 1.001-1.008 for a 1 s bar, hence the 1 ms."""
        return bar is not None and self.seconds >= bar - 0.001

    def judged_status(self, bar: float | None) -> int:
        """Its status judged by `bar`: an answer over it counts as the 504 a copy gets there."""
        return 504 if self.over(bar) and not self.error else self.status


def _epoch(ts: str) -> float:
    head, _, frac = ts.rstrip("Z").partition(".")
    whole = calendar.timegm((int(head[0:4]), int(head[5:7]), int(head[8:10]),
                             int(head[11:13]), int(head[14:16]), int(head[17:19]), 0, 0, 0))
    return whole + (float("0." + frac[:6]) if frac else 0.0)


def _seconds(urt: str, rt: str) -> float:
    """`urt` is "0.003", "-" (no upstream answered), or "0.001, 0.002" (several tried): the sum."""
    values = [float(v) for v in re.split(r"[,:\s]+", urt) if re.fullmatch(r"\d+(\.\d+)?", v)]
    if values:
        return sum(values)
    try:
        return float(rt)
    except ValueError:
        return 0.0


def request_path(target: str) -> str:
    """The request target without its query string or fragment."""
    return target.split("?", 1)[0].split("#", 1)[0]


def parse_line(line: str) -> LogEntry | None:
    """One entry, or None for anything else (nginx's error log shares the stream)."""
    match = _LINE.match(line.strip())
    if not match or not match.group("release"):
        return None
    return LogEntry(_epoch(match.group("ts")), int(match.group("status")),
                    _seconds(match.group("urt"), match.group("rt")), match.group("release"),
                    match.group("method"), request_path(match.group("target") or ""))


def parse_lines(lines: Iterable[str]) -> list[LogEntry]:
    return [e for e in (parse_line(line) for line in lines) if e is not None]


@dataclass(frozen=True)
class Window:
    """One release's requests over a window."""

    release: str
    requests: int = 0
    errors: int = 0
    p95_ms: float | None = None
    # Of `errors`, the answers at or over the window's bar (ShadowSpec.timeout): the new
    # release's copies nginx cut off, the live release's answers slower than a copy may be.
    cut_off: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def describe(self) -> str:
        p95 = f", p95 {self.p95_ms:.0f} ms" if self.p95_ms is not None else ""
        return f"{self.requests} requests, {self.errors} errors ({self.error_rate:.1%}){p95}"

    def to_dict(self) -> dict:
        cut_off = {"cut_off": self.cut_off} if self.cut_off else {}
        return {"release": self.release, "requests": self.requests, "errors": self.errors,
                "error_rate": round(self.error_rate, 4),
                "p95_ms": None if self.p95_ms is None else round(self.p95_ms, 1), **cut_off}


def p95(values: list[float]) -> float | None:
    """Nearest-rank 95th percentile (no interpolation: it is a value that was seen)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def window(entries: Iterable[LogEntry], release: str, *, since: float | None = None,
           until: float | None = None, bar: float | None = None) -> Window:
    """`bar`: answers whose upstream took that long count as errors (LogEntry.over), so that
    both sides of the shadow window are judged by the copies' timeout."""
    chosen = [e for e in entries if e.release == release and (since is None or e.at >= since)
              and (until is None or e.at < until)]
    latency = p95([e.seconds * 1000 for e in chosen])
    return Window(release, len(chosen), sum(1 for e in chosen if e.judged_status(bar) >= 500), latency,
                  sum(1 for e in chosen if e.over(bar)))
