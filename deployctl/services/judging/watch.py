"""Reading the proxy's access log on a host while a release is judged: the guard after every
switch, and the canary (services/judging/canary.py).

The log is the nginx container's stdout; each tick reads what came since the last one
(`docker logs --timestamps --since`, plan/lifecycle/docker_commands.py) and the pure code in
plan/judging/access_log.py and plan/judging/verdict.py turns it into numbers and a decision. A read per
tick, not a tailed stream, keeps no process or pipe on the host that a killed deployctl
could leave behind, and a tick that fails is simply read again.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Callable, Sequence

from ...events import Emit, Message, StepProgress, Timer
from ...plan.lifecycle import docker_commands as dc
from ...plan.judging.access_log import LogEntry, parse_line
from ...plan.judging.verdict import GuardVerdict, guard_verdict
from ..edge.proxy import HostProxy

TICK = 1.0  # seconds between evaluations (the guard's reaction time is about this + a switch)
CLOCK_WARNING = 2.0  # seconds of difference between the host's clock and ours worth telling


class ProxyLog:
    """The access log of the nginx running now, since an instant, kept between ticks.

    Each tick asks only for what came after the newest line it already has (`--since` that
    line's time, floored to the millisecond the argv carries): a busy proxy's log is not read
    and parsed again in full every second of a long canary. Lines at that edge come back
    twice; docker's nanosecond timestamp makes each line's text unique, so they are dropped
    by text.

    Docker's timestamps and `--since` are the host's clock; the switch time and the verdicts'
    windows are this machine's. A host whose clock is off (no NTP, a VM resumed) would shift
    every window by the difference: a host an hour behind answers `--since <the switch>`
    with nothing, and the guard would watch a failing release pass. So the first read asks
    the host's time (one round trip) and every instant crosses over by that offset: entries
    come back in this machine's time (tests/faults: the host's clock an hour behind)."""

    def __init__(self, proxy: HostProxy) -> None:
        self.proxy = proxy
        self._nginx: str | None = None
        self._since: float | None = None
        self._entries: list[LogEntry] = []
        self._next = 0.0  # where the next read starts (the host's clock)
        self._edge: set[str] = set()  # lines already read at or after _next
        self._offset: float | None = None  # the host's clock minus this machine's

    def entries(self, since: float) -> list[LogEntry]:
        """Every access-log entry since `since` (epoch seconds, this machine's clock) of the
        nginx running now, its `at` in this machine's clock."""
        offset = self.offset()
        if since != self._since:
            self._since, self._entries, self._next, self._edge = since, [], since + offset, set()
        if self._nginx is None:
            self._nginx = self.proxy.running_nginx()
            self._next, self._edge = since + offset, set()  # another nginx: its own log, from the start
        if self._nginx is None:
            return list(self._entries)
        result = self.proxy.conn.run(dc.logs_since(self._nginx, self._next), timeout=30)
        if not result.ok:  # that nginx went away (a new image replaced it): ask again next tick
            self._nginx = None
            return list(self._entries)
        read = [(line, parse_line(line)) for line in result.stdout.splitlines()]
        self._entries += [replace(e, at=e.at - offset) for line, e in read if e is not None and line not in self._edge]
        newest = max((e.at for _, e in read if e is not None), default=None)
        if newest is not None:
            self._next = max(self._next, math.floor(newest * 1000) / 1000)
            self._edge = {line for line, e in read if e is not None and e.at >= self._next}
        return list(self._entries)

    def offset(self) -> float:
        """The host's clock minus this machine's, read once (from the middle of the round
        trip: good to its half, milliseconds). 0 when the host cannot say."""
        if self._offset is None:
            asked = time.time()
            result = self.proxy.conn.run(dc.HOST_CLOCK, timeout=10)
            answered = time.time()
            try:
                self._offset = float(result.stdout.strip()) - (asked + answered) / 2 if result.ok else 0.0
            except ValueError:
                self._offset = 0.0
            if abs(self._offset) >= CLOCK_WARNING:
                self.proxy.emit(Message(
                    f"the host's clock is {abs(self._offset):.1f}s {'ahead of' if self._offset > 0 else 'behind'} "
                    "this machine's: the proxy's log is read with that difference taken out (fix the host's NTP)",
                    level="warning", host=self.proxy.conn.host))
        return self._offset


class Guard:
    """Watches `release` for `window` seconds after its switch; returns the verdict that
    ended the watch (revert, or the last one when the window passed quietly)."""

    def __init__(self, proxies: Sequence[HostProxy], emit: Emit, *, window: float, max_error_rate: float,
                 min_requests: int, stopped: Callable[[], bool] = lambda: False, tick: float = TICK,
                 host: str | None = None) -> None:
        # One proxy on a host; every node's on a Swarm (its global proxy service): one
        # verdict over all of them, as the load balancer spreads users over every node.
        self.logs = [ProxyLog(proxy) for proxy in proxies]
        self.host = host or proxies[0].conn.host
        self.emit, self.window, self.tick = emit, window, tick
        self.max_error_rate, self.min_requests = max_error_rate, min_requests
        # A rollout being interrupted: the watch ends early and the release stays live (it
        # was switched and verified; an interrupt is no evidence against it).
        self.stopped = stopped

    def watch(self, release: str, since: float) -> GuardVerdict:
        timer = Timer(self.emit, "guard", host=self.host,
                      detail=f"{release}: {self.window:g}s, revert above {self.max_error_rate:.1%} errors "
                             f"(from {self.min_requests} requests)")
        end = time.monotonic() + self.window
        while True:
            now = time.time()
            entries = sorted((e for log in self.logs for e in log.entries(since)), key=lambda e: e.at)
            verdict = guard_verdict(entries, release, since=since, now=now,
                                    max_error_rate=self.max_error_rate, min_requests=self.min_requests)
            if verdict.revert:
                timer.failed(verdict.reason)
                return verdict
            left = end - time.monotonic()
            if left <= 0:
                timer.done(f"{verdict.whole.describe()}: within the limit")
                return verdict
            self.emit(StepProgress("guard", f"{verdict.whole.describe()}; {left:.0f}s left", host=self.host))
            if self.stopped():
                timer.done(f"{verdict.whole.describe()}: cut short by an interrupt, {release} stays live")
                return verdict
            time.sleep(min(self.tick, left))
