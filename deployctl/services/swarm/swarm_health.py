"""deployctl's own `http`/`tcp` check of every running task of a release on a Swarm, through
a short-lived checker on the manager (plan/swarm/swarm_health.py says why and how). Semantics as
services/lifecycle/health.py on ssh hosts: each task must pass within its check's `timeout` from
when Swarm first reports it running, one attempt at most min(2 s, timeout), every
`interval`; a task that does not is named with its node and the last answer, and the
switch stops there (exit 6). A task Swarm replaces meanwhile is checked anew.
"""

from __future__ import annotations

import time
from typing import Sequence

from ...adapters.connector import check
from ...errors import DeployError, HealthCheckError
from ...events import Emit, StepProgress
from ...plan.swarm import services as sw
from ...plan.swarm import swarm_health as sh
from ...plan.lifecycle.names import Names
from ...plan.lifecycle.release_spec import HealthProbe

CHECKER_START = 60.0  # the manager may pull the proxy image first


class TaskChecks:
    """Started once per wait, closed (the checker removed) on every exit path."""

    def __init__(self, manager, names: Names, release: str, image: str, probes: dict[str, HealthProbe],
                 emit: Emit) -> None:
        self.manager, self.names, self.release, self.image = manager, names, release, image
        self.probes, self.emit = sh.checked(probes), emit
        self.checker = sh.checker_name(names, release)
        self.attempt = sh.checker_attempt(probes)
        self.address = ""
        self.passed: set[str] = set()  # task ids
        self.first_seen: dict[str, float] = {}
        self.last_why: dict[str, str] = {}
        self.task_address: dict[str, str] = {}

    def __enter__(self) -> "TaskChecks":
        if self.probes:
            self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.address or self.probes:
            self.manager.run(sh.remove_checker(self.checker), timeout=30)

    @property
    def interval(self) -> float:
        return min((p.interval for p in self.probes.values()), default=0.5)

    def _start(self) -> None:
        self.manager.run(sh.remove_checker(self.checker), timeout=30)  # a leftover of a killed run
        check(self.manager, sh.run_checker(self.names, self.release, self.image, self.attempt), timeout=300)
        check(self.manager, sh.connect_checker(self.names.network, self.checker), timeout=60)
        self.address = check(self.manager, sh.checker_address(self.checker)).strip()
        deadline = time.monotonic() + CHECKER_START
        last = ""
        while time.monotonic() < deadline:
            try:
                if self.manager.http_get(self.address, sh.CHECKER_PORT, sh.CHECKER_HEALTH, timeout=2.0).status == 200:
                    return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.25)
        raise DeployError(f"{self.manager.host}: the health checker {self.checker} ({self.image}) did not answer "
                          f"within {CHECKER_START:g}s: {last or 'no answer'}",
                          hint="nothing was switched; the previous release is still serving")

    def healthy(self, tasks: Sequence[sw.Task]) -> dict[str, int]:
        """One round over the running tasks of the checked services: service -> how many of
        its running tasks passed. Raises HealthCheckError when one is out of time."""
        running = [t for t in tasks if t.service in self.probes and t.desired == "Running" and t.running]
        pending = [t for t in running if t.id not in self.passed]
        unknown = [t.id for t in pending if t.id not in self.task_address]
        if unknown:
            out = self.manager.run(sh.task_addresses(unknown), timeout=30)
            self.task_address |= sh.parse_task_addresses(out.stdout, self.names.network)
        now = time.monotonic()
        for task in pending:
            probe = self.probes[task.service]
            self.first_seen.setdefault(task.id, now)
            answer = self._probe(probe, self.task_address.get(task.id, ""))
            if answer.ok:
                self.passed.add(task.id)
                self.emit(StepProgress("health", f"{task.name} on {task.node} healthy ({probe.kind} check by "
                                                 "deployctl)", host=self.manager.host, service=probe.service))
                continue
            self.last_why[task.id] = answer.why
            if now - self.first_seen[task.id] > probe.timeout:
                raise HealthCheckError(
                    f"{self.manager.host}: {task.name} on {task.node or '?'}: not healthy after {probe.timeout:g}s "
                    f"({answer.why})", hint="nothing was switched; the previous release is still serving")
        counts = {name: 0 for name in self.probes}
        for task in running:
            if task.id in self.passed:
                counts[task.service] += 1
        return counts

    def _probe(self, probe: HealthProbe, address: str) -> sh.ProbeAnswer:
        if not address:
            return sh.ProbeAnswer(False, f"no address on {self.names.network} yet")
        attempt = sh.attempt_timeout(probe.timeout)
        target = f"{address}:{probe.port}"
        if probe.kind == "tcp":
            result = self.manager.run(sh.tcp_probe(self.checker, address, probe.port, attempt),
                                      timeout=attempt + 10)
            if result.ok:
                return sh.ProbeAnswer(True)
            detail = (result.stderr or result.stdout).strip()[:200]
            return sh.ProbeAnswer(False, f"tcp {target}: no connection" + (f" ({detail})" if detail else ""))
        try:
            response = self.manager.http_get(self.address, sh.CHECKER_PORT, sh.check_path(address, probe.port,
                                                                                          probe.path),
                                             timeout=attempt + 1.0)
        except OSError as exc:
            return sh.ProbeAnswer(False, f"the checker {self.checker} did not answer: {exc}")
        return sh.http_answer(response.status, response.headers, response.text(), probe.path, f"http {target}")
