"""moto's server mode on a loopback port: real HTTP that boto3 reaches through `endpoint_url`
(deployctl: DEPLOYCTL_AWS_ENDPOINT_URL). Credentials can be any non-empty strings."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.net import http_status, wait_until
from tests.support.processes import Daemon

READY = re.compile(r"Running on (http://127\.0\.0\.1:\d+)")
START_TIMEOUT = 60.0  # moto imports many backends; slow on a busy two-core machine


@dataclass
class MotoServer:
    endpoint: str  # http://127.0.0.1:PORT
    daemon: Daemon | None = field(default=None, repr=False)

    def environ(self) -> dict[str, str]:
        """What a deployctl process needs to talk to this server and to nothing real."""
        return {"DEPLOYCTL_AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()


def start_moto_server(directory: Path) -> MotoServer:
    """Port 0, and the port it got read from its log: no race with another session for a
    port picked in advance."""
    log = directory / "moto.log"
    daemon = Daemon([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"], log)
    found: list[str] = []

    def ready() -> bool:
        match = READY.search(log.read_text(errors="replace"))
        if match and http_status(f"{match.group(1)}/moto-api/") == 200:
            found.append(match.group(1))
        return bool(found)

    try:
        wait_until(ready, START_TIMEOUT, "moto_server (pip install 'moto[server]')", alive=daemon.exit_reason)
    except BaseException:
        daemon.stop()
        raise
    return MotoServer(found[0], daemon)
