"""HealthWait on a scripted connector: a container that crashes before it is healthy ends
the wait at once, naming its exit code and last log line, instead of waiting out the
check's timeout (a frontend with a SyntaxError on import used to wait all 30 s and then
say "not healthy after 30s (no address yet)")."""

from __future__ import annotations

import time

import pytest

from deployctl.adapters.connector import CommandResult, HttpResponse
from deployctl.errors import HealthCheckError
from deployctl.plan.lifecycle.names import Names, StateLayout
from deployctl.plan.lifecycle.release_spec import HealthProbe
from deployctl.services.lifecycle.health import HealthWait, crash
from deployctl.services.lifecycle.switch import ContainerState, HostSwitch

NAME = "shop-prod-frontend-r2"


def line(status: str, ip: str = "", exit_code: int = 0, restarts: int = 0, health: str = "") -> str:
    return f"/{NAME}|{status}|{health}|{ip}|r2|2026-12-06T00:00:00Z|sha256:1|{exit_code}|{restarts}"


class Engine:
    """Answers `docker container inspect` from a script of lines (the last one repeats),
    `docker logs` with the container's output, and HTTP with connection refused."""

    host = "web1"

    def __init__(self, *inspects: str, logs: str = "") -> None:
        self.inspects, self.logs, self.calls = list(inspects), logs, []

    def run(self, argv, *, stdin=None, timeout=None, on_line=None) -> CommandResult:  # type: ignore[no-untyped-def]
        self.calls.append(list(argv))
        if argv[:3] == ["docker", "container", "inspect"]:
            asked = sum(1 for c in self.calls if c[:3] == ["docker", "container", "inspect"])
            return CommandResult(0, self.inspects[min(asked, len(self.inspects)) - 1] + "\n", "")
        if argv[:2] == ["docker", "logs"]:
            return CommandResult(0, self.logs, "")
        raise AssertionError(f"unexpected argv {argv}")

    def http_get(self, address: str, port: int, path: str, timeout: float = 2.0, headers=None) -> HttpResponse:
        raise ConnectionRefusedError(111, "Connection refused")


def wait(engine: Engine, timeout: float = 30.0) -> float:
    switch = HostSwitch(engine, Names("shop", "prod"), StateLayout("/var/lib/deployctl", "shop", "prod"),
                        lambda e: None)
    probe = HealthProbe(NAME, "frontend", "http", 8000, "/healthz", timeout=timeout, interval=0.05)
    started = time.monotonic()
    HealthWait(engine, switch.states, lambda e: None).wait([probe])
    return time.monotonic() - started


def test_a_restart_loop_fails_the_wait_at_once_with_exit_code_and_last_log_line():
    engine = Engine(line("running", "10.0.0.5"), line("restarting", exit_code=1, restarts=1),
                    logs="Traceback (most recent call last):\n  File \"app.py\", line 3\nSyntaxError: invalid syntax\n")
    started = time.monotonic()
    with pytest.raises(HealthCheckError) as raised:
        wait(engine)
    assert time.monotonic() - started < 3
    message = str(raised.value.message)
    assert "exited with code 1" in message and "SyntaxError: invalid syntax" in message, message


def test_an_exited_container_names_its_exit_code():
    engine = Engine(line("exited", exit_code=3), logs="boom\n")
    with pytest.raises(HealthCheckError, match=r"exited with code 3; its last log line: boom"):
        wait(engine)


def test_a_loop_seen_running_again_is_watched_for_its_exit_code():
    """Between two inspects the loop may have it running again (exit code 0 by then): the
    restart count gave it away, a few quick looks give the code."""
    engine = Engine(line("running", "10.0.0.5"), line("running", "10.0.0.6", restarts=2),
                    line("restarting", exit_code=3, restarts=3), logs="boom\n")
    with pytest.raises(HealthCheckError, match=r"exited with code 3 .*boom"):
        wait(engine)


def test_restarts_from_before_the_wait_do_not_count():
    """A container that restarted long ago (its count is not 0) and answers is healthy."""
    assert crash(ContainerState(NAME, "running", "", "10.0.0.5", "r2", "", "", 0, 4), 4) is None
    assert crash(ContainerState(NAME, "running", "", "10.0.0.5", "r2", "", "", 0, 5), 4) is not None


def test_a_slow_starter_still_waits_for_its_timeout():
    engine = Engine(line("running"), line("running", "10.0.0.5"))
    with pytest.raises(HealthCheckError, match=r"not healthy after 0.5s \(http 10.0.0.5:8000: .*refused"):
        wait(engine, timeout=0.5)
