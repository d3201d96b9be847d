"""Ports and waiting for things that listen on them."""
from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable


def free_port() -> int:
    """A TCP port nothing listens on right now, on any address (so a server may bind it
    on 0.0.0.0 as well as on 127.0.0.1). Another process can still take it before you do;
    bind it soon."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))
        return sock.getsockname()[1]


def wait_until(ready: Callable[[], bool], timeout: float, what: str, interval: float = 0.1,
               alive: Callable[[], str | None] | None = None) -> None:
    """Poll ``ready()`` until it is true. ``alive()`` returns a reason when the thing being
    waited for has died, which ends the wait at once. Raises TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        if alive is not None and (reason := alive()) is not None:
            raise RuntimeError(f"{what}: {reason}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:g}s")
        time.sleep(interval)


# Test servers are local: never route them through an http_proxy from the environment.
direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status a GET of ``url`` answers with (4xx/5xx included), None when nothing
    answers."""
    try:
        with direct.open(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


def ssh_banner(host: str, port: int, timeout: float = 2.0) -> str | None:
    """The identification line an SSH server sends first, or None."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            return sock.recv(256).decode("ascii", "replace").strip() or None
    except OSError:
        return None
