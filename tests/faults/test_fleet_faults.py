"""Issue 14 on a fleet: three stand-in EC2 hosts (tests/integration/fleet) behind a load
balancer on 127.0.0.1, a rollout one host at a time (batch = 1), under traffic. The second
host's verify fails for real: a firewall rule on that host refuses its own loopback
connections to the proxy port (where the verify asks, over SSH), while the load balancer
still reaches the proxy from outside. The hosts already switched must go back, the ones
not reached must be skipped, and nothing may be reported as success.

The CLI runs as CI runs it (a subprocess), so the verify keeps its 15 s timeout here."""

from __future__ import annotations

import time

import pytest

from deployctl.errors import ExitCode
from tests.integration.fleet.conftest import fleet, fleet_images, load_balancer, site  # noqa: F401 - fixtures
from tests.integration.fleet.site import ENV, json_lines
from tests.support.traffic import Traffic

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
        self.host.exec("iptables", "-I", *self.rule)
        return self

    def __exit__(self, *exc) -> None:  # type: ignore[no-untyped-def]
        self.host.exec("iptables", "-D", *self.rule, check=False)


def fleet_row(fault: str, step: str, action: str, report, outcomes: dict, live: str, exit: int, unlocked: bool,
              nxt: str, note: str) -> dict:  # type: ignore[no-untyped-def]
    row = {"id": f"fleet/{action}/{fault}/{step}", "target": "fleet (3 hosts, batch 1)", "action": action,
           "fault": fault, "step": step, "requests": report.total, "failed": len(report.failures), "live": live,
           "outcome": ", ".join(f"{i}: {o}" for i, o in enumerate(outcomes.values(), 1)), "exit": exit,
           "unlocked": unlocked, "lock_left": False, "next": nxt, "serving_killed": False, "note": note,
           "failed_because": ""}
    RESULTS.append(row)
    return row


def test_second_host_verify_fails_mid_rollout(site, load_balancer):  # noqa: F811 - the fleet fixtures
    v1 = deployed(site.deploy(next_revision(), "--json"))
    site.write_config(batch=1)
    first, second, third = site.hosts
    with Traffic(f"{load_balancer.url}/version", workers=4, max_requests=20_000, max_seconds=240) as traffic:
        time.sleep(1)
        with VerifyRefused(site.host(second), site.proxy_port):
            done = site.deploy(next_revision())  # plain output, as in CI
        ended = time.time()
        time.sleep(1)
        v2 = site.history(first).records[-1].release
        outcomes = {h: site.history(h).records[-1].outcome for h in site.hosts}
        currents = {h: site.current(h) for h in site.hosts}
        unlocked = not any(site.locked(h) for h in site.hosts)
        converging = time.time()
        v3 = deployed(site.deploy(next_revision(), "--json"))
        time.sleep(1)
    report = traffic.report
    converged = all(site.current(h) == v3 for h in site.hosts)
    row = fleet_row("host 2's verify refused (iptables on host 2: its loopback connections to the proxy port)",
                    "verify, host 2 of 3", "deploy", report, outcomes,
                    "previous (3 of 3)" if set(currents.values()) == {v1} else str(currents), done.returncode,
                    unlocked, "succeeded" if converged else "DIVERGED",
                    "host 1 switched and verified, then reverted when host 2 failed; host 3 never started; "
                    "the outcome table says reverted / switched back / skipped, no success")
    detail = f"{row} {report.summary()} {done.stdout[-2500:]} {done.stderr[-1500:]}"
    assert done.returncode == ExitCode.DEPLOY_FAILED, detail
    assert report.total > 100 and report.failures == [], detail
    wrong = [s for s in report.samples if ended <= s.started < converging and set(s.releases) != {v1}]
    assert wrong == [], f"{len(wrong)} answers not from {v1} after the failed rollout: {detail}"
    assert currents == {h: v1 for h in site.hosts} and unlocked, detail
    assert [site.history(h).records[-2].release for h in (first, second, third)] == [v2] * 3, detail
    assert outcomes == {first: "reverted", second: "reverted", third: "skipped"}, detail
    rows = {cells[0]: cells[1] for cells in map(str.split, done.stdout.splitlines()) if cells and cells[0] in site.hosts}
    assert rows == {first: "reverted", second: "switched", third: "skipped"}, detail  # "switched back"
    assert "succeeded" not in "".join(line for line in done.stdout.splitlines() if line.split()[:1] == [first])
    assert f"{second}: through the proxy" in done.stdout + done.stderr, detail  # names the host and what failed
    assert converged, detail


def test_second_host_verify_fails_mid_rollback(site, load_balancer):  # noqa: F811 - the fleet fixtures
    """A fleet rollback (inside the warm window: each host's switch is its standby's flag)
    whose second host fails its verify: the host already rolled back goes forward again, the
    third is never touched, every host serves the release that was live before the command,
    and nothing says success. Then the same rollback without the fault converges."""
    v1 = deployed(site.deploy(next_revision(), "--json"))
    v2 = deployed(site.deploy(next_revision(), "--json"))
    site.write_config(batch=1)
    first, second, third = site.hosts
    with Traffic(f"{load_balancer.url}/version", workers=4, max_requests=20_000, max_seconds=240) as traffic:
        time.sleep(1)
        with VerifyRefused(site.host(second), site.proxy_port):
            done = site.cli("rollback", "--env", ENV)  # plain output, as in CI
        ended = time.time()
        time.sleep(1)
        outcomes = {h: site.history(h).records[-1].outcome for h in site.hosts}
        actions = {h: site.history(h).records[-1].action for h in site.hosts}
        currents = {h: site.current(h) for h in site.hosts}
        unlocked = not any(site.locked(h) for h in site.hosts)
        converging = time.time()
        again = site.cli("rollback", "--env", ENV, "--json")
        time.sleep(1)
    report = traffic.report
    converged = again.returncode == 0 and all(site.current(h) == v1 for h in site.hosts)
    row = fleet_row("host 2's verify refused (iptables on host 2: its loopback connections to the proxy port)",
                    "verify, host 2 of 3", "rollback", report, outcomes,
                    "previous (3 of 3)" if set(currents.values()) == {v2} else str(currents), done.returncode,
                    unlocked, "succeeded" if converged else "DIVERGED",
                    "host 1 rolled back and verified, then went forward again when host 2 failed; host 3 was "
                    "never touched; every host serves the release live before the command; the next rollback "
                    "converges")
    detail = (f"{row} actions={actions} {report.summary()} {done.stdout[-2500:]} {done.stderr[-1500:]} "
              f"{again.stdout[-1500:]} {again.stderr[-1500:]}")
    assert done.returncode == ExitCode.DEPLOY_FAILED, detail  # every host serves what it served before: 6
    assert report.total > 100 and report.failures == [], detail
    wrong = [s for s in report.samples if ended <= s.started < converging and set(s.releases) != {v2}]
    assert wrong == [], f"{len(wrong)} answers not from {v2} after the failed rollback: {detail}"
    assert currents == {h: v2 for h in site.hosts} and unlocked, detail
    assert outcomes[first] != "succeeded" and outcomes[second] != "succeeded", detail
    assert "succeeded" not in "".join(line for line in done.stdout.splitlines() if line.split()[:1] == [first])
    assert f"{second}: through the proxy" in done.stdout + done.stderr, detail  # names the host and what failed
    assert converged, detail
