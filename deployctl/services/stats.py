"""`deployctl stats`: DORA figures for an environment from its hosts' release histories.

Every reachable host's releases.jsonl is read and merged (a release rolled out to many hosts
counts once); commit times come from git in the working directory, when it knows them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConnectError, UsageError
from ..events import Emit
from ..plan.stats import Stats, compute, merge, parse_since
from .lifecycle.host_state import HostState
from .env import Env


@dataclass
class StatsResult:
    stats: Stats
    hosts_read: list[str] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)  # host -> why


def stats(env: Env, *, since: str = "30d", now: float | None = None,
          workdir: Path | None = None, connectors: list | None = None, emit: Emit | None = None) -> StatsResult:
    from ..adapters.git import commit_times

    try:
        window = parse_since(since)
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None
    conns = connectors if connectors is not None else env.connectors()
    layout = env.layout
    histories, read, unreachable = [], [], {}
    try:
        for conn in conns:
            try:
                conn.connect()
            except ConnectError as exc:
                unreachable[conn.host] = exc.message
                continue
            histories.append(HostState(conn, layout, emit).history().records)
            read.append(conn.host)
    finally:
        for conn in conns:
            conn.close()
    if not read:
        raise ConnectError(f"{env.name}: no host could be reached to read its history",
                           hint="; ".join(f"{h}: {why}" for h, why in unreachable.items()) or None)
    records = merge(histories)
    revisions = [r.revision for r in records if r.action == "deploy" and r.revision]
    times = commit_times(workdir or Path.cwd(), revisions)
    result = compute(records, now=time.time() if now is None else now, window=window, commit_times=times)
    return StatsResult(result, read, unreachable)
