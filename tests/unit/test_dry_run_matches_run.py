"""The dry run prints what a deploy and a rollback run (issue 22): a deploy (plain, warm, a
canary's), a rollback and a rollback to the standby (its flag) on the scripted host, and a
dry run of the same config and release, are compared argv by argv. Every command the run
sent that changes the host is one the dry run printed, the switch's own argvs (the start
chains, the staged swap) were run as printed, and the run took the switch's steps in the
order printed (the rows of each are those of the Step whose action the run walked:
services/lifecycle/deploy.HostDeploy.switch_steps, rollback.HostRollback.switch_steps).
What only the dry run has is conditional (a network or proxy made only if missing, a chown
only for a non-root image user, the stop's placeholder); what only the run has reads state
(inspect, ps, logs)."""

from __future__ import annotations

import re

import pytest

from deployctl.services.lifecycle.deploy import HostDeploy
from deployctl.services.env import Env
from deployctl.services.lifecycle.deploy_result import DeployOptions
from deployctl.services.lifecycle.dry_runs import host_deploy_steps, host_rollback_steps
from deployctl.plan.lifecycle.switch_plan import proxy_move, proxy_test_staged
from deployctl.services.lifecycle.rollback import HostRollback
from tests.support.fake_host import FakeHost
from tests.unit.test_lifecycle_rules import (LOADED, PROD, Site, local_site, proxy_log,  # noqa: F401 - a fixture
                                             virtual_time)

READS = ("inspect", "ps", "port", "logs", "version", "ls")
PLACEHOLDER = re.compile(r"<[^<>]+>")  # what only the run knows: `<other releases' containers>`, `<USER>`


def printed_as(argv: str, printed: list[str]) -> bool:
    """Whether `argv` is one of the printed lines, a placeholder standing for any words."""
    return any(argv == line or (PLACEHOLDER.search(line) and re.fullmatch(
        ".+".join(re.escape(part) for part in PLACEHOLDER.split(line)), argv)) for line in printed)


def reads(argv: str) -> bool:
    words = argv.split()
    if words[:2] == ["date", "+%s.%N"]:  # the host's clock (a judge reads the proxy's log in it)
        return True
    return words[0] == "docker" and (words[1] in READS or (len(words) > 2 and words[2] in READS))


@pytest.mark.parametrize("env", ["local", "warm"])
def test_every_command_a_deploy_runs_is_one_its_dry_run_printed(env):
    gen = local_site(env)
    site, host = next(gen)
    before = len(host.calls)
    release = site.deploy()
    ran = [text for call, text in host.calls[before:] if call == "run"]
    images = site.images(site.n)

    class Unconnected:  # the dry run builds the same HostDeploy and never connects
        host = "local"

    job = HostDeploy(Env.resolve(LOADED, env), Unconnected(), lambda event: None, release, images, {}, DeployOptions())
    steps = host_deploy_steps(job)
    printed = [" ".join(s.argv) for s in steps if s.argv]

    assert [argv for argv in ran if not reads(argv) and not printed_as(argv, printed)] == []
    assert_ran_as_printed(ran, steps, job.switch_steps())  # and the switch's steps in the order printed
    for chain in job.plan.start:
        for argv in chain:
            assert " ".join(argv) in ran
    assert " ".join(job.plan.proxy.swap) in ran
    # The phases in the order the dry run printed them (the start chains themselves run side
    # by side): the migration, then the new containers' start, then the swap.
    # (The containers are created while the migration runs; their `docker start` after it.)
    landmarks = [" ".join(job.migration_rows()[1].argv), " ".join(job.plan.start[0][-1]), " ".join(job.plan.proxy.swap)]
    assert sorted(landmarks, key=ran.index) == landmarks == sorted(landmarks, key=printed.index)
    next(gen, None)


def test_the_pulls_run_and_are_printed_before_the_lock():
    """issue 26: an ssh host pulls before its lock is taken (the lock is held for the switch
    only); the dry run prints them there too, with the argv the run sends."""
    host = FakeHost("h1")
    site = Site("prod", [host])
    site.deploy()
    before = len(host.calls)
    release = site.deploy()
    calls = host.calls[before:]
    lock = calls.index(("mkdir", PROD.lock_dir))
    pulls = [i for i, (call, text) in enumerate(calls) if call == "run" and text.startswith("docker pull ")]
    assert pulls and max(pulls) < lock

    job = HostDeploy(Env.resolve(LOADED, "prod"), host, lambda event: None, release, site.images(site.n), {}, DeployOptions())
    steps = host_deploy_steps(job)
    names = [s.step for s in steps]
    assert "pull" in names and max(i for i, n in enumerate(names) if n == "pull") < names.index("lock")
    printed = [" ".join(s.argv) for s in steps if s.argv]
    assert all(calls[i][1] in printed for i in pulls)


