"""Per test on the test Swarm (`swarm`, `swarm_images`, `swarm_http_images`:
tests/support/swarm_fixtures.py, one Swarm per session on the session fleet's hosts): an app
of its own, on a proxy port no other app of the fleet had (`Fleet.proxy_port`: the Swarm's
fault cells and the fleet's apps draw from the same ports), and a load balancer in front of
every node's proxy port."""

from __future__ import annotations

import pytest

from tests.integration.swarm.site import SwarmSite


@pytest.fixture
def swarm_http_site(swarm, swarm_http_images, tmp_path) -> SwarmSite:
    site = SwarmSite.new(swarm, swarm_http_images, tmp_path, swarm.fleet.proxy_port())
    # No migration job (5-10 s a deploy): no test on this site is about one; test_swarm.py's
    # v1 and v2 run the backend's migration on the Swarm and assert it ran.
    site.write_config(checks="http", migrate=False)
    yield site
    swarm.remove_app(site.app)


@pytest.fixture
def swarm_http_balancer(swarm, swarm_http_site):
    balancer = swarm.load_balancer(swarm_http_site.proxy_port)
    yield balancer
    balancer.close()


@pytest.fixture
def swarm_site(swarm, swarm_images, tmp_path) -> SwarmSite:
    site = SwarmSite.new(swarm, swarm_images, tmp_path, swarm.fleet.proxy_port())
    yield site
    swarm.remove_app(site.app)


@pytest.fixture
def swarm_balancer(swarm, swarm_site):
    balancer = swarm.load_balancer(swarm_site.proxy_port)
    yield balancer
    balancer.close()
