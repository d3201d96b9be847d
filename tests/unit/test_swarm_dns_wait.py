"""Docker's DNS gossip on a Swarm (docs/swarm.md): right after a release's services start, a
node's DNS can answer "no address" for them for a moment, and the release's tasks there fail
a request calling another service by name. The route waits on every node until its DNS
resolves every service of the release (plan/swarm/services.wait_resolved, bounded), before
any node swaps, so a good release is not switched back for it. On the fake Swarm, whose
nodes answer the app's 500 until their DNS knows the release (FakeSwarm.gossip)."""

from __future__ import annotations

import pytest

from deployctl.errors import ExitCode
from deployctl.events import StepDone
from deployctl.plan.lifecycle.releases import LIVE, REVERTED
from deployctl.plan.swarm import services as sw
from tests.support.fake_swarm import FakeSwarm
from tests.unit import test_swarm_lifecycle_rules as rules

NAMES = rules.NAMES
virtual_time = rules.virtual_time


@pytest.fixture
def swarm():
    fake = FakeSwarm(NAMES)
    site = rules.Site(fake)
    site.r1 = site.deploy()
    yield site, fake
    assert not fake.unknown and not any(n.unknown for n in fake.nodes.values()), fake.unknown


def test_a_node_whose_dns_learns_the_release_late_is_waited_for_and_the_good_release_goes_live(swarm):
    site, fake = swarm
    fake.gossip = {"node2": 4.0}  # node2 knows the new release's tasks 4 s after they start
    site.emit.events.clear()
    r2 = site.deploy()
    assert fake.serving_nodes() == {r2} and site.current() == r2 and site.records()[-1].outcome == LIVE
    waited = [e for e in site.emit.of(StepDone) if e.step == "dns"]
    assert sorted(e.host for e in waited) == sorted(fake.nodes) and all(e.detail == "resolved" for e in waited)


def test_without_the_wait_the_same_release_is_switched_back(swarm, monkeypatch):
    """What the wait prevents (the row of docs/swarm.md seen in the fault cells at load ~20)."""
    site, fake = swarm
    monkeypatch.setattr(sw, "RESOLVE_WAIT", sw.RESOLVE_POLL)  # one look only
    fake.gossip = {"node2": 30.0}
    error = site.failing_deploy()
    assert error.exit_code == ExitCode.DEPLOY_FAILED and site.records()[-1].outcome == REVERTED
    assert fake.serving_nodes() == {site.r1}


def test_the_wait_is_bounded_then_routed_anyway_and_the_verify_judges(swarm):
    site, fake = swarm
    fake.gossip = {"node3": 600.0}  # never within the wait
    error = site.failing_deploy()
    assert error.exit_code == ExitCode.DEPLOY_FAILED and site.records()[-1].outcome == REVERTED
    assert any("not resolved after" in w and "10.9.0.3" in w for w in site.warnings())
    assert fake.serving_nodes() == {site.r1} and not site.locked()
