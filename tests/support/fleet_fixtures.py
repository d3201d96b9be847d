"""The test fleet's session fixtures, defined once for the whole suite (a pytest plugin named
in tests/conftest.py's `pytest_plugins`): three EC2-like hosts (own sshd, own dockerd)
pulling from the session's registry, started once per session (per xdist worker) and removed
with their volumes at the end (tests/support/fleet.py), the probe images pushed to it, and
the site one test module shares on it.

Every test that asks for `fleet` (tests/integration/fleet, the Swarm's tests through
`swarm`, tests/faults/test_fleet_faults.py, test_swarm_faults.py) gets this one fixture, so
one worker starts one fleet. Do not import these functions into a test module or conftest:
pytest registers an imported fixture function again as a fixture of the importing module,
with an instance of its own (a second fleet of three hosts per importing place, kept until
the worker ends). tests/integration/test_parallel_groups.py fails if that comes back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.deploy_fixtures import build_probe_images
from tests.integration.fleet.site import FleetImages, FleetSite, new_site
from tests.support.fleet import Fleet, start_fleet

HOSTS = 3


@pytest.fixture(scope="session")
def fleet(tmp_path_factory, registry, standin_images) -> Fleet:
    try:
        started = start_fleet(tmp_path_factory.mktemp("fleet"), HOSTS, host_image=standin_images["host"],
                              nginx_image=standin_images["nginx"], registry_port=registry.port)
    except (RuntimeError, TimeoutError) as error:
        pytest.fail(f"the test fleet did not start: {error}", pytrace=False)
    yield started
    started.close()


@pytest.fixture(scope="session")
def fleet_images(fleet, standin_images) -> FleetImages:
    """The probe images pushed once; each host pulls them on its first deploy."""
    probe = build_probe_images(standin_images)
    with ThreadPoolExecutor(max_workers=2) as pool:  # two pushes: compressing layers is the slow part
        good = pool.submit(fleet.publish, probe.good, "fleet/probe", "good")
        # deployctl's built-in proxy runs this nginx (the hosts cannot pull nginx:1.27-alpine).
        proxy = pool.submit(fleet.publish, standin_images["nginx"], "fleet/nginx", "standin")
    return FleetImages(probe=good.result(), proxy=proxy.result())


# One app for a whole module, as each tests/faults module has one site: a module's tests run in
# order on it, each starting from the release the one before left live (`live_release`). A new
# app's first deploy (its proxy started on every host) and its removal are tens of seconds on a
# loaded CI machine; a test whose first step was "deploy a release to have one live" pays them
# once per module instead. Each test sets the rollout settings it needs (`write_config`).
# Module-scoped: one per module that asks for it (the fleet tests' modules, the fleet faults).

@pytest.fixture(scope="module")
def fleet_module_site(fleet, fleet_images, tmp_path_factory) -> FleetSite:
    site = new_site(fleet, fleet_images, tmp_path_factory.mktemp("site"), fleet.proxy_port())
    yield site
    fleet.remove_app(site.app)


@pytest.fixture(scope="module")
def fleet_module_balancer(fleet, fleet_module_site):
    balancer = fleet.load_balancer(fleet_module_site.proxy_port)
    yield balancer
    balancer.close()
