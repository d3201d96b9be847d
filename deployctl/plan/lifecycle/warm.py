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

from .releases import is_release_id


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
        # An entry whose release is no release id is dropped like a torn file: ids become
        # container names and paths, and deployctl never wrote such an entry.
        return [WarmRelease(str(i["release"]), float(i["since"]), float(i["until"])) for i in items
                if is_release_id(i["release"])]
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


def drain_left(stopping: set[str], *, warm_before: list[WarmRelease], now: float, drain: float) -> float:
    """Seconds still to wait before `stopping` may be stopped: nginx's old workers finish the
    requests they hold for a release for up to `drain` seconds after it left the proxy.

    A release the warm record knows left the proxy at its `since`: only what remains of the
    drain (usually nothing: it was warm for a whole deploy, or through the guard's watch).
    Any other release (the one this switch replaced, or one the host knows nothing about)
    may have served until now: the whole drain. Before this, every deploy slept the drain
    whenever anything older still ran, which with the warm window was every deploy after the
    second."""
    if not stopping:
        return 0.0
    left = 0.0
    warm = {w.release: w for w in warm_before}
    for release in stopping:
        if release not in warm:
            return drain
        left = max(left, warm[release].since + drain - now)
    return max(0.0, left)
