"""Waiting for a release's containers to be ready, however each service says so: an HTTP
path answering 200, a TCP port accepting, a command exiting 0 in the container, or the
image's own Docker HEALTHCHECK. A container that exits, or is not ready by its timeout,
fails the wait naming it (the caller shows its last log lines).
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

from ..errors import HealthCheckError
from ..events import Emit, StepProgress
from ..plan import docker_commands as dc
from ..plan.release_spec import HealthProbe

STATE_EVERY = 1.0  # seconds between container inspections (each one a docker process on the host)


class HealthWait:
    def __init__(self, conn, states: Callable[[Sequence[str]], dict], emit: Emit,
                 checkpoint: Callable[[], None] | None = None) -> None:
        self.conn, self.states, self.emit, self.checkpoint = conn, states, emit, checkpoint

    def wait(self, probes: Sequence[HealthProbe]) -> None:
        pending = {p.container: p for p in probes}
        started = time.monotonic()
        interval = min((p.interval for p in probes), default=0.25)
        last_error: dict[str, str] = {}
        states: dict = {}
        inspected = float("-inf")
        while pending:
            if self.checkpoint is not None:
                self.checkpoint()
            # Inspect for the addresses (and to see an exit), then only every STATE_EVERY
            # seconds; a docker-health probe needs the state itself, so it inspects as often.
            due = time.monotonic() - inspected >= STATE_EVERY
            if due or any(not states.get(n) or not states[n].ip or p.kind == "docker" for n, p in pending.items()):
                states, inspected = self.states(list(pending)), time.monotonic()
            for name, probe in list(pending.items()):
                state = states.get(name)
                if state is None or state.status in ("exited", "dead"):
                    self._unhealthy(probe, f"the container {'is gone' if state is None else 'exited'}")
                ok, why = self._probe(probe, state)
                if ok:
                    del pending[name]
                    self.emit(StepProgress("health", f"{name} healthy after {time.monotonic() - started:.1f}s",
                                           host=self.conn.host, service=probe.service))
                    continue
                last_error[name] = why
                if time.monotonic() - started > probe.timeout:
                    self._unhealthy(probe, f"not healthy after {probe.timeout:g}s ({last_error.get(name) or 'no answer'})")
            if pending:
                time.sleep(interval)

    def _probe(self, probe: HealthProbe, state) -> tuple[bool, str]:  # type: ignore[no-untyped-def]
        timeout = min(2.0, probe.timeout)
        if probe.kind == "docker":
            if state.health == "healthy":
                return True, ""
            if not state.health:
                self._unhealthy(probe, "its image has no HEALTHCHECK (healthcheck.type = \"docker\" needs one)")
            return False, f"docker reports {state.health}"
        if probe.kind == "command":
            result = self.conn.run(dc.exec_command(probe.container, probe.command), timeout=max(timeout, 10.0))
            if result.ok:
                return True, ""
            return False, f"`{' '.join(probe.command)}` exited {result.rc}: {(result.stderr or result.stdout).strip()[:200]}"
        if not state.ip:
            return False, "no address yet"
        try:
            if probe.kind == "tcp":
                self.conn.tcp_check(state.ip, probe.port, timeout=timeout)
                return True, ""
            response = self.conn.http_get(state.ip, probe.port, probe.path, timeout=timeout)
        except OSError as exc:
            return False, f"{probe.kind} {state.ip}:{probe.port}: {exc}"
        if response.status == 200:
            return True, ""
        return False, f"{probe.path} answered {response.status}: {response.text()[:200]}"

    def _unhealthy(self, probe: HealthProbe, why: str) -> None:
        raise HealthCheckError(f"{self.conn.host}: {probe.container}: {why}",
                               hint="the previous release is still serving")
