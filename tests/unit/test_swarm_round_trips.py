"""The manager calls of a Swarm deploy on the fake Swarm (issue 26: every manager round trip
is on the command's critical path, 0.1-0.5 s each under load): the ready nodes are listed
as the switch starts (not again by the health gate when no judge needs what the nodes
served before), and the services once after the switch (the retire's
listing is prune's too), while the outcome stays a deploy's."""

from __future__ import annotations

import threading

import pytest

from deployctl.plan.swarm import services as sw
from tests.support.fake_host import Fault
from tests.support.fake_swarm import FakeSwarm
from tests.support.virtual_time import virtual_time
from tests.unit.test_swarm_lifecycle_rules import NAMES, Site

virtual_time = pytest.fixture(autouse=True)(virtual_time)


def manager_calls(fake: FakeSwarm, since: int, prefix: str) -> int:
    return sum(1 for call, text in fake.calls[since:] if call == "run" and text.startswith(prefix))


def test_a_deploy_lists_the_nodes_once_for_the_switch_and_the_services_once_after_it():
    fake = FakeSwarm(NAMES)
    site = Site(fake)
    site.deploy()
    site.deploy()
    before = len(fake.calls)
    release = site.deploy()  # a third: an older release to stop and a keep to prune against
    assert site.current() == release and fake.serving_nodes() == {release}
    # the prefetch, the recovery's look, HTTPS's prepare, the switch (the health gate's own
    # listing gone: 5 before); each listing of its own, never reused (2d638ed)
    assert manager_calls(fake, before, " ".join(sw.inspect_listed_nodes())) == 4  # each listed and inspected at once
    assert manager_calls(fake, before, "docker node ls") == manager_calls(fake, before, "docker node inspect") == 0
    assert manager_calls(fake, before, "docker version") == 0  # the connect's docker info says it
    started = max(i for i, (call, text) in enumerate(fake.calls) if text.startswith("docker service create"))
    assert manager_calls(fake, started, "docker service scale") == 1  # the release before the last stopped
    # the retire's listing, reused by prune: the services listed and inspected in one call
    assert manager_calls(fake, started, " ".join(sw.inspect_listed_services(NAMES))) == 1
    assert manager_calls(fake, started, "docker service ls") == manager_calls(fake, started, "docker service inspect --format {{.Spec.Name}}") == 0


def test_a_migration_is_created_waited_for_on_the_manager_and_removed_in_three_manager_calls():
    """No look at its leftover first (only when its name is taken), no `docker service ps`
    from here every 0.5 s: one wait on the manager (plan/swarm/services.wait_job)."""
    fake = FakeSwarm(NAMES)
    site = Site(fake)
    site.deploy()
    before = len(fake.calls)
    site.deploy()
    job = [text for call, text in fake.calls[before:] if call == "run" and "--mode replicated-job" in text]
    assert len(job) == 1
    name = job[0].split("--name ")[1].split()[0]
    about_it = [text for call, text in fake.calls[before:] if call == "run" and name in text.split()]
    assert [" ".join(text.split()[:3]) if text.startswith("docker") else "wait" for text in about_it] == [
        "docker service create", "wait", "docker service rm"]
    assert about_it[1].startswith("sh -c ") and " docker service ps " in about_it[1]
    assert name not in fake.services


def test_a_leftover_job_of_a_killed_run_is_removed_then_the_migration_created_again():
    fake = FakeSwarm(NAMES)
    site = Site(fake)
    site.deploy()

    def leftover(argv):  # type: ignore[no-untyped-def]
        fake._run(argv)  # what a killed run left: the job, under this release's name
        return fake._run(argv)  # taken: "already exists"

    fake.faults.append(Fault("run", r"^docker service create --detach --name \S+ --mode replicated-job",
                             effect=leftover))
    before = len(fake.calls)
    release = site.deploy()
    assert site.current() == release and fake.serving_nodes() == {release}
    ran = [" ".join(text.split()[:3]) for call, text in fake.calls[before:] if call == "run" and "-migrate-" in text
           and text.startswith("docker service")]
    assert ran == ["docker service create", "docker service rm", "docker service create", "docker service rm"]
    assert not [n for n in fake.services if "-migrate-" in n]


def meeting(fake: FakeSwarm):  # type: ignore[no-untyped-def]
    """A fault effect two calls must both reach before either runs (a Barrier of 2): made
    one after the other, the first waits out the barrier's 10 s and fails the deploy (or
    rollback). A command or a file call (read_file: the effect is given its path)."""
    barrier = threading.Barrier(2, timeout=10)

    def together(call):  # type: ignore[no-untyped-def]
        barrier.wait()
        # a command's answer is the fake's; a file call (given its path) then goes on as it would
        return fake._run(call) if isinstance(call, list) else None
    return together


def test_the_new_services_are_created_at_once():
    """Each create is a manager round trip of its own: none waits for another (a barrier
    both must reach: one after the other, the first waits out its timeout and fails)."""
    fake = FakeSwarm(NAMES)
    site = Site(fake)
    site.deploy()
    together = meeting(fake)
    fake.faults.append(Fault("run", r"^docker (\S+ )*service create .*--name \S+-(backend|frontend)-\d", times=0,
                             effect=together))
    release = site.deploy()
    assert site.current() == release and fake.serving_nodes() == {release}


