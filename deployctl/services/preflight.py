"""Checks made before anything changes on any host: reachable (host key verified), docker
present, images there or pullable, the registry login working from the host."""

from __future__ import annotations

from typing import Sequence

from ..adapters.connector import check
from ..errors import ConnectError
from ..events import Emit, Timer
from ..plan import docker_commands as dc
from ..secrets import Secret, redactor


def connect(conn, emit: Emit) -> None:
    """Opens the connection (SSH: host key verified) and checks the docker CLI and engine."""
    timer = Timer(emit, "connect", host=conn.host)
    conn.connect()
    result = conn.run(dc.docker_version(), timeout=30)
    if not result.ok:
        raise ConnectError(f"{conn.host}: docker is not usable: {redactor(result.stderr.strip())[:300]}",
                           hint="install Docker on the host and let the SSH user run it")
    timer.done(f"docker {result.stdout.strip()}")


def registry_login(conn, emit: Emit, server: str, username: str, password: Secret) -> None:
    """`docker login --password-stdin` on the host: the password never is on a command line."""
    timer = Timer(emit, "registry login", host=conn.host, detail=server)
    result = conn.run(dc.login(server, username), stdin=password.reveal().encode(), timeout=60)
    if not result.ok:
        raise ConnectError(f"{conn.host}: docker login to {server} as {username!r} failed: "
                           f"{redactor(result.stderr.strip())[:300]}")
    timer.done()


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
    services sharing an image pull it once. The first failure is raised after all ended."""
    from concurrent.futures import ThreadPoolExecutor

    def one(image: str) -> None:
        timer = Timer(emit, "pull", host=conn.host, detail=image)
        if conn.run(dc.image_present(image)).ok:
            timer.done("already on the host")
            return
        check(conn, dc.pull(image), timeout=900)
        timer.done()

    unique = list(dict.fromkeys(images))
    with ThreadPoolExecutor(max_workers=max(1, len(unique))) as pool:
        futures = [pool.submit(one, image) for image in unique]
    for future in futures:
        future.result()