class Unconnected:  # the dry run builds the same HostDeploy and never connects
    host = "local"


def ran_since(host: FakeHost, before: int) -> list[str]:
    return [text for call, text in host.calls[before:] if call == "run"]


def assert_ran_as_printed(ran: list[str], printed_rows: list, steps: list) -> None:
    """Every changing command that ran was printed (`printed_rows`: the whole dry run), and
    the switch's commands ran in the order of its Steps (`steps`): each ran argv belongs to
    a step no earlier than the one before it (the chains of one step run side by side)."""
    printed = [" ".join(row.argv) for row in printed_rows if row.argv]
    assert [argv for argv in ran if not reads(argv) and not printed_as(argv, printed)] == []
    by_step = [[" ".join(row.argv) for row in step.rows if row.argv] for step in steps]
    at, walked = 0, []
    for argv in ran:
        candidates = [i for i, lines in enumerate(by_step) if not reads(argv) and printed_as(argv, lines)]
        if not candidates:
            continue
        later = [i for i in candidates if i >= at]
        assert later, f"{argv!r} ran after step {steps[at].name!r}, but is printed before it"
        at = later[0]
        walked.append(steps[at].name)
    assert walked, "no command of the switch's steps ran"


def test_a_canary_deploy_runs_what_its_dry_run_prints_in_that_order():
    gen = local_site("local")
    site, host = next(gen)
    host.faults.append(proxy_log(host, site.layout, copy_errors=0))  # the split's log: a healthy canary
    before = len(host.calls)
    release = site.deploy(options=DeployOptions(canary=10))
    ran = ran_since(host, before)

    job = HostDeploy(Env.resolve(LOADED, "local"), Unconnected(), lambda event: None, release, site.images(site.n), {},
                     DeployOptions(canary=10))
    steps = job.switch_steps()
    assert [step.name for step in steps] == ["start", "start", "health", "canary", "switch", "record", "retire"]
    assert_ran_as_printed(ran, host_deploy_steps(job), steps)
    assert job.plan.watchdog is not None and " ".join(job.plan.watchdog) in ran  # armed as printed
    assert ran.count(" ".join(job.plan.proxy.swap)) >= 2  # the split, then the switch (both staged swaps)
    next(gen, None)


@pytest.mark.parametrize("env,flag", [("local", False), ("warm", True)], ids=["stopped target", "standby flag"])
def test_a_rollback_runs_what_its_dry_run_prints_in_that_order(env, flag):
    """The dry run is built as `rollback --dry-run` builds it (the job checked on the host, read
    only), then the rollback runs: to R1's stopped containers, or to the live configuration's
    standby (the warm window: its flag, no start)."""
    gen = local_site(env)
    site, host = next(gen)
    site.r2 = site.deploy()
    dry = HostRollback(Env.resolve(LOADED, env), host, lambda event: None, site.r1)
    dry.check()
    assert dry.plan is not None and (dry.plan.flag is not None) == flag
    rows, steps = host_rollback_steps(dry), [*dry.preparation(), *dry.switch_steps()]
    assert [step.name for step in steps] == ["warm", "prepare", "start", "start", "health", "switch", "record", "retire"]
    assert [row.step for row in rows][0] == "lock" and rows[-1].step == "unlock"
    before = len(host.calls)
    [outcome] = site.rollback()
    assert outcome.release == site.r1 and host.serving() == site.r1
    ran = ran_since(host, before)
    assert_ran_as_printed(ran, rows, steps)
    for chain in dry.plan.start:  # a stopped target's `docker start`, as printed; none for the standby
        assert " ".join(chain[-1]) in ran
    assert bool(dry.plan.start) != flag
    if flag:
        assert any(call == "put_file" and f"/proxy/{dry.plan.flag}" in text for call, text in host.calls[before:])
        # The target's own configuration: tested beside the verify, then renamed and reloaded
        # (services/lifecycle/own_config.py), never the whole swap after the verify.
        nginx = dry.plan.proxy.nginx_name
        test, move = " ".join(proxy_test_staged(nginx)), " ".join(proxy_move(nginx, dry.plan.proxy_dir))
        assert ran.count(test) == ran.count(move) == 1 and ran.index(test) < ran.index(move)
        assert " ".join(dry.plan.proxy.swap) not in ran
    else:
        assert " ".join(dry.plan.proxy.swap) in ran  # the route
    next(gen, None)
