"""This process's own terminal, for `deployctl exec -i`: raw mode (restored on every exit
path), its window size and its changes (SIGWINCH), and the copy loop between it and a
remote end (a local pty's master, an SSH channel with a pty).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
from typing import Callable, Iterator

DEFAULT_SIZE = (80, 24)  # columns, rows: when stdin is no terminal


def window_size(fd: int | None = None) -> tuple[int, int]:
    """(columns, rows) of the terminal on `fd` (stdin by default)."""
    try:
        size = os.get_terminal_size(sys.stdin.fileno() if fd is None else fd)
        return (size.columns or DEFAULT_SIZE[0], size.lines or DEFAULT_SIZE[1])
    except (OSError, ValueError):
        return DEFAULT_SIZE


@contextlib.contextmanager
def raw_stdin() -> Iterator[None]:
    """stdin in raw mode (keys go through as typed, ^C included, to the remote terminal's
    own line discipline) when it is a terminal; its settings put back however the block ends."""
    import termios
    import tty

    fd = sys.stdin.fileno()
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


@contextlib.contextmanager
def on_resize(callback: Callable[[int, int], None]) -> Iterator[None]:
    """callback(columns, rows) now and on each SIGWINCH (main thread only; elsewhere only now)."""
    callback(*window_size())
    try:
        previous = signal.signal(signal.SIGWINCH, lambda *_: callback(*window_size()))
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)


def pump(remote_fd: Callable[[], int], read_remote: Callable[[], bytes | None], write_remote: Callable[[bytes], None],
         stdin_closed: Callable[[], None], finished: Callable[[], bool]) -> None:
    """Copies stdin to the remote end and the remote end to stdout until the remote end says
    EOF (read_remote returns b""; None: nothing yet) or `finished()` once all is read.
    stdin's EOF is passed on once."""
    stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()
    sys.stdout.flush()
    reading_stdin = True
    while True:
        watched = [remote_fd()] + ([stdin_fd] if reading_stdin else [])
        try:
            ready, _, _ = select.select(watched, [], [], 0.2)
        except InterruptedError:  # a SIGWINCH
            continue
        if remote_fd() in ready:
            data = read_remote()
            if data == b"":
                return
            if data:
                _write_all(stdout_fd, data)
        if reading_stdin and stdin_fd in ready:
            data = os.read(stdin_fd, 4096)
            if data:
                write_remote(data)
            else:
                reading_stdin = False
                stdin_closed()
        if not ready and finished():
            return


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
