"""Checks made before anything changes on any host: reachable (host key verified), docker
present, images there or pullable, the registry login working from the host."""

from __future__ import annotations

import posixpath
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

from ...adapters.connector import check
from ...errors import ConnectError
from ...events import Emit, Timer
from ...plan.lifecycle import docker_commands as dc
from ...secrets import Secret, redactor


def connect(conn, emit: Emit) -> None:
    """Opens the connection (SSH: host key verified) and checks the docker CLI and engine."""
    timer = Timer(emit, "connect", host=conn.host)
    conn.connect()
    _docker_usable(conn, timer, conn.run(dc.docker_version(), timeout=30))


def connect_started(conn, emit: Emit) -> Callable[[], None]:
    """`connect` with the engine's check (`docker version`, one round trip) left running
    beside what the caller reads next: returns the function that waits for it and raises
    `connect`'s error (a rollback checks its target's containers meanwhile, read only, and
    says a failed check before anything else: services/lifecycle/rollback.py)."""
    timer = Timer(emit, "connect", host=conn.host)
    conn.connect()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="docker-version")
    version = pool.submit(lambda: conn.run(dc.docker_version(), timeout=30))
    pool.shutdown(wait=False)
    done: list[bool] = []

    def usable() -> None:
        result = version.result()
        if not done:
            _docker_usable(conn, timer, result)
            done.append(True)
    return usable


def _docker_usable(conn, timer: Timer, result) -> None:  # type: ignore[no-untyped-def]
    if not result.ok:
        raise ConnectError(f"{conn.host}: docker is not usable: {redactor(result.stderr.strip())[:300]}",
                           hint="install Docker on the host and let the SSH user run it")
    timer.done(f"docker {result.stdout.strip()}")


def registry_login(conn, emit: Emit, server: str, username: str, password: Secret) -> str:
    """`docker login --password-stdin` on the host (the password never is on a command line)
    into a client config directory made for this command (plan/lifecycle/docker_commands.py:
    registry_config_dir), kept on the connector as `registry_config` for the pulls, and
    removed by registry_logout: the host user's own ~/.docker/config.json never holds it.
    Returns that directory."""
    timer = Timer(emit, "registry login", host=conn.host, detail=server)
    config_dir = check(conn, dc.registry_config_dir(), timeout=30).strip()
    if not config_dir.startswith("/"):
        raise ConnectError(f"{conn.host}: mktemp -d printed no directory ({config_dir[:100]!r})")
    conn.registry_config = config_dir
    # Best effort: what a killed deployctl left (its login) goes with the next login.
    conn.run(dc.sweep_registry_configs(posixpath.dirname(config_dir)), timeout=30)
    result = conn.run(dc.login(server, username, config_dir), stdin=password.reveal().encode(), timeout=60)
    if not result.ok:
        registry_logout(conn)
        raise ConnectError(f"{conn.host}: docker login to {server} as {username!r} failed: "
                           f"{redactor(result.stderr.strip())[:300]}")
    timer.done()
    return config_dir


def registry_config(conn) -> str | None:  # type: ignore[no-untyped-def]
    """The command's registry login on this host (None: not logged in)."""
    return getattr(conn, "registry_config", None)


def registry_logout(conn) -> None:  # type: ignore[no-untyped-def]
    """Removes the command's registry login from the host; a no-op when there is none. Best
    effort: called on the way out of failures too, where the connection may be gone (then
    the 0700 directory stays in the host's temp dir, and nothing else holds the password)."""
    config_dir = registry_config(conn)
    if not config_dir:
        return
    try:
        if conn.run(dc.remove_registry_config(config_dir), timeout=30).ok:
            conn.registry_config = None
    except Exception:  # noqa: BLE001 - never hides the error that brought us here
        pass


def local_images_present(conn, emit: Emit, images: Sequence[str]) -> None:
    timer = Timer(emit, "images", host=conn.host, detail="checking the engine has every image")
    unique = list(dict.fromkeys(images))
    # One inspect for all; only when it fails, one per image to name the missing ones.
    missing = [] if conn.run(dc.image_present(*unique)).ok else [
        image for image in unique if not conn.run(dc.image_present(image)).ok]
    if missing:
        raise ConnectError(f"{conn.host}: the engine has no image {', '.join(missing)}",
                           hint="run `deployctl build` on this machine first")
    timer.done()


def pull(conn, emit: Emit, images: Sequence[str]) -> None:
    """Every image of the release at once (the engine fetches their layers side by side);
    services sharing an image pull it once. The first failure is raised after all ended.
    The command's registry login (if any) is removed from the host afterwards."""
    from concurrent.futures import ThreadPoolExecutor

    def one(image: str) -> None:
        timer = Timer(emit, "pull", host=conn.host, detail=image)
        if conn.run(dc.image_present(image)).ok:
            timer.done("already on the host")
            return
        check(conn, dc.pull(image, registry_config(conn)), timeout=900)
        timer.done()

    unique = list(dict.fromkeys(images))
    try:
        with ThreadPoolExecutor(max_workers=max(1, len(unique))) as pool:
            futures = [pool.submit(one, image) for image in unique]
        for future in futures:
            future.result()
    finally:
        # The host pulls nothing after its release's images: the login goes now, not at
        # the end of the whole rollout.
        registry_logout(conn)
