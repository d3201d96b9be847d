"""Issue 14 on a fleet: three stand-in EC2 hosts (tests/integration/fleet) behind a load
balancer on 127.0.0.1, a rollout one host at a time (batch = 1), under traffic. The second
host's verify fails for real: a firewall rule on that host refuses its own loopback
connections to the proxy port (where the verify asks, over SSH), while the load balancer
still reaches the proxy from outside. The hosts already switched must go back, the ones
not reached must be skipped, and nothing may be reported as success.

The CLI runs as CI runs it (a subprocess), so the verify keeps its 15 s timeout here.

Both tests run on one app (the fleet's module site, tests/support/fleet_fixtures.py), as
every fault module's cells run on one site: the rollback starts from the two good releases the
mid-rollout test left (its first release, warm, and its converging deploy), not from two
deploys of a new app."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

import pytest

from deployctl.errors import ExitCode
from deployctl.plan.lifecycle.releases import ReleaseRecord
from tests.integration.fleet.site import ENV, json_lines, live_release
from tests.support.traffic import Traffic, TrafficReport

from .conftest import RESULTS
from .cells import next_revision

pytestmark = pytest.mark.integration


def deployed(done) -> str:  # type: ignore[no-untyped-def]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    return json_lines(done.stdout)[-1]["release"]


class VerifyRefused:
    """On one host: its own connections to 127.0.0.1:PORT (the verify, through sshd) are
    refused; traffic from the load balancer comes in on the host's address and is not."""

    def __init__(self, host, port: int) -> None:  # type: ignore[no-untyped-def]
        self.host = host
        self.rule = ["OUTPUT", "-o", "lo", "-p", "tcp", "--dport", str(port), "-j", "REJECT",
                     "--reject-with", "tcp-reset"]

    def __enter__(self) -> "VerifyRefused":
        self.host.exec("iptables", "-w", "-I", *self.rule)
        return self

    def __exit__(self, *exc) -> None:  # type: ignore[no-untyped-def]
        self.host.exec("iptables", "-w", "-D", *self.rule, check=False)


def fleet_row(fault: str, step: str, action: str, report, outcomes: dict, live: str, exit: int, unlocked: bool,
              nxt: str, note: str) -> dict:  # type: ignore[no-untyped-def]
    row = {"id": f"fleet/{action}/{fault}/{step}", "target": "fleet (3 hosts, batch 1)", "action": action,
           "fault": fault, "step": step, "requests": report.total, "failed": len(report.failures), "live": live,
           "outcome": ", ".join(f"{i}: {o}" for i, o in enumerate(outcomes.values(), 1)), "exit": exit,
           "unlocked": unlocked, "lock_left": False, "next": nxt, "serving_killed": False, "note": note,
           "failed_because": ""}
    RESULTS.append(row)
    return row


@dataclass
class Refused:
    """A command run under traffic while host 2's verify is refused, what it left (read before
    anything else runs), and the run that follows it without the fault."""

    done: subprocess.CompletedProcess
    again: subprocess.CompletedProcess
    report: TrafficReport
    ended: float
    converging: float
    last: dict[str, ReleaseRecord]  # each host's newest history record
    currents: dict[str, str]
    unlocked: bool

    @property
    def outcomes(self) -> dict[str, str]:
        return {h: r.outcome for h, r in self.last.items()}

    def assert_every_host_back_on(self, live: str, first: str, second: str, detail: str) -> None:
        """No request failed, every answer between the command and the next run came from
        `live`, every host serves it and is unlocked, the first host's line does not say
        success, and the output names host 2 and what failed there."""
        assert self.report.total > 100 and self.report.failures == [], detail
        wrong = [s for s in self.report.samples if self.ended <= s.started < self.converging
                 and set(s.releases) != {live}]
        assert wrong == [], f"{len(wrong)} answers not from {live} after the failed command: {detail}"
        assert self.currents == {h: live for h in self.currents} and self.unlocked, detail
        lines = self.done.stdout.splitlines()
        assert "succeeded" not in "".join(line for line in lines if line.split()[:1] == [first])
        assert f"{second}: through the proxy" in self.done.stdout + self.done.stderr, detail


def with_host_2_refused(site, load_balancer, command, converge) -> Refused:  # type: ignore[no-untyped-def]
    second = site.hosts[1]
    with Traffic(f"{load_balancer.url}/version", workers=4, max_requests=20_000, max_seconds=240) as traffic:
        time.sleep(1)
        with VerifyRefused(site.host(second), site.proxy_port):
            done = command()
        ended = time.time()
        time.sleep(1)
        last = {h: site.history(h).records[-1] for h in site.hosts}
        currents = {h: site.current(h) for h in site.hosts}
        unlocked = not any(site.locked(h) for h in site.hosts)
        converging = time.time()
        again = converge()
        time.sleep(1)
    return Refused(done, again, traffic.report, ended, converging, last, currents, unlocked)


