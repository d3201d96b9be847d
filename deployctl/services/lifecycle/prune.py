"""Removes releases beyond `rollout.keep` on a host: their containers, their secret files,
and their images when no kept release uses them. Never the live release nor the previous
good one (plan/lifecycle/releases.prune_selection decides)."""

from __future__ import annotations

from typing import Callable

from ...events import Emit, Timer
from ...plan.lifecycle import docker_commands as dc
from ...plan.lifecycle.releases import prune_selection
from ...plan.lifecycle.warm import parse_warm


def prune(conn, switch, state, layout, keep: int, live: str, emit: Emit,
          on_host: dict[str, list[str]] | None = None, *, running: frozenset[str] = frozenset(),
          background: list[list[str]] | None = None, networks: Callable[[], str] | None = None) -> list[str]:
    """`on_host`: release -> containers, when the caller has just listed them. `running`:
    releases left alone this time (a retire beside this prune is draining and stopping
    them; the next prune removes them if they are still beyond `keep`). `background`: the
    removals are appended there (the caller has the host run them after the command)
    instead of run here. `networks`: gives the release networks' listing the caller started
    already (HostSwitch.release_network_listing)."""
    if on_host is None:
        on_host = switch.release_containers()
    history = state.history()
    doomed = prune_selection(list(on_host), keep=keep, live=live, previous_good=history.previous_good(live))
    warm = {w.release for w in parse_warm(conn.read_file(layout.warm))}
    # A warm release is one rollback away: never pruned.
    doomed = [r for r in doomed if r not in warm and r not in running]
    # Networks whose release has no container left here (a deployctl killed between the
    # network and the start, containers removed by hand): each holds a subnet until removed.
    orphans = switch.orphan_release_networks(keep={live, *on_host, *warm}, listed=networks() if networks else None)
    if orphans:
        switch.remove_release_networks(orphans)
    if not doomed:
        return []
    timer = Timer(emit, "prune", host=conn.host, detail=", ".join(doomed))
    kept_images = set()
    for release in on_host:
        if release not in doomed:
            record = history.deployed(release)
            kept_images |= set(record.images.values()) if record else set()
    removals: list[list[str]] = []
    for release in doomed:
        removals.append(dc.remove(on_host[release]))
        removals.append(dc.network_remove([switch.names.release_network(release)]))
        removals.append(dc.remove_tree(layout.release_secrets(release)))
        record = history.deployed(release)
        # Only pulled images (by digest): on a `local` target the images are the developer's builds.
        images = sorted(i for i in set(record.images.values()) - kept_images if "@" in i) if record else []
        if images:
            removals.append(dc.remove_images(images))  # best effort: another app may use the image
    if background is not None:
        background.extend(removals)
        timer.done(f"kept the newest {keep}; the host removes the rest in the background")
        return doomed
    for argv in removals:
        conn.run(argv)
    timer.done(f"kept the newest {keep}")
    return doomed
