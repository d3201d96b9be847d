"""A three-node Swarm made of the test fleet's hosts (tests/support/swarm.py), made once per
session after the fleet and left (swarm leave) at the end; per test an app of its own and a
load balancer in front of every node's proxy port, on a proxy port no other app of the fleet
had (`Fleet.proxy_port`: the fleet's apps and the Swarm's fault cells draw from it too)."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.fleet.conftest import fleet, fleet_images  # noqa: F401 - the same session fleet
from tests.integration.swarm.site import SwarmImages, SwarmSite
from tests.support.swarm import Swarm, make_swarm


@pytest.fixture(scope="session")
def swarm(fleet) -> Swarm:  # noqa: F811
    try:
        made = make_swarm(fleet)
    except (RuntimeError, TimeoutError) as error:
        pytest.fail(f"the test swarm did not form: {error}", pytrace=False)
    yield made
    made.leave()


@pytest.fixture(scope="session")
def swarm_images(fleet, fleet_images, probe_images) -> SwarmImages:  # noqa: F811
    """The probe with its own HEALTHCHECK (the Swarm's docker checks, write_config's default)
    and built broken (health never passes), and the fleet's proxy image."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        good = pool.submit(fleet.publish, probe_images.good_checked, "swarm/probe", "checked")
        broken = pool.submit(fleet.publish, probe_images.broken_checked, "swarm/probe", "broken")
    return SwarmImages(probe=good.result(), broken=broken.result(), proxy=fleet_images.proxy)


@pytest.fixture(scope="session")
def swarm_http_images(fleet, swarm_images, probe_images) -> SwarmImages:  # noqa: F811
    """The probe good and broken without a HEALTHCHECK (`HEALTHCHECK NONE` on top): an app
    we did not write, whose only checks are the ones deploy.toml gives (http, tcp)."""
    def without_healthcheck(image: str, tag: str) -> str:
        built = subprocess.run(["docker", "build", "-q", "-t", f"deployctl-test/probe:{tag}", "-"],
                               input=f"FROM {image}\nHEALTHCHECK NONE\n", capture_output=True, text=True, check=False)
        assert built.returncode == 0, built.stderr
        return fleet.publish(built.stdout.strip(), "swarm/probe", tag)

    return SwarmImages(probe=without_healthcheck(probe_images.good, "no-healthcheck"),
                       broken=without_healthcheck(probe_images.broken, "no-healthcheck-broken"),
                       proxy=swarm_images.proxy)


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
