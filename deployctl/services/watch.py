"""Reading the proxy's access log on a host while a release is judged: the guard after every
switch, and the canary (services/canary.py).

The log is the nginx container's stdout; each tick reads what came since the last one
(`docker logs --timestamps --since`, plan/docker_commands.py) and the pure code in
plan/access_log.py and plan/verdict.py turns it into numbers and a decision. A read per
tick, not a tailed stream, keeps no process or pipe on the host that a killed deployctl
could leave behind, and a tick that fails is simply read again.
"""

from __future__ import annotations

import math
import time
from typing import Callable

from ..events import Emit, StepProgress, Timer
from ..plan import docker_commands as dc
from ..plan.access_log import LogEntry, parse_line
from ..plan.verdict import GuardVerdict, guard_verdict
from .proxy import HostProxy

TICK = 1.0  # seconds between evaluations (the guard's reaction time is about this + a switch)


class ProxyLog:
    """The access log of the nginx running now, since an instant, kept between ticks.

    Each tick asks only for what came after the newest line it already has (`--since` that
    line's time, floored to the millisecond the argv carries): a busy proxy's log is not read
    and parsed again in full every second of a long canary. Lines at that edge come back
    twice; docker's nanosecond timestamp makes each line's text unique, so they are dropped
    by text."""

    def __init__(self, proxy: HostProxy) -> None:
        self.proxy = proxy
        self._nginx: str | None = None
        self._since: float | None = None
        self._entries: list[LogEntry] = []
        self._next = 0.0  # where the next read starts
        self._edge: set[str] = set()  # lines already read at or after _next

    def entries(self, since: float) -> list[LogEntry]:
        """Every access-log entry since `since` (epoch seconds) of the nginx running now."""
        if since != self._since:
            self._since, self._entries, self._next, self._edge = since, [], since, set()
        if self._nginx is None:
            self._nginx = self.proxy.running_nginx()
            self._next, self._edge = since, set()  # another nginx: its own log, from the start
        if self._nginx is None:
            return list(self._entries)
        result = self.proxy.conn.run(dc.logs_since(self._nginx, self._next), timeout=30)
        if not result.ok:  # that nginx went away (a new image replaced it): ask again next tick
            self._nginx = None
            return list(self._entries)
        read = [(line, parse_line(line)) for line in result.stdout.splitlines()]
        self._entries += [e for line, e in read if e is not None and line not in self._edge]
        newest = max((e.at for _, e in read if e is not None), default=None)
        if newest is not None:
            self._next = max(self._next, math.floor(newest * 1000) / 1000)
            self._edge = {line for line, e in read if e is not None and e.at >= self._next}
        return list(self._entries)


class Guard:
    """Watches `release` for `window` seconds after its switch; returns the verdict that
    ended the watch (revert, or the last one when the window passed quietly)."""

    def __init__(self, proxy: HostProxy, emit: Emit, *, window: float, max_error_rate: float, min_requests: int,
                 stopped: Callable[[], bool] = lambda: False, tick: float = TICK) -> None:
        self.log = ProxyLog(proxy)
        self.host = proxy.conn.host
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
            verdict = guard_verdict(self.log.entries(since), release, since=since, now=now,
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
