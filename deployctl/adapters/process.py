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

    from ..interrupts import Hold

    # A SIGTERM's exception is held from here to the `try` below: raised inside Popen after
    # the fork, it would leave the new group running with no one to kill it.
    hold = Hold()
    try:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(environment), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        hold.release()  # a held interrupt is raised here: nothing was started
        return 127, f"cannot run {argv[0]}: {exc.strerror}"
    except BaseException:
        hold.release(raise_held=False)
        raise
    why: list[str] = []

    def kill_group(reason: str = "") -> None:
        if reason and not why:
            why.append(reason)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def read() -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for raw in proc.stdout:
                on_line(raw.decode(errors="replace").rstrip("\r\n"))

    # Threads and events only (no sleep, no clock read here): the wait is the process's own
    # (waitpid), the deadline a timer's.
    exited = threading.Event()
    reader = threading.Thread(target=read, name="hook-output", daemon=True)
    waiter = threading.Thread(target=lambda: (proc.wait(), exited.set()), name="hook-wait", daemon=True)
    deadline = threading.Timer(timeout, kill_group, args=("timeout",))
    deadline.daemon = True
    try:
        reader.start()
        waiter.start()
        deadline.start()
        hold.release()  # an interrupt that came while it started is raised here: the finally kills it
        while not exited.wait(tick):
            if stopped():
                kill_group("stopped")
    finally:
        hold.release(raise_held=False)  # an exception is on its way out already
        deadline.cancel()
        kill_group()  # what it left in the background, or all of it when an exception ended the wait
        waiter.join()
        reader.join(timeout=2)
    return (KILLED, why[0]) if why else (proc.returncode, "")
