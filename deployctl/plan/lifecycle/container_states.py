"""A container's state as one `docker container inspect` prints it
(docker_commands.STATE_FORMAT), parsed: what the switch, the health wait and an error that
names a container all read. Pure: the inspect itself runs in services/."""

from __future__ import annotations

from dataclasses import dataclass

STOPPED = ("exited", "dead")


@dataclass(frozen=True)
class ContainerState:
    name: str
    status: str  # created | running | exited | ...
    health: str
    ip: str
    release: str
    started: str
    image: str
    exit_code: int = 0  # the last exit's (0 while it runs)
    restarts: int = 0  # by its restart policy, since it was last started


def parse_states(stdout: str) -> dict[str, ContainerState]:
    """name -> state, for every line of STATE_FORMAT (an inspect of several containers that
    exits 1 because some are missing still prints the ones that exist)."""
    out = {}
    for line in stdout.splitlines():
        parts = line.split("|")
        if len(parts) != 9:
            continue
        name, status, health, ips, release, started, image, exit_code, restarts = parts
        name = name.lstrip("/")
        out[name] = ContainerState(name, status, health, (ips.split() or [""])[0], release, started, image,
                                   int(exit_code) if exit_code.lstrip("-").isdigit() else 0,
                                   int(restarts) if restarts.isdigit() else 0)
    return out


def crash(state, restarts_before: int | None) -> str | None:  # type: ignore[no-untyped-def]
    """Why `state` (or None when it is gone) shows a container that crashed
    before it was healthy, or None when it did not. `restarts_before`: its restart count when
    the wait first saw it (a container started long ago may have restarted before)."""
    if state is None:
        return "the container is gone"
    if state.status in STOPPED:
        return f"it {'exited' if state.status == 'exited' else 'is dead'} with code {state.exit_code}"
    if state.status == "restarting":
        return f"it exited with code {state.exit_code} and its restart policy is restarting it"
    if restarts_before is not None and state.restarts > restarts_before:
        return f"its restart policy restarted it {state.restarts - restarts_before} time(s)"
    return None
