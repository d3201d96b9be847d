"""moto's server mode on a free loopback port: real HTTP that boto3 reaches through
`endpoint_url` (deployctl: DEPLOYCTL_AWS_ENDPOINT_URL). Credentials can be any strings."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

READY = re.compile(r"Running on (http://127\.0\.0\.1:\d+)")
START_TIMEOUT = 60.0  # cold imports of moto's backends take several seconds on a busy machine


@dataclass(frozen=True)
class MotoServer:
    endpoint: str  # http://127.0.0.1:PORT
    log: Path

    def environ(self) -> dict[str, str]:
        """What a deployctl process needs to talk to this server (and to nothing real)."""
        return {"DEPLOYCTL_AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}


@contextlib.contextmanager
def moto_server() -> Iterator[MotoServer]:
    """Starts `python -m moto.server` on port 0 and reads the port it got from its log, so
    two sessions never race for a port. The log is a file: a pipe nobody drains would
    block the server once its request log fills the pipe."""
    log = Path(tempfile.mkstemp(prefix="moto-server-", suffix=".log")[1])
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        server = MotoServer(_wait_ready(proc, log), log)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.unlink(missing_ok=True)


def _wait_ready(proc: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}: {log.read_text()[-2000:]}\n"
                               "install it with: pip install 'moto[server]'")
        match = READY.search(log.read_text(errors="replace"))
        if match:
            endpoint = match.group(1)
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=5):
                return endpoint
        time.sleep(0.1)
    raise RuntimeError(f"moto_server did not start within {START_TIMEOUT:.0f}s: {log.read_text()[-2000:]}")
