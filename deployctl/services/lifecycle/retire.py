"""What follows a verified switch on a host, for deploy and rollback alike: the releases out
of the proxy are drained and stopped (kept for rollback), except the one the switch replaced
while its warm window lasts (plan/lifecycle/warm.py), and the releases beyond `rollout.keep` go (prune).

Nothing of it that has nothing to wait for is on the command's path (issue 26: deploys
clearly faster than docker-compose): a release out of the proxy long enough (the older warm
release every deploy after the second retires) is stopped, and the pruned releases removed,
by the host in the background (plan/lifecycle/docker_commands.in_background), one command sent after
the warm record is written. `docker stop` of a release is the engine's teardown (0.7-0.9 s
on a loaded 2-core machine), prune's `docker rm`s 0.3 s: a deploy's wall time paid the
longer of the two before. A release the switch has just replaced still holds requests: it
is drained and stopped here, and the command waits for that (its failure is a warning).

Nothing is leaked when the background work does not finish (a host reboot, a stop that
fails): the next command's retire stops every running release that is neither live nor
warm, and its prune removes what is beyond `keep`, both from what the host runs now. A warm
release past its window is stopped by the next deployctl command that takes the host's lock
(`stop_expired_warm`): the window is computed from the host's record, never from a
process's memory, so a killed deployctl leaves nothing that would not be stopped.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from ...adapters.connector import check
from ...config.models import Rollout
from ...plan.lifecycle import docker_commands as dc
from ...events import Emit, Message, Timer
from ...plan.lifecycle.warm import after_switch, drain_left, expired, parse_warm, render_warm
from .prune import prune


def retire_and_prune(conn, switch, state, layout, rollout: Rollout, live: str,  # type: ignore[no-untyped-def]
                     emit: Emit, *, previous: str | None, warm_window: float) -> None:
    """Raises the first failure once both ended (the callers warn: the release is live)."""
    # The engine's two listings at once: the containers (one `docker ps` for both, the running
    # workers too) and the release networks (prune's orphans); neither waits for the other.
    with ThreadPoolExecutor(max_workers=1) as beside:
        networks = beside.submit(switch.release_network_listing)
        states, workers = switch.release_listing()
    on_host = {release: list(containers) for release, containers in states.items()}
    running = frozenset(r for r, containers in states.items() if "running" in containers.values())
    background: list[list[str]] = []  # what the host does after this command, in this order
    with ThreadPoolExecutor(max_workers=2) as pool:
        retired = pool.submit(retire, switch, live, rollout.drain, on_host, previous=previous,
                              warm_window=warm_window, background=background, workers=workers)
        # Prune only lists its removals (they go in the background after the stops): it
        # reads the history and the warm record meanwhile, beside retire's drain.
        removals: list[list[str]] = []
        pruned = pool.submit(prune, conn, switch, state, layout, rollout.keep, live, emit, on_host,
                             running=running, background=removals, networks=networks.result)
    try:
        retired.result()
    finally:
        # Also after a failed drain-and-stop: what was listed is still due.
        pruned.result()
        if background or removals:
            check(conn, dc.in_background([*background, *removals]))


def retire(switch, live: str, drain: float,  # type: ignore[no-untyped-def]
           on_host: dict[str, list[str]] | None = None, *, previous: str | None = None,
           warm_window: float = 0.0, background: list[list[str]] | None = None,
           workers: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Drain, then stop every other release's running containers (kept for rollback),
    except `previous`'s while its warm window lasts: those keep running, out of the proxy,
    and the host records until when (plan/lifecycle/warm.py). Returns the containers per release.
    With `background` (a list the caller sends as one background command), the stop of the
    releases whose drain is over is appended there instead of waited for. `workers`: the
    running workers (container -> release) when the caller listed them (HostSwitch.release_listing)."""
    conn, layout, emit = switch.conn, switch.layout, switch.emit
    switch.step = "drain"
    on_host = switch.release_containers() if on_host is None else on_host
    now = time.time()
    warm_before = parse_warm(conn.read_file(layout.warm))
    warm = after_switch(live, previous if previous in on_host else None, now=now, window=warm_window)
    conn.put_file(layout.warm, render_warm(warm), mode=0o600)
    kept = {w.release for w in warm}
    old = {name: release for release, names in on_host.items() if release != live and release not in kept
           for name in names}
    if kept:  # a warm release stays for a fast rollback, but never its workers: they would consume twice
        if workers is None:
            workers = dict(line.partition("|")[::2] for line in check(conn, dc.running_workers(switch.names)).splitlines())
        for name, release in workers.items():
            if release in kept:
                old[name] = release
    running = switch.running(list(old))
    drained = [name for name in running
               if drain_left({old[name]}, warm_before=warm_before, now=now, drain=drain) <= 0]
    if drained and background is not None:
        background.append(dc.stop(drained))
        emit(Message(f"out of the proxy long enough: the host stops {', '.join(drained)} in the background "
                     "(kept for rollback)", host=conn.host))
        running = [name for name in running if name not in drained]
    if running:
        wait = drain_left({old[name] for name in running}, warm_before=warm_before, now=now, drain=drain)
        detail = f"{wait:.1f}s, then stop" if wait > 0 else "out of the proxy long enough: stop"
        timer = Timer(emit, "drain", host=conn.host, detail=f"{detail} {', '.join(running)}")
        time.sleep(max(0.0, wait - (time.time() - now)))
        switch.stop(running)
        timer.done("stopped (kept for rollback)")
    for w in warm:
        emit(Message(f"{w.release} stays running (out of the proxy) for {warm_window:g}s: "
                     "a rollback until then is a proxy switch", host=conn.host))
    return on_host


def stop_expired_warm(switch, keep: set[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """Stops the warm releases past their window (from the host's warm.json), but never
    one in `keep` (the live release, a rollback's target). Called under the lock."""
    conn, layout, emit = switch.conn, switch.layout, switch.emit
    warm = parse_warm(conn.read_file(layout.warm))
    if not warm:
        return []
    stop, remain = expired(warm, now=time.time(), keep=keep)
    if stop:
        on_host = switch.release_containers()
        names = [n for r in stop for n in on_host.get(r, [])]
        running = switch.running(names)
        if running:
            timer = Timer(emit, "warm", host=conn.host,
                          detail=f"{', '.join(stop)}: warm window over, stop {', '.join(running)}")
            switch.stop(running)
            timer.done("stopped (kept for rollback)")
    if stop or len(remain) != len(warm):
        conn.put_file(layout.warm, render_warm(remain), mode=0o600)
    return stop
