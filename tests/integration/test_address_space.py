"""Issue 24's address-space proof on the real engine: 8 apps on one host, each with its kept
releases (rollout.keep = 5) and the one being deployed, get their networks from
release_subnet_pool (plan/lifecycle/subnets.py) through the deploy's own code
(services/lifecycle/switch.HostSwitch.ensure_network), all 8 at once as 8 deploys would:
56 networks, more than Docker's ~30 default pools hold, none overlapping another network of
the engine (other tests' included), every one removed again by the code prune uses."""

from __future__ import annotations

import ipaddress
import subprocess
from concurrent.futures import ThreadPoolExecutor

from deployctl.adapters.local import LocalConnector
from deployctl.config.models import DEFAULT_SUBNET_POOL, SUBNET_PREFIX
from deployctl.plan.lifecycle.names import Names, StateLayout
from deployctl.plan.lifecycle.subnets import APP_SUBNET_PREFIX
from deployctl.services.lifecycle.switch import HostSwitch
from tests.integration.deploy_fixtures import remove_app, unique_app

APPS = 8
RELEASES = 5 + 1  # rollout.keep's default, and the release being deployed


def subnets_of(networks: list[str]) -> dict[str, list[ipaddress.IPv4Network]]:
    """Each network's IPv4 subnets (none for host and null). A network another test removes
    meanwhile fails its part of the inspect only: the others' lines are read anyway."""
    out = subprocess.run(["docker", "network", "inspect", "--format",
                          "{{.Name}}{{range .IPAM.Config}} {{.Subnet}}{{end}}", *networks],
                         capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        name, *subnets = line.split()
        found[name] = [n for n in map(ipaddress.ip_network, subnets) if isinstance(n, ipaddress.IPv4Network)]
    return found


def test_eight_apps_with_their_kept_releases_get_disjoint_subnets_from_the_pool_and_lose_them_on_prune(tmp_path):
    apps = [unique_app() for _ in range(APPS)]
    releases = [f"20261206-1200{i:02d}-{i:07x}" for i in range(RELEASES)]
    switches = {app: HostSwitch(LocalConnector(), Names(app, "local"), StateLayout(str(tmp_path), app, "local"),
                                lambda event: None) for app in apps}

    def deploys(app: str) -> None:  # each release's network as its deploy makes it, in order
        for release in releases:
            switches[app].ensure_network(release, DEFAULT_SUBNET_POOL)

    try:
        with ThreadPoolExecutor(max_workers=APPS) as pool:
            list(pool.map(deploys, apps))  # 8 apps choosing subnets at the same time
        ours = [n for app in apps for n in (Names(app, "local").network,
                                             *(Names(app, "local").release_network(r) for r in releases))]
        subnets = {name: found for name, [found] in subnets_of(ours).items()}
        assert len(subnets) == APPS * (RELEASES + 1) == 56
        pool_net = ipaddress.ip_network(DEFAULT_SUBNET_POOL)
        for name, subnet in subnets.items():
            assert subnet.subnet_of(pool_net), (name, subnet)
            app_network = any(name == Names(app, "local").network for app in apps)
            assert subnet.prefixlen == (APP_SUBNET_PREFIX if app_network else SUBNET_PREFIX), (name, subnet)
        # Disjoint from each other and from every other network on the engine (other tests'
        # and Docker's own), which were there before or were made meanwhile.
        every = subprocess.run(["docker", "network", "ls", "-q"], capture_output=True, text=True, check=True).stdout.split()
        others = [s for n, found in subnets_of(every).items() if n not in subnets for s in found]
        mine = sorted(subnets.values())
        for i, a in enumerate(mine):
            assert not any(a.overlaps(b) for b in mine[i + 1:]), a
            assert not any(a.overlaps(b) for b in others), a

        # Prune's removal (a release gone with its containers) gives the addresses back.
        for app in apps:
            switches[app].remove_release_networks(releases[:-2])
        left = subprocess.run(["docker", "network", "ls", "--format", "{{.Name}}"], capture_output=True, text=True,
                              check=True).stdout.split()
        assert sorted(n for n in left if n.split("-")[0] in apps) == sorted(
            n for app in apps for n in (Names(app, "local").network,
                                        *(Names(app, "local").release_network(r) for r in releases[-2:])))
    finally:
        for app in apps:
            remove_app(app)
