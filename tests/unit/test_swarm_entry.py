"""The verbs' entry points on a Swarm environment (services/lifecycle/deploy.deploy and
rollback.rollback, which every CLI verb and `drill` call): what they are given is what they use."""

from __future__ import annotations

import pytest

from deployctl.errors import ExitCode, UsageError
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.lifecycle.rollback import rollback
from deployctl.services.swarm import swarm_deploy
from deployctl.services.env import Env
from tests.support.fake_swarm import FakeSwarm
from tests.support.virtual_time import virtual_time
from tests.unit.test_swarm_dry_run_matches_run import images_of
from tests.unit.test_swarm_lifecycle_rules import LOADED, NAMES, SECRETS, Site

virtual_time = pytest.fixture(autouse=True)(virtual_time)


def test_deploy_and_rollback_honour_a_swarms_connector_as_its_manager_and_refuse_several(monkeypatch):
    """services/lifecycle/deploy.deploy(connectors=...) on a Swarm environment: its one
    connector is the manager's (services/hosts.connectors_for gives that list), never
    silently replaced by a new SSH connection; several are refused by name (exit 2)."""
    fake = FakeSwarm(NAMES)
    site = Site(fake)
    first = site.deploy()
    monkeypatch.setattr(swarm_deploy, "ssh_connector", lambda loaded, environment, address: fake.node(address))
    images = images_of(site, first)
    second = deploy(Env.resolve(LOADED, "swarm"), images, SECRETS, site.emit, connectors=[fake]).release
    assert site.current() == second and fake.serving_nodes() == {second}
    [back] = rollback(Env.resolve(LOADED, "swarm"), site.emit, connectors=[fake])
    assert (back.release, back.outcome) == (first, "succeeded") and site.current() == first

    with pytest.raises(UsageError, match=r"environments\.swarm \(target = \"swarm\"\) is reached through its one "
                                         r"manager \(environments\.swarm\.manager\); 2 connectors") as info:
        deploy(Env.resolve(LOADED, "swarm"), images, SECRETS, site.emit, connectors=[fake, fake.node("10.9.0.1")])
    assert info.value.exit_code == ExitCode.USAGE
    with pytest.raises(UsageError):
        rollback(Env.resolve(LOADED, "swarm"), site.emit, connectors=[])
    assert site.current() == first and not site.locked()
