"""The health wait on this machine's engine: a new container that exits at once (restarted
by its `--restart unless-stopped` policy, as every release container is) fails the wait in
a few seconds, naming its exit code and last log line, not at the check's timeout."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from deployctl.adapters.local import LocalConnector
from deployctl.errors import HealthCheckError
from deployctl.plan.lifecycle.names import Names, StateLayout
from deployctl.plan.lifecycle.release_spec import HealthProbe
from deployctl.services.lifecycle.health import HealthWait
from deployctl.services.lifecycle.switch import HostSwitch

pytestmark = pytest.mark.integration


def test_a_container_exiting_3_fails_the_wait_at_once(standin_images):
    name = f"deployctl-crash-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "run", "--detach", "--name", name, "--restart", "unless-stopped",
                    standin_images["python"], "sh", "-c", "echo starting; echo 'boom: no module named app' >&2; exit 3"],
                   check=True, capture_output=True)
    try:
        conn = LocalConnector()
        switch = HostSwitch(conn, Names("crash", "test"), StateLayout("/tmp/deployctl-crash", "crash", "test"),
                            lambda e: None)
        probe = HealthProbe(name, "web", "http", 8000, "/healthz", timeout=30.0, interval=0.25)
        started = time.monotonic()
        with pytest.raises(HealthCheckError) as raised:
            HealthWait(conn, switch.states, lambda e: None).wait([probe])
        took = time.monotonic() - started
        message = raised.value.message
        assert took < 10, (took, message)
        assert "code 3" in message and "boom: no module named app" in message, message
    finally:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True)
