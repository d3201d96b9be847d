"""The shadow window (issue 27, docs/release-safety.md) as data and decisions: after the new
release passed its health check and before the switch, every proxy copies live requests of
the chosen methods to it (nginx `mirror`, plan/edge/proxy_config.Shadow); only the live release's
answers reach users. Each copy's answer is logged stamped with the new release, so the
access log holds both releases' answers to the same requests, and the canary's verdict
(plan/judging/canary.canary_verdict) judges them: stopped as soon as the copies' error rate exceeds
the live answers' by more than `max_error_rate`; at the end of the window, or once
`min_requests` copies were answered, passed when their p95 is within `max_p95_ratio` times
the live answers' p95. Too few copies by the end of the window: stopped (nothing proves the
release good). Pure: services/judging/shadow.py does what this decides.

Why not POST: a copy is a real request to the new release, which usually shares the live
release's database; a copied POST would be done twice. Only the methods shadow_methods
names are copied (GET and HEAD by default), and the live side of the comparison counts the
same methods only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .access_log import LogEntry
from .canary import Board, CanaryVerdict, board, canary_verdict
from .routes import RouteRule

# Below this many ms of difference a p95 ratio is noise (1 ms vs 3 ms on a loaded machine).
SHADOW_P95_FLOOR_MS = 20.0
# The error rate stops the window early only when its errors are more than chance at this
# level (plan/judging/chance.py): with 20-50 copies, 2 errors are 4-10% yet no evidence of a
# rate over the bar (a healthy release under load was stopped so); a release failing 20% shows
# 4 of 20 (p 0.0006 at a 2% bar), a hung one all of them. One-sided; checked every second,
# hence 1% rather than 5%.
SHADOW_SIGNIFICANCE = 0.01


@dataclass(frozen=True)
class ShadowSpec:
    window: float
    min_requests: int
    methods: tuple[str, ...]
    max_error_rate: float
    max_p95_ratio: float
    timeout: float = 1.0  # a copy's, in nginx (plan/edge/proxy_config.Shadow)
    routes: RouteRule = RouteRule()

    step = "shadow"  # the gate's step name (services/judging/canary.CanaryGate)

    def headline(self, release: str, where: str) -> str:
        return f"{release}: copies of {'/'.join(self.methods)} requests for {self.window:g}s on {where}"

    def describe(self) -> str:
        return (f"copies of live {'/'.join(self.methods)} requests go to the new release (its answers thrown "
                f"away) for {self.window:g}s or until {self.min_requests} were answered; the proxy's access log "
                f"read every second on every host: stop as soon as its error rate exceeds the live release's on the "
                f"same requests by {self.max_error_rate:.1%}, or on any route its share of 5xx or 4xx answers exceeds "
                f"the live release's by {self.routes.max_shift:.0%} (from {self.routes.min_requests} copies on that "
                f"route); at the end stop if its p95 is over "
                f"{self.max_p95_ratio:g}x the live release's; a copy slower than {self.timeout:g}s is an upstream "
                f"failure (a user's next request on a keep-alive connection waits for the copy of the last)")

    def board(self, logs: Mapping[str, list[LogEntry]], new: str, live: str, since: float) -> Board:
        """Only the copied methods, on both sides: the same requests."""
        chosen = {host: [e for e in entries if e.method in self.methods] for host, entries in logs.items()}
        # Both sides by the same bar: a copy is cut off at `timeout` (nginx's 504), a live answer
        # has no such cap; one as slow counts as the live side's error too, or load alone (which
        # slows both) would count against the new release only.
        return board(chosen, new, live, since=since, max_routes=self.routes.max_routes, bar=self.timeout)

    def judge(self, current: Board, left: float) -> CanaryVerdict:
        final = left <= 0 or current.new.requests >= self.min_requests
        verdict = canary_verdict(current.new, current.live, max_error_rate=self.max_error_rate,
                                 max_p95_ms=SHADOW_P95_FLOOR_MS, min_requests=self.min_requests, final=final,
                                 max_p95_ratio=self.max_p95_ratio, keys="shadow", routes=current.routes,
                                 route_rule=self.routes, significance=SHADOW_SIGNIFICANCE, out_of_time=left <= 0,
                                 bar=self.timeout)
        return verdict.with_board(current)

    def summary(self, current: Board) -> str:
        """The progress line: both sides answered the same requests (no share to show)."""
        new, live = current.new, current.live
        if not (new.cut_off or live.cut_off):
            return f"copies {new.requests} req/{new.errors} err, live {live.requests} req/{live.errors} err"
        return (f"copies {new.requests} req/{new.errors} err ({new.cut_off} cut off at {self.timeout:g}s), "
                f"live {live.requests} req/{live.errors} err ({live.cut_off} as slow)")


def shadow_spec(rollout, seconds: float | None = None) -> ShadowSpec | None:  # type: ignore[no-untyped-def]
    """From `[environments.<env>.rollout]`, `seconds` (--shadow N) overriding shadow_window; None when 0."""
    window = rollout.shadow_window if seconds is None else seconds
    if not window:
        return None
    return ShadowSpec(float(window), rollout.shadow_min_requests, tuple(rollout.shadow_methods),
                      rollout.shadow_max_error_rate, rollout.shadow_max_p95_ratio, rollout.shadow_timeout,
                      RouteRule(rollout.shadow_route_max_shift, rollout.shadow_route_min_requests, rollout.max_routes))
