"""The dry run prints what a deploy runs (issue 22): a deploy on the scripted host and a dry
run of the same config and release are compared argv by argv. Every command the deploy ran
that changes the host is one the dry run printed, and the switch's own argvs (the start
chains, the staged swap) were run as printed. What only the dry run has is conditional
(a network or proxy made only if missing, a chown only for a non-root image user, the
stop's placeholder); what only the run has reads state (inspect, ps)."""

from __future__ import annotations

import re

import pytest

from deployctl.services.lifecycle.deploy import HostDeploy
from deployctl.services.env import Env
from deployctl.services.lifecycle.deploy_result import DeployOptions
from deployctl.services.lifecycle.dry_runs import host_deploy_steps
from tests.support.fake_host import FakeHost
from tests.unit.test_lifecycle_rules import LOADED, PROD, Site, local_site, virtual_time  # noqa: F401 - a fixture

READS = ("inspect", "ps", "port", "logs", "version", "ls")
PLACEHOLDER = re.compile(r"<[^<>]+>")  # what only the run knows: `<other releases' containers>`, `<USER>`


def printed_as(argv: str, printed: list[str]) -> bool:
    """Whether `argv` is one of the printed lines, a placeholder standing for any words."""
    return any(argv == line or (PLACEHOLDER.search(line) and re.fullmatch(
        ".+".join(re.escape(part) for part in PLACEHOLDER.split(line)), argv)) for line in printed)


def reads(argv: str) -> bool:
    words = argv.split()
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
