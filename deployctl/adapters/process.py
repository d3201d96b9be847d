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


KILLED = 124  # the status of a command killed for its timeout (as timeout(1) says it)


def run_group(argv: Sequence[str], *, cwd: Path, environment: Mapping[str, str], on_line: Callable[[str], None],
              timeout: float, stopped: Callable[[], bool] = lambda: False, tick: float = 0.1) -> tuple[int, str]:
    """Runs argv (never through a shell) in a process group of its own, calling `on_line` for
    each line of its combined output. Returns (status, why): why is "" when it exited by
    itself; "timeout" or "stopped" (status KILLED) when its whole group was killed (SIGKILL,
    so a child it started cannot keep a pipe or a lock open) after `timeout` seconds or once
    `stopped()` said so; why it could not start (status 127). Whatever ends the caller's wait (an exception, a signal) kills the
    group too."""
    import os
    import signal
    import subprocess
    import time

    try:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(environment), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        return 127, f"cannot run {argv[0]}: {exc.strerror}"

    def kill_group() -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            on_line(raw.decode(errors="replace").rstrip("\r\n"))

    reader = threading.Thread(target=read, name="hook-output", daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    why = ""
    try:
        while proc.poll() is None:
            if stopped():
                why = "stopped"
            elif time.monotonic() >= deadline:
                why = "timeout"
            if why:
                kill_group()
                break
            try:
                proc.wait(timeout=tick)
            except subprocess.TimeoutExpired:
                pass
        status = proc.wait()
    finally:
        kill_group()  # also when an exception (a signal's) ended the wait
        proc.wait()
        reader.join(timeout=2)
    return (KILLED, why) if why else (status, "")
