"""A command on a new pseudo-terminal, as a person's terminal runs it: what `exec -i` and
`accessory exec -i` are proven through (tests/integration/test_exec.py,
test_accessory_exec.py, fleet/test_fleet_jump_host.py)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import termios
import time


def through_pty(argv: list[str], typed: bytes, timeout: float = 90,
                prompts: tuple[bytes, ...] = (b"# ", b"$ ")) -> tuple[int, bytes]:
    """argv on a new pty of 33 rows and 111 columns, as a person's terminal: `typed` is sent
    a second after the command shows a prompt (one of `prompts`), everything it prints is
    read until it exits.
    The second: `docker exec -it` (engine API 1.41 here) sends the terminal's size only once
    the exec runs, so a command typed at once, faster than a person, can see `0 0`."""
    pid, master = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
        os.execvpe(argv[0], argv, {**os.environ, "TERM": "xterm"})
    seen, sent, deadline, started, prompted = b"", False, time.monotonic() + timeout, time.monotonic(), None
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    break
                if not data:
                    break
                seen += data
            if prompted is None and (any(p in seen for p in prompts) or time.monotonic() - started > 5):
                prompted = time.monotonic()
            if not sent and prompted is not None and time.monotonic() - prompted > 1.0:
                os.write(master, typed)
                sent = True
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(master)
    return os.waitstatus_to_exitcode(status), seen
