"""The Swarm manager check (services/swarm/swarm_site.SwarmSite.check_manager, read by
plan/swarm/services.manager_state): a worker is refused at its first answer; a manager
whose answer is unsettled (active, the control field empty: seen once on a loaded CI run)
is asked again before anything is refused."""

from __future__ import annotations

import pytest

from deployctl.adapters.connector import CommandResult
from deployctl.errors import ConnectError
from deployctl.plan.lifecycle.names import Names, StateLayout
from deployctl.plan.swarm import services as sw
from deployctl.services.swarm.swarm_site import SwarmSite


@pytest.mark.parametrize("stdout, state", [
    ("active\ttrue\n", "manager"),
    ("active\ttrue\t20.10.24\n", "manager"),  # the engine's version follows (swarm_state)
    ("active\tfalse\t20.10.24\n", "no"),
    ("active\t\t20.10.24\n", "unsettled"),
    ("active\tfalse\n", "no"),      # a worker
    ("inactive\tfalse\n", "no"),    # not in a Swarm
    ("pending\tfalse\n", "no"),
    ("active\t\n", "unsettled"),
    ("active\n", "unsettled"),
    ("", "no"),
])
def test_what_docker_info_says_is_read(stdout, state):
    assert sw.manager_state(stdout) == state


class Manager:
    host = "10.0.0.1"

    def __init__(self, *answers: str) -> None:
        self.answers, self.calls = list(answers), 0

    def run(self, argv, timeout=None):  # type: ignore[no-untyped-def]
        assert argv == sw.swarm_state()
        self.calls += 1
        return CommandResult(0, self.answers.pop(0), "")


def site(manager: Manager) -> SwarmSite:
    names = Names("shop", "production")
    return SwarmSite(manager, lambda address: None, names, StateLayout("/var/lib/deployctl", "shop", "production"), lambda e: None)


def test_an_unsettled_manager_is_asked_again_and_passes():
    manager = Manager("active\t\n", "active\n", "active\ttrue\n")
    site(manager).check_manager(pause=0)
    assert manager.calls == 3


def test_a_worker_is_refused_at_its_first_answer():
    manager = Manager("active\tfalse\n", "active\ttrue\n")
    with pytest.raises(ConnectError, match=r"10\.0\.0\.1: not a Swarm manager \(docker info says 'active\\tfalse'\)"):
        site(manager).check_manager(pause=0)
    assert manager.calls == 1


def test_an_answer_that_never_settles_is_refused_after_the_attempts():
    manager = Manager(*["active\t\n"] * 4)
    with pytest.raises(ConnectError, match="not a Swarm manager"):
        site(manager).check_manager(attempts=4, pause=0)
    assert manager.calls == 4


def test_the_check_says_the_engines_version_so_the_swarm_connect_needs_no_docker_version_call():
    manager = Manager("active\ttrue\t20.10.24+dfsg1\n")
    assert site(manager).check_manager(pause=0) == "20.10.24+dfsg1" and manager.calls == 1
    assert sw.server_version("active\ttrue\n") == ""


def test_a_swarm_command_connects_with_one_call_to_the_manager():
    """SwarmJob.open: `docker info` says the manager's state and its engine's version, which
    a host's preflight asks `docker version` for (one round trip fewer on every Swarm command)."""
    from deployctl.events import StepDone
    from deployctl.services.env import Env
    from deployctl.services.swarm.swarm_deploy import SwarmJob
    from tests.support.fake_swarm import FakeSwarm
    from tests.unit.test_swarm_lifecycle_rules import LOADED, NAMES

    fake = FakeSwarm(NAMES)
    events: list = []
    SwarmJob(Env.resolve(LOADED, "swarm"), events.append, fake, nodes=fake.node).open()
    assert [text for call, text in fake.calls if call == "run"] == [" ".join(sw.swarm_state())]
    assert [e.step for e in events if isinstance(e, StepDone)] == ["connect"]
