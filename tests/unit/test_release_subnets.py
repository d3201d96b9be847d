"""Address space for release networks (plan/lifecycle/subnets.py): each takes a /26 of the
environment's pool, so many apps and their kept releases fit on one host where Docker's
~30 default pools run out; a release's network goes with its containers on every path,
and one left without containers is removed by the next prune."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from deployctl.config import LoadedConfig, parse_config
from deployctl.errors import ConfigError, DeployctlError
from deployctl.events import Recorder
from deployctl.plan.lifecycle import subnets
from deployctl.plan.lifecycle.names import LABEL_APP, LABEL_ENV, LABEL_RELEASE, LABEL_ROLE
from deployctl.secrets import Secret
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.env import Env
from tests.support.fake_host import FakeHost, Fault
from tests.unit.test_lifecycle_rules import CONFIG, PROXY_IMAGE, T0, virtual_time  # noqa: F401

SECRETS = {"DB_PASSWORD": Secret("s3cret")}
APPS, RELEASES = 8, 5


def _loaded(app: str, pool: str | None = None, port: int = 8080) -> LoadedConfig:
    text = CONFIG.replace('app = "shop"', f'app = "{app}"').replace("warm_window = 600", "warm_window = 600\nkeep = 3")
    text = text.replace('[environments.warm]\ntarget = "local"\nproxy_port = 8080', f'[environments.warm]\ntarget = "local"\nproxy_port = {port}')
    if pool is not None:
        text = text.replace('[environments.warm]\n', f'[environments.warm]\nrelease_subnet_pool = "{pool}"\n')
    return LoadedConfig(Path("/project/deploy.toml"), parse_config(text))


def _images(n: int) -> ReleaseImages:
    return ReleaseImages({"backend": f"sha256:back{n}", "frontend": f"sha256:front{n}"}, f"{n:07d}")


def _host() -> FakeHost:
    return FakeHost("local", images=[f"sha256:{s}{n}" for s in ("back", "front") for n in range(1, RELEASES + 1)]
                    + [PROXY_IMAGE])


def test_the_pool_is_carved_in_26s_around_what_the_engine_uses():
    used = subnets.parse_used("172.17.0.0/16 \n10.213.0.0/26 10.213.0.128/25 \nfe80::/64 \n\n")
    assert used == [ipaddress.ip_network("172.17.0.0/16"), ipaddress.ip_network("10.213.0.0/26"),
                    ipaddress.ip_network("10.213.0.128/25")]
    assert subnets.pick_subnet("10.213.0.0/16", used) == "10.213.0.64/26"
    assert subnets.pick_subnet("10.213.0.0/24", used + [ipaddress.ip_network("10.213.0.64/26")]) is None
    assert subnets.pick_subnet("10.0.0.0/8", [ipaddress.ip_network("10.0.0.0/9")]) == "10.128.0.0/26"
    assert subnets.capacity(subnets.DEFAULT_POOL) == 1024
    # The app's own network (the proxy, every kept release, the accessories) takes a /24.
    assert subnets.pick_subnet("10.213.0.0/16", used, subnets.APP_SUBNET_PREFIX) == "10.213.1.0/24"


@pytest.mark.parametrize("value, expected", [
    ("10.213.0.0/33", "is not an IPv4 network in CIDR form"),
    ("8.8.0.0/16", "expected a private IPv4 range"),
    ("10.213.0.0/27", "smaller than one release network"),
    ("10.213.0.1/16", "is not an IPv4 network in CIDR form"),
])
def test_a_bad_pool_is_refused_naming_the_key(value, expected):
    with pytest.raises(ConfigError) as info:
        _loaded("shop", value)
    assert "environments.warm.release_subnet_pool" in str(info.value) and expected in str(info.value)


def _deploy_apps(pool: str | None) -> FakeHost:
    """APPS apps, each deploying RELEASES releases (keep 3, a warm window) on one host."""
    host = _host()
    for n in range(1, RELEASES + 1):
        for a in range(APPS):
            deploy(Env.resolve(_loaded(f"app{a}", pool, 8080 + a), "warm"), _images(n), SECRETS, Recorder(), connectors=[host],
                   now=T0 + 60 * (n * APPS + a))
    return host


def test_eight_apps_and_their_kept_releases_fit_on_one_host_with_the_pool_and_not_without():
    host = _deploy_apps(None)  # the default pool
    release_nets = {n: s for n, s in host.subnets.items() if host.network_labels[n].get(LABEL_RELEASE)}
    # Each app keeps its live, its warm previous and up to `keep` releases: more release
    # networks than Docker's 31 default pools, every one a /26 of the pool, none shared.
    assert len(release_nets) > 31 - APPS
    assert len(host.networks) > 31
    assert all(ipaddress.ip_network(s).subnet_of(ipaddress.ip_network(subnets.DEFAULT_POOL))
               and ipaddress.ip_network(s).prefixlen == 26 for s in release_nets.values())
    assert len(set(release_nets.values())) == len(release_nets)
    app_nets = [s for n, s in host.subnets.items() if not host.network_labels[n].get(LABEL_RELEASE)]
    assert len(app_nets) == APPS and all(ipaddress.ip_network(s).prefixlen == 24 for s in app_nets)
    assert not any(ipaddress.ip_network(a).overlaps(ipaddress.ip_network(b)) for a in app_nets
                   for b in release_nets.values())
    # Only the releases still on the host have a network (prune removed the others').
    on_host = {c.labels.get(LABEL_RELEASE) for c in host.containers.values()} - {None, ""}
    assert {host.network_labels[n][LABEL_RELEASE] for n in release_nets} == on_host
    # Docker's own pools (release_subnet_pool = ""): the same host runs out, as it did here.
    with pytest.raises(DeployctlError, match="non-overlapping IPv4 address pool among the defaults"):
        _deploy_apps("")


def test_a_release_network_left_without_containers_goes_with_the_next_prune():
    host, loaded = _host(), _loaded("shop")
    deploy(Env.resolve(loaded, "warm"), _images(1), SECRETS, Recorder(), connectors=[host], now=T0 + 60)
    orphan = "20260101-000000-deadbee"  # a deployctl killed between the network and the start
    host.run(["docker", "network", "create", "--subnet", "10.213.200.0/26", "--label", f"{LABEL_APP}=shop",
              "--label", f"{LABEL_ENV}=warm", "--label", f"{LABEL_ROLE}=network", "--label", f"{LABEL_RELEASE}={orphan}",
              f"shop-warm-{orphan}"])
    deploy(Env.resolve(loaded, "warm"), _images(2), SECRETS, Recorder(), connectors=[host], now=T0 + 120)
    assert f"shop-warm-{orphan}" not in host.networks
    assert len([n for n in host.networks if host.network_labels[n].get(LABEL_RELEASE)]) == 2


def test_a_failed_deploy_removes_its_network_and_a_taken_subnet_is_chosen_again():
    host, loaded = _host(), _loaded("shop")
    deploy(Env.resolve(loaded, "warm"), _images(1), SECRETS, Recorder(), connectors=[host], now=T0 + 60)
    before = set(host.networks)
    # Another app's deploy took the subnet this one chose, between its look and its create.
    taken = []

    def race(argv):  # type: ignore[no-untyped-def]
        taken.append(argv[argv.index("--subnet") + 1])
        host.subnets["someone-else"] = taken[0]
        return host.run(argv)  # as Docker: the subnet overlaps now

    host.faults.append(Fault("run", r"^docker network create --subnet", effect=race, times=1))
    host.crashing.append(r"-frontend-")
    with pytest.raises(DeployctlError):
        deploy(Env.resolve(loaded, "warm"), _images(2), SECRETS, Recorder(), connectors=[host], now=T0 + 120)
    assert set(host.networks) == before  # the failed release's network went with its containers
    assert len(taken) == 1  # the refused subnet was chosen once; the retry took the next free one


def test_after_a_lost_race_the_pick_is_among_the_first_free_ones_not_the_one_every_contender_takes():
    used = [ipaddress.ip_network("10.213.0.0/26")]
    seen = []
    picked = subnets.pick_subnet("10.213.0.0/16", used, spread=4, choose=lambda c: seen.append(c) or c[-1])
    assert seen == [["10.213.0.64/26", "10.213.0.128/26", "10.213.0.192/26", "10.213.1.0/26"]]
    assert picked == "10.213.1.0/26"
    # Fewer free than the spread: among those; none: None; no chooser: the first, as without a race.
    assert subnets.pick_subnet("10.213.0.0/25", used, spread=4, choose=lambda c: c[-1]) == "10.213.0.64/26"
    assert subnets.pick_subnet("10.213.0.0/26", used, spread=4, choose=lambda c: c[-1]) is None
    assert subnets.pick_subnet("10.213.0.0/16", used, spread=4) == "10.213.0.64/26"