def test_the_switch_lists_the_nodes_and_reads_the_proxy_image_at_once():
    """Between the health gate and the nodes' route: the switch's listing of the ready nodes
    and the route's look at the proxy service's image are asked together (a barrier both
    must reach: one after the other, the first waits out its timeout and fails)."""
    fake = FakeSwarm(NAMES)
    site = Site(fake)
    site.deploy()
    together = meeting(fake)
    # the prefetch's, the recovery's, HTTPS's prepare's, then the switch's (the 4th) listing
    fake.faults.append(Fault("run", r"^sh -c ids=.* docker node ls", nth=4, effect=together))
    fake.faults.append(Fault("run", r"^docker service inspect --format \S*ContainerSpec.Image", effect=together))
    release = site.deploy()
    assert site.current() == release and fake.serving_nodes() == {release}


def warm_site() -> tuple[Site, FakeSwarm]:
    """Two releases deployed with a warm window: a rollback to the first is a warm one (the
    bench's rollback, issue 26's target of 5 s)."""
    from tests.unit.test_swarm_standby import WARM

    fake = FakeSwarm(NAMES)
    site = Site(fake, WARM)
    site.deploy()
    site.deploy()
    return site, fake


def test_a_warm_rollback_asks_the_manager_three_commands_before_its_lock():
    """Between the connect and the lock: the manager check (docker info), the prefetch's nodes
    and the services, each listed and inspected in one call (five commands on main: `docker
    node ls`, `docker node inspect`, `docker service ls`, `docker service inspect`)."""
    site, fake = warm_site()
    before = len(fake.calls)
    (done,) = site.rollback()
    assert done.outcome == "succeeded" and fake.serving_nodes() == {done.release}
    lock = next(i for i, (call, text) in enumerate(fake.calls) if i >= before and call == "mkdir"
                and text.endswith("/lock"))
    ran = sorted(text for call, text in fake.calls[before:lock] if call == "run")
    assert ran == sorted(" ".join(argv) for argv in (sw.swarm_state(), sw.inspect_listed_nodes(),
                                                      sw.inspect_listed_services(NAMES)))


def test_a_rollback_reads_the_history_beside_the_services_listing():
    """The history (a file on the manager) and the services (a command there) are asked
    together before the lock (a barrier both must reach: one after the other, as on main,
    the first waits out its timeout and fails the rollback)."""
    site, fake = warm_site()
    together = meeting(fake)
    fake.faults.append(Fault("read_file", r"/releases\.jsonl$", effect=together))
    fake.faults.append(Fault("run", r"^(sh -c ids=|docker service ls )", effect=together))
    (done,) = site.rollback()
    assert done.outcome == "succeeded" and fake.serving_nodes() == {done.release}


@pytest.mark.parametrize("command", ["deploy", "rollback"])
def test_the_first_reads_are_made_while_the_manager_is_checked(command):
    """The manager check's `docker info` and the history's read (SwarmJob.open_beside) are
    asked together (a barrier both must reach: on main the check ran first, alone, and the
    command failed on its timeout)."""
    site, fake = warm_site()
    together = meeting(fake)
    fake.faults.append(Fault("run", r"^docker info ", effect=together))
    fake.faults.append(Fault("read_file", r"/releases\.jsonl$", effect=together))
    if command == "deploy":
        release = site.deploy()
    else:
        (done,) = site.rollback()
        release = done.release
    assert site.current() == release and fake.serving_nodes() == {release}


def test_a_deploy_reads_the_history_and_current_once_before_its_lock():
    """The release id, the scale overrides and the hooks' context share one read of each
    (two of each on main)."""
    site, fake = warm_site()
    before = len(fake.calls)
    release = site.deploy()
    assert site.current() == release
    lock = next(i for i, (call, text) in enumerate(fake.calls) if i >= before and call == "mkdir"
                and text.endswith("/lock"))
    read = [text.rsplit("/", 1)[1] for call, text in fake.calls[before:lock] if call == "read_file"]
    assert read == ["releases.jsonl", "current"]


@pytest.mark.parametrize("command", ["deploy", "rollback"])
def test_a_worker_is_refused_as_no_manager_whatever_the_reads_beside_the_check_found(command):
    """The reads beside the check ran on a node that is no manager: the command still fails as
    the check says (exit 4), before any lock, with nothing changed."""
    from deployctl.adapters.connector import CommandResult
    from deployctl.errors import ConnectError, ExitCode

    site, fake = warm_site()
    live, records = site.current(), site.records()
    fake.faults.append(Fault("run", r"^docker info ", times=0,
                             effect=lambda argv: CommandResult(0, "active\tfalse\t20.10.24\n", "")))
    fake.faults.append(Fault("run", r"^(sh -c ids=|docker node ls)", times=0,
                             effect=lambda argv: CommandResult(1, "", "This node is not a swarm manager.")))
    before = len(fake.calls)
    with pytest.raises(ConnectError, match="not a Swarm manager") as info:
        site.deploy() if command == "deploy" else site.rollback()
    assert info.value.exit_code == ExitCode.CONNECT
    assert site.current() == live and site.records() == records and not site.locked()
    assert not [text for call, text in fake.calls[before:] if call in ("mkdir", "put_file", "append_file")]
