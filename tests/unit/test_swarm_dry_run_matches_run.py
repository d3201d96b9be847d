"""A Swarm's dry run prints what its deploy and rollback run (issue 22), as a host's does
(tests/unit/test_dry_run_matches_run.py): a deploy (and a rollback) on the fake Swarm
(tests/support/fake_swarm.py) and a dry run of the same config and release are compared
argv by argv, the manager's and every node's. Every command the run sent that changes the
Swarm is one the dry run printed (a placeholder standing for what only the run knows: the
node's proxy task, the other releases' services), and the run took its steps in the order
the dry run printed them. What only the run sends reads state (ls, inspect, ps, info...)."""

from __future__ import annotations

import pytest

from deployctl.plan.swarm import services as sw
from deployctl.plan.lifecycle.dry_run import unlock_row
from deployctl.services.env import Env
from deployctl.services.lifecycle import dry_runs
from deployctl.services.lifecycle.deploy_result import DeployOptions
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.swarm.swarm_deploy import SwarmJob, rollback_job, swarm_deploy_plan
from tests.support.fake_swarm import FakeSwarm
from tests.unit.test_dry_run_matches_run import printed_as
from tests.unit.test_swarm_lifecycle_rules import LOADED, NAMES, Site
from tests.support.virtual_time import virtual_time

virtual_time = pytest.fixture(autouse=True)(virtual_time)
READS = ("inspect", "ls", "ps", "info", "logs", "version")


def reads(argv: str) -> bool:
    if argv in (" ".join(sw.inspect_listed_services(NAMES)), " ".join(sw.inspect_listed_nodes())):
        return True  # the services or the nodes listed and inspected: one call
    words = argv.split()
    if words[:2] == ["sh", "-c"]:  # a node's proxy task looked up by its label: `docker ps -q ...`
        words = words[2:]
    return words[:2] == ["date", "+%s.%N"] or (words[0] == "docker" and any(word in READS for word in words[1:3]))


def sent(fake: FakeSwarm, marks: dict[str, int]) -> list[str]:
    """Every command run since `marks` on the manager, then on each node."""
    hosts = {"manager": fake, **fake.nodes}
    return [text for name, host in hosts.items() for call, text in host.calls[marks[name]:] if call == "run"]


def marks(fake: FakeSwarm) -> dict[str, int]:
    return {"manager": len(fake.calls), **{a: len(n.calls) for a, n in fake.nodes.items()}}


def first_of(argvs: list[str], prefix: str) -> int:
    return next(i for i, argv in enumerate(argvs) if argv.startswith(prefix))


def unquoted(line: str) -> str:
    """A printed line with its placeholders as the run's names stand: the node's proxy task
    is shell-quoted inside the swap's `sh -c` (plan/lifecycle/switch_plan.proxy_swap), a name is not."""
    return line.replace("'<the node'\"'\"'s proxy task>'", "<the node's proxy task>")


def images_of(site: Site, release: str) -> ReleaseImages:
    record = next(r for r in site.records() if r.release == release)
    return ReleaseImages({s: record.images[s] for s in ("backend", "frontend")}, record.revision)


def test_every_command_a_swarm_deploy_runs_is_one_its_dry_run_printed_in_that_order():
    fake = FakeSwarm(NAMES)
    site = Site(fake)
    site.deploy()
    before = marks(fake)
    release = site.deploy()
    ran = sent(fake, before)

    # What `deploy --dry-run` prints for the same release (services/lifecycle/dry_runs.py).
    [(manager, rows), *_] = dry_runs._swarm_deploy(Env.resolve(LOADED, "swarm"), release, images_of(site, release), DeployOptions(),
                                                   hooks=False).items()
    assert manager == "swarm manager manager" and [r.step for r in rows[:2]] == ["preflight", "lock"]
    printed = [unquoted(" ".join(row.argv)) for row in rows if row.argv]

    assert [argv for argv in ran if not reads(argv) and not printed_as(argv, printed)] == []
    # In the order printed: the migration, the new services, the staged swap, the replaced
    # release scaled to 0 (the manager's calls; the swap runs on every node).
    env = Env.resolve(LOADED, "swarm")
    plan = swarm_deploy_plan(env, release, images_of(site, release))
    landmarks = [" ".join(plan.migrations[0][1]), " ".join(plan.start[0]), "docker service scale --detach"]
    manager_ran = [text for call, text in fake.calls[before["manager"]:] if call == "run"]
    assert sorted(landmarks, key=lambda m: first_of(manager_ran, m)) == landmarks
    assert sorted(landmarks, key=lambda m: first_of(printed, m)) == landmarks
    names = [row.step for row in rows]
    assert names.index("migrate") < names.index("start") < names.index("health") < names.index("route") \
        < names.index("verify") < names.index("record") < names.index("stop") < names.index("prune")
    # on every node: the DNS wait testing nginx.conf.next, then the rename and reload, as printed
    swaps = [argv for argv in ran if "nginx.conf.next" in argv]
    assert len(swaps) == 2 * len(fake.nodes) and all(printed_as(argv, printed) for argv in swaps)
    assert sum(1 for argv in swaps if argv.startswith("sh -c mv -f ")) == len(fake.nodes)


