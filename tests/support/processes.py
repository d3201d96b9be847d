"""A daemon this test session starts and stops itself (registry, sshd)."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


class Daemon:
    """A background process with its output in a log file; stopped at session end."""

    def __init__(self, argv: list[str], log_file: Path, env: dict[str, str] | None = None):
        self.argv = argv
        self.log_file = log_file
        with open(log_file, "ab") as log:
            # Own session: a Ctrl-C aimed at pytest does not kill it before teardown runs.
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env,
                                            start_new_session=True)

    def exit_reason(self) -> str | None:
        """None while running; otherwise how it ended, with the end of its log."""
        code = self.process.poll()
        if code is None:
            return None
        return f"{self.argv[0]} exited with {code}; last log lines:\n{self.log_tail()}"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        # The whole group: sshd leaves per-connection children behind otherwise.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout)
