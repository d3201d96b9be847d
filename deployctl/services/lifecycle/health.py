"""Waiting for a release's containers to be ready, however each service says so: an HTTP
path answering 200, a TCP port accepting, a command exiting 0 in the container, or the
image's own Docker HEALTHCHECK. A container that is not ready by its timeout fails the wait
naming it (the caller shows its last log lines).

A container that crashes before it was healthy fails the wait at once, not at its timeout:
one that exited (or is dead), or that its restart policy is restarting or restarted since
the wait first saw it (`--restart unless-stopped` turns a crash on import into a loop that
never shows "exited"). The inspect the wait already makes for the addresses tells it
(plan/lifecycle/docker_commands.STATE_FORMAT: status, exit code, restart count): no extra call per
poll. Only on the way out it asks for the exit code (when the loop had it running again)
and the last log line, so the error names both.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

from ...errors import HealthCheckError
from ...events import Emit, StepProgress
from ...plan.lifecycle import docker_commands as dc
from ...plan.lifecycle.container_states import crash
from ...plan.lifecycle.release_spec import HealthProbe
from ...secrets import redactor

STATE_EVERY = 1.0  # seconds between container inspections (each one a docker process on the host)
EXIT_CODE_WAIT = 2.0  # seconds a crash-looping container is watched for its exit code, on the way out


class HealthWait:
    def __init__(self, conn, states: Callable[[Sequence[str]], dict], emit: Emit,
                 checkpoint: Callable[[], None] | None = None) -> None:
        self.conn, self.states, self.emit, self.checkpoint = conn, states, emit, checkpoint

    def wait(self, probes: Sequence[HealthProbe]) -> None:
        self._since: dict[str, float] = {}  # a `running` probe's container: when the wait first saw it run
        pending = {p.container: p for p in probes}
        started = time.monotonic()
        interval = min((p.interval for p in probes), default=0.25)
        last_error: dict[str, str] = {}
        restarts: dict[str, int] = {}  # each container's restart count when first seen
        states: dict = {}
        inspected = float("-inf")
        while pending:
            if self.checkpoint is not None:
                self.checkpoint()
            # Inspect for the addresses (and to see an exit), then only every STATE_EVERY
            # seconds; a docker-health or running probe needs the state itself, so it inspects as often.
            due = time.monotonic() - inspected >= STATE_EVERY
            if due or any(not states.get(n) or not states[n].ip or p.kind in ("docker", "running")
                         for n, p in pending.items()):
                states, inspected = self.states(list(pending)), time.monotonic()
            for name, probe in list(pending.items()):
                state = states.get(name)
                if state is not None:
                    restarts.setdefault(name, state.restarts)
                why = crash(state, restarts.get(name))
                if why is not None:
                    self._crashed(probe, state, why, restarts.get(name))
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
        if probe.kind == "running":
            # A crash (exit, restart) already failed the wait above; what is left is time.
            if state is None or state.status != "running":
                return False, "not running yet"
            up = time.monotonic() - self._since.setdefault(probe.container, time.monotonic())
            return (True, "") if up >= probe.grace else (False, f"running for {up:.1f}s of {probe.grace:g}s")
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

    def _crashed(self, probe: HealthProbe, state, why: str, restarts_before: int | None) -> None:  # type: ignore[no-untyped-def]
        """Fails the wait for a container that crashed: with its exit code (a loop that
        had it running again is watched for a moment until it shows the code) and its last
        log line."""
        if state is not None and state.status == "running":  # restarted: the code of its exit is gone
            deadline = time.monotonic() + EXIT_CODE_WAIT
            while time.monotonic() < deadline:
                time.sleep(0.1)
                seen = self.states([probe.container]).get(probe.container)
                if seen is None or seen.status != "running":
                    if seen is not None:
                        why = crash(seen, restarts_before) or why
                    break
        logs = self.conn.run(dc.logs(probe.container, 5))
        lines = [line for line in redactor(logs.stdout + logs.stderr).splitlines() if line.strip()]
        last = f"; its last log line: {lines[-1].strip()[:300]}" if lines else ""
        self._unhealthy(probe, f"crashed before it was healthy: {why}{last}")

    def _unhealthy(self, probe: HealthProbe, why: str) -> None:
        raise HealthCheckError(f"{self.conn.host}: {probe.container}: {why}",
                               hint="the previous release is still serving")
