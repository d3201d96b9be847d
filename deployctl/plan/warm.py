"""The warm window: after a switch the previous release's containers keep running (out of
the proxy) for `rollout.warm_window` seconds, so a rollback inside it is a proxy switch only.

The host keeps the record (`<state>/warm.json`): which release went warm, when, and until
when. The window is computed from it, never from a process's memory; the next deployctl
command that takes the host's lock (deploy, rollback) stops a warm release past its window.
No host-side timer stops it on its own.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class WarmRelease:
    release: str
    since: float  # epoch seconds: when it left the proxy
    until: float  # since + the window in force then

    def expired(self, now: float) -> bool:
        return now >= self.until


def parse_warm(data: bytes | None) -> list[WarmRelease]:
    """A missing or torn file is no warm release: the next retire stops what it does not know."""
    if not data:
        return []
    try:
        items = json.loads(data)
        return [WarmRelease(str(i["release"]), float(i["since"]), float(i["until"])) for i in items]
    except (ValueError, TypeError, KeyError):
        return []


def render_warm(warm: list[WarmRelease]) -> bytes:
    return (json.dumps([asdict(w) for w in warm], sort_keys=True) + "\n").encode()


def after_switch(live: str, previous: str | None, *, now: float, window: float) -> list[WarmRelease]:
    """The warm list once `live` serves: the release it replaced, when there is a window."""
    if previous is None or previous == live or window <= 0:
        return []
    return [WarmRelease(previous, now, now + window)]


def expired(warm: list[WarmRelease], *, now: float, keep: set[str]) -> tuple[list[str], list[WarmRelease]]:
    """(releases to stop now, the warm list that remains). `keep`: never stopped here (the
    live release, a rollback's target)."""
    stop = [w.release for w in warm if w.expired(now) and w.release not in keep]
    remain = [w for w in warm if not w.expired(now) and w.release not in keep]
    return stop, remain
