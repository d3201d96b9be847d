"""Whether a count of errors is more than chance: the shadow window's early stop
(plan/judging/shadow.py) asks it before stopping a release on its error rate. Pure.

Why: the window ends as soon as `shadow_min_requests` copies were answered (20-50), and over so
few, 2 errors are already 8% of 25. A healthy release under load had exactly that (two copies
cut off at shadow_timeout on a machine at load average 18-35): no evidence that its error rate
is over the bar. The question asked is the one-sided binomial test: if the release's true error
rate were exactly the bar (the live release's rate + shadow_max_error_rate), how likely would
this many errors, or more, be among this many requests? Below `level`: more than chance.
"""

from __future__ import annotations

import math


def tail(errors: int, requests: int, rate: float) -> float:
    """P(X >= errors) for X ~ Binomial(requests, rate): exact, summed in log space (no
    underflow at a million requests)."""
    if errors <= 0:
        return 1.0
    if errors > requests or rate <= 0.0:
        return 0.0
    if rate >= 1.0:
        return 1.0
    log_p, log_q = math.log(rate), math.log1p(-rate)
    # The shorter of the two sums: P(X >= k) directly, or 1 - P(X < k).
    def term(i: int) -> float:
        return math.exp(math.lgamma(requests + 1) - math.lgamma(i + 1) - math.lgamma(requests - i + 1)
                        + i * log_p + (requests - i) * log_q)
    if errors > requests / 2:
        return min(1.0, math.fsum(term(i) for i in range(errors, requests + 1)))
    return max(0.0, 1.0 - math.fsum(term(i) for i in range(errors)))


def beyond_chance(errors: int, requests: int, rate: float, level: float) -> bool:
    """More errors than a release failing at `rate` gives with probability `level` or more."""
    return tail(errors, requests, rate) < level
