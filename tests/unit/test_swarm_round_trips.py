"""The manager calls of a Swarm deploy on the fake Swarm (issue 26: every manager round trip
is on the command's critical path, 0.1-0.5 s each under load): the ready nodes are listed
as the switch starts (not again by the health gate when no judge needs what the nodes
served before), and the services once after the switch (the retire's
listing is prune's too), while the outcome stays a deploy's."""

from __future__ import annotations

import pytest

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
    assert manager_calls(fake, before, "docker node ls") == 4
    assert manager_calls(fake, before, "docker version") == 0  # the connect's docker info says it
    started = max(i for i, (call, text) in enumerate(fake.calls) if text.startswith("docker service create"))
    assert manager_calls(fake, started, "docker service scale") == 1  # the release before the last stopped
    assert manager_calls(fake, started, "docker service ls") == 1  # the retire's listing, reused by prune
