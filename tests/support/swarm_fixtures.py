"""The test Swarm's session fixtures, defined once for the whole suite (a pytest plugin named
in tests/conftest.py's `pytest_plugins`, as tests/support/fleet_fixtures.py): a three-node
Swarm made of the session fleet's hosts (tests/support/swarm.py), made once per session (per
xdist worker) after the fleet and left (swarm leave) at the end, and the images its tests
deploy. tests/integration/swarm and tests/faults/test_swarm_faults.py share this one Swarm:
do not import these functions (an imported fixture is a second instance: a second Swarm)."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.swarm.site import SwarmImages
from tests.support.swarm import Swarm, make_swarm


@pytest.fixture(scope="session")
def swarm(fleet) -> Swarm:
    try:
        made = make_swarm(fleet)
    except (RuntimeError, TimeoutError) as error:
        pytest.fail(f"the test swarm did not form: {error}", pytrace=False)
    yield made
    made.leave()


@pytest.fixture(scope="session")
def swarm_images(fleet, fleet_images, probe_images) -> SwarmImages:
    """The probe with its own HEALTHCHECK (the Swarm's docker checks, write_config's default)
    and built broken (health never passes), and the fleet's proxy image."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        good = pool.submit(fleet.publish, probe_images.good_checked, "swarm/probe", "checked")
        broken = pool.submit(fleet.publish, probe_images.broken_checked, "swarm/probe", "broken")
    return SwarmImages(probe=good.result(), broken=broken.result(), proxy=fleet_images.proxy)


@pytest.fixture(scope="session")
def swarm_http_images(fleet, swarm_images, probe_images) -> SwarmImages:
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
