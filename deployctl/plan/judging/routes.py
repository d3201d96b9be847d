"""Per-route numbers for the shadow window and the canary (issue 27, docs/release-safety.md):
which routes a new release answers differently from the live one, by status class.

A route is the request's method and path with the query string gone and the segments that
vary per request folded into `:id` (numbers, UUIDs, long hex or hash-like tokens), so
`GET /orders/1234?token=...` and `GET /orders/99` are one route, `GET /orders/:id`. It knows
nothing of any app's paths. The query string is dropped when the log line is parsed
(plan/judging/access_log.py): it can carry tokens, and nothing here may print one.

A scanner hitting random URLs makes one route per URL; only the `max_routes` busiest routes
(both releases' requests together) are kept apart, the rest pooled as `other`, so the board,
the verdict and the history record stay small whatever the traffic.

The rule: a route regresses when the new release's share of 5xx answers on it, or of 4xx
answers (a route that now answers 404 where it answered 200), exceeds the live release's
share on the same route by more than `max_shift`, once both releases answered at least
`min_requests` requests on it (three requests, one failed, is not 33%). Pure.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from .access_log import LogEntry, request_path

ID = ":id"
OTHER = "other"
MAX_KEY = 160  # characters: a route key longer than this is cut (a scanner's path)
CLASSES = ("2xx", "3xx", "4xx", "5xx")
JUDGED = ("5xx", "4xx")  # the classes whose rise on a route counts against the new release
WORST = 3  # routes named in a verdict

_NUMBER = re.compile(r"\d+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]{12,}")  # a hash, an object id (24), a digest
# A token: long, URL-safe, with digits among letters (a slug of words has none).
_TOKEN = re.compile(r"(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{20,}")


def _segment(part: str) -> str:
    if _NUMBER.fullmatch(part) or _UUID.fullmatch(part) or _HEX.fullmatch(part) or _TOKEN.fullmatch(part):
        return ID
    return part


def route_key(method: str, path: str) -> str:
    """`GET /users/:id/orders` from a method and a request target (its query, if any, dropped
    here too: a caller's path may still carry one)."""
    path = request_path(path)
    if "://" in path:  # absolute-form (`GET http://host/a HTTP/1.1`): its path only
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    if not method or not path.startswith("/"):
        return OTHER  # a request line nginx could not parse, or `*` (OPTIONS *)
    key = f"{method} " + "/".join(_segment(part) for part in path.split("/"))
    return key if len(key) <= MAX_KEY else key[:MAX_KEY - 1] + "…"


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 200 <= status < 600 else "other"


@dataclass(frozen=True)
class RouteCounts:
    """One release's answers on one route, by status class."""

    requests: int = 0
    by_class: tuple[tuple[str, int], ...] = ()

    def count(self, cls: str) -> int:
        return dict(self.by_class).get(cls, 0)

    def share(self, cls: str) -> float:
        return self.count(cls) / self.requests if self.requests else 0.0

    def describe(self) -> str:
        mix = ", ".join(f"{n} {cls}" for cls, n in self.by_class if n)
        return f"{self.requests} ({mix})" if mix else "0"

    def to_dict(self) -> dict:
        return {"requests": self.requests, **{cls: self.count(cls) for cls in CLASSES}}


def _counts(statuses: Iterable[int]) -> RouteCounts:
    by = Counter(status_class(s) for s in statuses)
    return RouteCounts(sum(by.values()), tuple((cls, by[cls]) for cls in (*CLASSES, "other") if by[cls]))


@dataclass(frozen=True)
class RouteDiff:
    """One route on both sides, and how much worse the new release is on it."""

    route: str
    new: RouteCounts
    live: RouteCounts

    @property
    def worst_class(self) -> str:
        return max(JUDGED, key=lambda cls: self.new.share(cls) - self.live.share(cls))

    @property
    def shift(self) -> float:
        """The largest rise of a judged class's share, new over live (negative: better)."""
        cls = self.worst_class
        return self.new.share(cls) - self.live.share(cls)

    def judged(self, min_requests: int) -> bool:
        return self.new.requests >= min_requests and self.live.requests >= min_requests

    def describe(self) -> str:
        cls = self.worst_class
        return (f"{self.route}: {cls} {self.new.share(cls):.0%} vs live {self.live.share(cls):.0%} "
                f"({self.shift:+.0%}); new {self.new.describe()}, live {self.live.describe()}")

    def to_dict(self) -> dict:
        return {"route": self.route, "class": self.worst_class, "shift": round(self.shift, 4),
                "new": self.new.to_dict(), "live": self.live.to_dict()}


def _rank(route: RouteDiff) -> tuple:
    """Worst first: the largest shift, then the busier route, then by name (a stable order)."""
    return (-route.shift, -route.new.requests, route.route)


@dataclass(frozen=True)
class RouteBoard:
    """Every tracked route on both sides (the busiest `max_routes`, the rest as `other`)."""

    routes: tuple[RouteDiff, ...] = ()

    def worst(self, n: int = WORST) -> tuple[RouteDiff, ...]:
        """The routes where the new release is worse, worst first (ties: the busier first)."""
        return tuple(sorted((r for r in self.routes if r.shift > 0), key=_rank)[:n])

    def regressed(self, max_shift: float, min_requests: int) -> RouteDiff | None:
        """The worst route over `max_shift` among those with enough requests on both sides."""
        over = [r for r in self.routes if r.judged(min_requests) and r.shift > max_shift]
        return min(over, key=_rank) if over else None

    def describe(self, n: int = WORST) -> str:
        worst = self.worst(n)
        return "; ".join(r.describe() for r in worst) if worst else "no route worse than live"


def route_board(entries: Iterable[LogEntry], new: str, live: str, *, max_routes: int,
                bar: float | None = None) -> RouteBoard:
    """Both releases' answers per route. The tracked routes are the same on both sides.
    `bar`: an answer that took that long counts as a 504 on both sides (LogEntry.judged_status)."""
    keyed = [(route_key(e.method, e.path), e) for e in entries if e.release in (new, live)]
    volume = Counter(key for key, _ in keyed)
    kept = {key for key, _ in volume.most_common(max_routes)}
    statuses: dict[tuple[str, str], list[int]] = {}
    for key, entry in keyed:
        statuses.setdefault((key if key in kept else OTHER, entry.release), []).append(entry.judged_status(bar))
    names = sorted({key for key, _ in statuses})
    return RouteBoard(tuple(RouteDiff(key, _counts(statuses.get((key, new), [])),
                                      _counts(statuses.get((key, live), []))) for key in names))


@dataclass(frozen=True)
class RouteRule:
    """The per-route settings of a gate (`<gate>_route_max_shift`, `<gate>_route_min_requests`,
    `max_routes` in [environments.X.rollout])."""

    max_shift: float = 0.2
    min_requests: int = 20
    max_routes: int = 100

    def judge(self, routes: RouteBoard, keys: str) -> str:
        """Why the new release is stopped on a route ("" when no route says so)."""
        worst = routes.regressed(self.max_shift, self.min_requests)
        if worst is None:
            return ""
        cls = worst.worst_class
        return (f"route {worst.route}: {cls} {worst.new.share(cls):.1%} ({worst.new.count(cls)} of "
                f"{worst.new.requests}) vs live {worst.live.share(cls):.1%} ({worst.live.count(cls)} of "
                f"{worst.live.requests}): {worst.shift:+.1%} exceeds {keys}_route_max_shift {self.max_shift:.1%}")
