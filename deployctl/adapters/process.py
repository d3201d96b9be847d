"""Running a command on this machine with its output streamed line by line."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ..errors import UsageError


def run_streaming(argv: Sequence[str], *, cwd: Path, environment: Mapping[str, str],
                  on_line: Callable[[str], None], timeout: float) -> int:
    """Runs argv (never through a shell), calling `on_line` for each line of its combined
    output; returns its exit status, 124 when it was killed for running past `timeout`."""
    import subprocess

    try:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(environment), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise UsageError(f"cannot run {argv[0]}: {exc.strerror}") from None
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            on_line(raw.decode(errors="replace").rstrip("\r\n"))
        status = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if timed_out.is_set():
        on_line(f"[deployctl] killed after {timeout:.0f}s")
        return 124
    return status
