"""The shadow window's "more than chance" (plan/judging/chance.py): the one-sided binomial tail."""

from __future__ import annotations

import math

from deployctl.plan.judging.chance import beyond_chance, tail


def by_hand(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))


def test_the_tail_is_the_binomial_one():
    for k, n, p in ((2, 25, 0.02), (3, 25, 0.02), (4, 20, 0.02), (20, 20, 0.02), (13, 20, 0.5), (1, 1, 0.3)):
        assert math.isclose(tail(k, n, p), by_hand(k, n, p), rel_tol=1e-9, abs_tol=1e-15), (k, n, p)
    assert round(tail(2, 25, 0.02), 3) == 0.089  # the healthy release stopped under load: not proof
    assert round(tail(3, 25, 0.02), 3) == 0.013
    assert tail(4, 20, 0.02) < 0.001  # the 20%-failing release at 20 copies: proof


def test_its_edges():
    assert tail(0, 10, 0.1) == 1.0 and tail(11, 10, 0.1) == 0.0
    assert tail(1, 10, 0.0) == 0.0  # a live release that never errs, a 0% margin: any error is proof
    assert tail(5, 10, 1.0) == 1.0
    # A million requests: no underflow, and 2.2% against a 2% rate is proof at that size.
    assert beyond_chance(22_000, 1_000_000, 0.02, 0.01) and not beyond_chance(20_050, 1_000_000, 0.02, 0.01)


def test_beyond_chance_is_below_the_level():
    assert not beyond_chance(2, 25, 0.02, 0.01) and not beyond_chance(3, 25, 0.02, 0.01)
    assert beyond_chance(4, 25, 0.02, 0.01)
