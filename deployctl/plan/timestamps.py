"""The timestamps records carry: `when` (RFC 3339, whole seconds, UTC) and a switch's
`started`/`live` (to the millisecond). Their own module so that a rollback's records do not
import the build plan and the stats (plan/pipeline/build.py, plan/stats.py re-export them)."""

from __future__ import annotations

import time


def rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def timing(started: float, live: float) -> dict[str, str]:
    """A record's `extra`: when its switch sequence began and when it ended, to the millisecond
    (`when` has whole seconds), for the time to restore."""
    return {"started": iso_ms(started), "live": iso_ms(live)}


def iso_ms(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}Z"
