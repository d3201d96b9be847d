"""Ports and waiting for things that listen on them."""
from __future__ import annotations

import itertools
import os
import random
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

from deployctl.services.init_project import port_is_free


# Under pytest-xdist (scripts/test runs the suite on several workers) each worker takes its
# ports from a block of its own, below the kernel's ephemeral range (32768-60999 here, where
# bind(0) and every outgoing connection take theirs): a port one worker has checked and not
# yet bound (a proxy's `proxy_port` is bound by docker seconds later) is never handed to
# another worker. A random start inside the block keeps two runs of the suite apart as well.
_PORT_BASE, _PORT_BLOCK = 20000, 1000  # workers gw0..gw11: 20000-31999
_next_ports: Iterator[int] | None = None


def _worker_ports() -> Iterator[int] | None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw3"; unset when not under xdist
    if not worker.startswith("gw") or not worker[2:].isdigit():
        return None
    base = _PORT_BASE + (int(worker[2:]) % 12) * _PORT_BLOCK
    start = random.randrange(_PORT_BLOCK)
    return itertools.cycle([base + (start + i) % _PORT_BLOCK for i in range(_PORT_BLOCK)])


def free_port() -> int:
    """A TCP port nothing listens on right now, on any address (so a server may bind it
    on 0.0.0.0 as well as on 127.0.0.1). Another process can still take it before you do;
    bind it soon. Under xdist: the next free one of this worker's block (above)."""
    global _next_ports
    if _next_ports is None:
        _next_ports = _worker_ports() or iter(())
    for _, port in zip(range(_PORT_BLOCK), _next_ports):
        if port_is_free(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # not under xdist, or the block is full
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