def test_second_host_verify_fails_mid_rollout(fleet_module_site, fleet_module_balancer):
    site, load_balancer = fleet_module_site, fleet_module_balancer
    v1 = live_release(site, next_revision())
    site.write_config(batch=1)
    first, second, third = site.hosts
    run = with_host_2_refused(site, load_balancer, lambda: site.deploy(next_revision()),  # plain output, as in CI
                              lambda: site.deploy(next_revision(), "--json"))
    v2, v3 = run.last[first].release, deployed(run.again)
    converged = all(site.current(h) == v3 for h in site.hosts)
    row = fleet_row("host 2's verify refused (iptables on host 2: its loopback connections to the proxy port)",
                    "verify, host 2 of 3", "deploy", run.report, run.outcomes,
                    "previous (3 of 3)" if set(run.currents.values()) == {v1} else str(run.currents),
                    run.done.returncode, run.unlocked, "succeeded" if converged else "DIVERGED",
                    "host 1 switched and verified, then reverted when host 2 failed; host 3 never started; "
                    "the outcome table says reverted / switched back / skipped, no success")
    detail = f"{row} {run.report.summary()} {run.done.stdout[-2500:]} {run.done.stderr[-1500:]}"
    assert run.done.returncode == ExitCode.DEPLOY_FAILED, detail
    run.assert_every_host_back_on(v1, first, second, detail)
    assert [site.history(h).records[-2].release for h in (first, second, third)] == [v2] * 3, detail
    assert run.outcomes == {first: "reverted", second: "reverted", third: "skipped"}, detail
    rows = {cells[0]: cells[1] for cells in map(str.split, run.done.stdout.splitlines())
            if cells and cells[0] in site.hosts}
    assert rows == {first: "reverted", second: "switched", third: "skipped"}, detail  # "switched back"
    assert converged, detail


def test_second_host_verify_fails_mid_rollback(fleet_module_site, fleet_module_balancer):
    """A fleet rollback (inside the warm window: each host's switch is its standby's flag)
    whose second host fails its verify: the host already rolled back goes forward again, the
    third is never touched, every host serves the release that was live before the command,
    and nothing says success. Then the same rollback without the fault converges."""
    site, load_balancer = fleet_module_site, fleet_module_balancer
    v2 = live_release(site, next_revision())
    # What a plain rollback goes to, the same on every host: the release live before v2 (kept
    # warm by v2's deploy). Run alone, the site has one release: a second is deployed over it.
    targets = {site.history(h).previous_good(v2) for h in site.hosts}
    if len(targets) == 1 and None not in targets:
        v1 = targets.pop()
    else:
        v1, v2 = v2, deployed(site.deploy(next_revision(), "--json"))
    site.write_config(batch=1)
    first, second, third = site.hosts
    run = with_host_2_refused(site, load_balancer, lambda: site.cli("rollback", "--env", ENV),  # plain, as in CI
                              lambda: site.cli("rollback", "--env", ENV, "--json"))
    converged = run.again.returncode == 0 and all(site.current(h) == v1 for h in site.hosts)
    row = fleet_row("host 2's verify refused (iptables on host 2: its loopback connections to the proxy port)",
                    "verify, host 2 of 3", "rollback", run.report, run.outcomes,
                    "previous (3 of 3)" if set(run.currents.values()) == {v2} else str(run.currents),
                    run.done.returncode, run.unlocked, "succeeded" if converged else "DIVERGED",
                    "host 1 rolled back and verified, then went forward again when host 2 failed; host 3 was "
                    "never touched; every host serves the release live before the command; the next rollback "
                    "converges")
    actions = {h: r.action for h, r in run.last.items()}
    detail = (f"{row} actions={actions} {run.report.summary()} {run.done.stdout[-2500:]} {run.done.stderr[-1500:]} "
              f"{run.again.stdout[-1500:]} {run.again.stderr[-1500:]}")
    assert run.done.returncode == ExitCode.DEPLOY_FAILED, detail  # every host serves what it served before: 6
    run.assert_every_host_back_on(v2, first, second, detail)
    assert run.outcomes[first] != "succeeded" and run.outcomes[second] != "succeeded", detail
    assert converged, detail