def rollback_dry_run(env, fake):  # type: ignore[no-untyped-def]
    """What `rollback --dry-run` builds (services/lifecycle/dry_runs._swarm_rollback), on the
    fake manager: (its target, the job, every argv it prints, the unlock last as printed)."""
    job = SwarmJob(env, lambda event: None, fake, nodes=fake.node)
    opened, state = job.open()
    _, target, _, work = rollback_job(env, opened, state, None, lambda event: None)
    printed = [] if work is None else [unquoted(" ".join(row.argv)) for step in work.steps()
                                       for row in step.rows if row.argv]
    printed.append(" ".join(unlock_row(env.layout).argv))  # after the steps, as the dry run prints it
    return target, work, printed


def test_every_command_a_swarm_rollback_runs_is_one_its_dry_run_printed():
    fake = FakeSwarm(NAMES)
    site = Site(fake)
    r1 = site.deploy()
    site.deploy()
    target, work, printed = rollback_dry_run(Env.resolve(LOADED, "swarm"), fake)
    assert target == r1 and work is not None

    before = marks(fake)
    site.rollback()
    ran = sent(fake, before)
    assert [argv for argv in ran if not reads(argv) and not printed_as(argv, printed)] == []
    assert " ".join(work.plan.start[0]) in ran and printed.index(" ".join(work.plan.start[0])) == 0



def test_a_swarm_canary_deploy_runs_what_its_dry_run_printed_with_the_canary_between_health_and_route():
    from tests.unit import test_lifecycle_rules as host_rules
    from tests.unit.test_swarm_lifecycle_rules import LAYOUT, _canary

    fake = FakeSwarm(NAMES)
    site = Site(fake)
    site.deploy()
    before = marks(fake)
    fake.faults.append(host_rules.proxy_log(fake, LAYOUT, copy_errors=0))  # the canary's answers, all good
    release = site.deploy(options=_canary())  # promoted, then the route
    fake.faults.clear()
    ran = sent(fake, before)
    [(_, rows), *_] = dry_runs._swarm_deploy(Env.resolve(LOADED, "swarm"), release, images_of(site, release),
                                             _canary(), hooks=False).items()
    printed = [unquoted(" ".join(row.argv)) for row in rows if row.argv]
    assert [argv for argv in ran if not reads(argv) and not printed_as(argv, printed)] == []
    names = [row.step for row in rows]
    assert names.index("health") < names.index("canary") < names.index("route") < names.index("verify")
    # every node's watchdog ran, and was printed as each node runs it (joined to its proxy task)
    assert sum(1 for argv in ran if "canary-watchdog" in argv and argv.startswith("docker run")) == len(fake.nodes)


def test_a_warm_swarm_rollback_by_the_standby_flag_runs_what_its_dry_run_printed():
    """Inside the warm window: the flag, the verify, and the target's own configuration
    (staged and tested beside the verify, made live after it) and the flags' clean-up, every
    node's command printed."""
    from tests.unit.test_swarm_standby import WARM, swaps_during_route

    fake = FakeSwarm(NAMES)
    site = Site(fake, WARM)
    r1 = site.deploy()
    site.deploy()
    target, work, printed = rollback_dry_run(Env.resolve(WARM, "swarm"), fake)
    assert target == r1 and work is not None and not work.plan.start  # warm: nothing to scale up

    before = marks(fake)
    assert swaps_during_route(site, fake, site.rollback) == 0  # by the flag
    ran = sent(fake, before)
    assert [argv for argv in ran if not reads(argv) and not printed_as(argv, printed)] == []
    assert sum(1 for argv in ran if " nginx -t " in argv and "&&" not in argv) == len(fake.nodes)
    assert sum(1 for argv in ran if argv.startswith("sh -c mv -f ") and "nginx -t" not in argv) == len(fake.nodes)
