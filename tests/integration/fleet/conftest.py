"""Per test on the test fleet (`fleet`, `fleet_images` and the module's `fleet_module_site`:
tests/support/fleet_fixtures.py, one fleet per session for every test that uses one): an app
of its own on the hosts, on a proxy port no other app of the fleet had (`Fleet.proxy_port`),
and a load balancer in front of them on 127.0.0.1."""

from __future__ import annotations

import pytest

from tests.integration.fleet.site import FleetSite, new_site


@pytest.fixture
def site(fleet, fleet_images, tmp_path) -> FleetSite:
    site = new_site(fleet, fleet_images, tmp_path, fleet.proxy_port())
    yield site
    fleet.remove_app(site.app)


@pytest.fixture
def load_balancer(fleet, site):
    balancer = fleet.load_balancer(site.proxy_port)
    yield balancer
    balancer.close()
