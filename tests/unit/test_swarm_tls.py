"""HTTPS on a Swarm (docs/tls.md, "A Swarm"), on the scripted fake Swarm
(tests/support/fake_swarm.py): services/edge/tls.py's host code on every node's global
proxy task, as on a fleet's hosts (tests/unit/test_tls.py): the answer on every node
before the CA validates, one certificate installed staged on every node (key 0600), the
account key on every node, the manager's lock, the proxy publishing proxy_tls_port.
tests/integration/swarm/test_swarm_tls.py proves it on the real 3-node Swarm with pebble."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.config import LoadedConfig, parse_config
from deployctl.errors import ExitCode
from deployctl.events import Recorder
from deployctl.plan.edge import certificates as certs
from deployctl.secrets import Secret
from deployctl.services.edge import tls
from deployctl.services.hosts import layout_for, names_for
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.swarm import swarm_deploy
from deployctl.services.env import Env
from deployctl.services.swarm.swarm_site import SwarmSite, node_proxies
from tests.support.fake_swarm import FakeSwarm
from tests.support.virtual_time import virtual_time
from tests.unit.test_tls import ACME, FakeCa

CONFIG = """
app = "shop"
registry = {{ server = "registry.example" }}
[services.web]
context = "web"
routed = true
replicas = 3
[services.web.healthcheck]
type = "docker"
timeout = 2
[proxy]
{proxy}
[environments.swarm]
target = "swarm"
manager = "manager"
proxy_port = 8080
proxy_tls_port = 8443
state_dir = "/srv/state"
{tls}
[environments.swarm.rollout]
drain = 0
guard_window = 0
warm_window = 0
"""
virtual_time = pytest.fixture(autouse=True)(virtual_time)  # tests/support/virtual_time.py


def loaded(tls_line: str = "") -> LoadedConfig:
    return LoadedConfig(Path("/project/deploy.toml"), parse_config(CONFIG.format(proxy=ACME, tls=tls_line)))


LAYOUT = layout_for(loaded(), "swarm")
NAMES = names_for(loaded(), "swarm")
LIVE = f"{LAYOUT.proxy_dir}/tls/live"


@pytest.fixture
def swarm(monkeypatch):
    import deployctl.adapters.acme_client as acme_client

    fake = FakeSwarm(NAMES)
    FakeCa.instances, FakeCa.hosts, FakeCa.refuse = [], list(fake.nodes.values()), None
    FakeCa.proxy_dir = LAYOUT.proxy_dir
    monkeypatch.setattr(acme_client, "AcmeClient", FakeCa)
    yield fake
    assert not fake.unknown and not any(n.unknown for n in fake.nodes.values()), fake.unknown


def deploy(fake: FakeSwarm, n: int, site: LoadedConfig | None = None, emit: Recorder | None = None) -> str:
    images = ReleaseImages({"web": f"registry.example/shop/web@sha256:{n:064d}"}, f"{n:07d}")
    return swarm_deploy.deploy_env(Env.resolve(site or loaded(), "swarm"), images, {}, emit or Recorder(), manager=fake,
                               nodes=fake.node, now=1_780_000_000 + 60 * n).release


def renew(fake: FakeSwarm, **kwargs) -> str:  # type: ignore[no-untyped-def]
    """`deployctl certs renew` on a Swarm (cli/certs.py): the ready nodes under the manager's lock."""
    site = SwarmSite(fake, fake.node, NAMES, LAYOUT, Recorder())
    conns, proxies = node_proxies(site, Env.resolve(loaded(), "swarm"))
    return tls.ensure_locked(Env.resolve(loaded(), "swarm"), conns, Recorder(), proxies=proxies, locks=[fake], **kwargs)


def test_a_swarm_deploy_answers_on_every_node_then_installs_one_certificate_on_every_node(swarm):
    emit = Recorder()
    release = deploy(swarm, 1, emit=emit)
    assert FakeCa.instances[-1].seen_at_respond == {"token-shop.example.com": ["10.9.0.1", "10.9.0.2", "10.9.0.3"]}
    nodes = list(swarm.nodes.values())
    versions = {node.links.get(LIVE) for node in nodes}
    assert len(versions) == 1 and None not in versions
    version = versions.pop()
    for node in nodes:
        assert node.files[f"{LAYOUT.proxy_dir}/tls/{version}/privkey.pem"][1] == 0o600
        assert node.files[f"{LAYOUT.root}/acme/account.pem"][1] == 0o600
        assert node.text(f"{LAYOUT.proxy_dir}/tls/acme-challenge.conf") is not None
        assert not [p for p in node.files if "/.well-known/acme-challenge/" in p]  # answers removed after
        assert node.proxy_task().certificate == version  # reloaded: the certificate serves
        assert b"include /etc/deployctl/proxy/tls/live/*.conf;" in node.proxy_task().loaded
    assert len({node.files[f"{LAYOUT.root}/acme/account.pem"][0] for node in nodes}) == 1  # one ACME account
    assert swarm.services[NAMES.proxy].ports == [8080, 8443]  # HTTP and HTTPS on every node (host mode)
    assert LAYOUT.lock_dir not in swarm.dirs  # the manager's lock, released
    chain = nodes[0].files[f"{LAYOUT.proxy_dir}/tls/{version}/fullchain.pem"][0]
    assert certs.describe(chain).names == ("shop.example.com",)
    said = repr(emit.events)
    assert "PRIVATE KEY" not in said and "certificate for shop.example.com" in said and release in said
    deploy(swarm, 2)  # nothing to renew: no order, the same certificate
    assert len(FakeCa.instances) == 1 and {node.links[LIVE] for node in nodes} == {version}


def test_renew_on_a_swarm_is_under_the_managers_lock_and_a_refusing_ca_leaves_every_node_serving(swarm):
    deploy(swarm, 1)
    before = {node.links[LIVE] for node in swarm.nodes.values()}
    assert "already on every host" not in renew(swarm, force=True)
    renewed = {node.links[LIVE] for node in swarm.nodes.values()}
    assert len(renewed) == 1 and renewed != before
    FakeCa.refuse = "Connection refused (connection)"
    with pytest.raises(tls.CertificateError) as info:
        renew(swarm, force=True)
    assert info.value.exit_code == ExitCode.CERTIFICATE == 9 and "keeps serving" in info.value.hint
    assert {node.links[LIVE] for node in swarm.nodes.values()} == renewed
    assert {node.proxy_task().certificate for node in swarm.nodes.values()} == renewed
    assert LAYOUT.lock_dir not in swarm.dirs


def test_a_swarm_turning_https_on_later_publishes_the_port_then_off_removes_the_certificate(swarm):
    deploy(swarm, 1, loaded('tls = "off"'))
    assert swarm.services[NAMES.proxy].ports == [8080]
    assert not FakeCa.instances
    deploy(swarm, 2)  # HTTPS on: the existing proxy publishes 8443 too (its tasks replaced), then the certificate
    assert swarm.services[NAMES.proxy].ports == [8080, 8443]
    assert len({node.proxy_task().certificate for node in swarm.nodes.values()} - {None}) == 1
    release = deploy(swarm, 3, loaded('tls = "off"'))
    for node in swarm.nodes.values():
        assert not [p for p in node.files if "/tls/" in p] and not node.links
        assert node.proxy_task().certificate is None  # the switch's reload dropped HTTPS
        assert node.serving() == release


def test_a_swarm_rollback_keeps_serving_the_current_certificate(swarm):
    deploy(swarm, 1)
    deploy(swarm, 2)
    version = swarm.nodes["10.9.0.1"].links[LIVE]
    swarm_deploy.rollback_env(Env.resolve(loaded(), "swarm"), Recorder(), manager=swarm, nodes=swarm.node)
    for node in swarm.nodes.values():
        assert node.proxy_task().certificate == version and b"/tls/live/*.conf" in node.proxy_task().loaded


def test_tls_files_on_a_swarm_is_checked_before_anything_changes(swarm, monkeypatch):
    from deployctl.errors import ConfigError
    from tests.support.pebble import TestCa

    site = LoadedConfig(Path("/project/deploy.toml"), parse_config(CONFIG.format(
        proxy='hosts = ["shop.example.com"]\ntls = "files"\ntls_certificate_secret = "TLS_CHAIN"\n'
              'tls_key_secret = "TLS_KEY"', tls='secrets = "env"')))
    ca = TestCa()
    chain, key = ca.issue(["other.example.com"])
    monkeypatch.setenv("TLS_CHAIN", chain.decode())
    monkeypatch.setenv("TLS_KEY", key.decode())
    with pytest.raises(ConfigError, match="not for shop.example.com"):
        deploy(swarm, 1, site)
    assert swarm.calls == [] and not swarm.services
    chain, key = ca.issue(["shop.example.com"])
    monkeypatch.setenv("TLS_CHAIN", chain.decode())
    monkeypatch.setenv("TLS_KEY", Secret(key.decode()).reveal())
    deploy(swarm, 1, site)
    for node in swarm.nodes.values():
        version = node.links[LIVE]
        assert node.files[f"{LAYOUT.proxy_dir}/tls/{version}/privkey.pem"] == (key, 0o600)
    assert FakeCa.instances == []


def test_the_proxy_publishes_https_beside_http_and_an_existing_one_gets_it_one_node_at_a_time():
    from deployctl.plan.swarm import services as sw

    created = sw.proxy_service(NAMES, "nginx@sha256:1", LAYOUT.proxy_dir, 8080, 80, {}, tls_port=8443)
    assert created[created.index("--publish"):created.index("--publish") + 4] == [
        "--publish", "mode=host,target=80,published=8080,protocol=tcp",
        "--publish", "mode=host,target=443,published=8443,protocol=tcp"]
    assert created.count("--publish") == 2
    assert sw.proxy_service(NAMES, "nginx@sha256:1", LAYOUT.proxy_dir, 8080, 80, {}).count("--publish") == 1
    assert sw.publish_proxy_port(NAMES, 8443, 443) == [
        "docker", "service", "update", "--detach=false", "--quiet",
        "--publish-add", "mode=host,target=443,published=8443,protocol=tcp",
        "--stop-signal", "QUIT", "--update-parallelism", "1", "--update-order", "stop-first",
        "--update-delay", "2s", "--update-failure-action", "rollback", "shop-swarm-proxy"]


def test_the_dry_run_of_a_swarm_deploy_says_what_https_does():
    from deployctl.services.lifecycle.deploy_result import DeployOptions
    from deployctl.services.lifecycle.dry_runs import deploy_plan

    images = ReleaseImages({"web": "registry.example/shop/web@sha256:" + "1" * 64}, "1111111")
    _, plans = deploy_plan(Env.resolve(loaded(), "swarm"), images, None, DeployOptions(), hooks=False)
    rows = [row for rows in plans.values() for row in rows]
    certificate = next(row for row in rows if row.step == "certificate")
    assert "under the manager's lock" in certificate.detail and "every node" in certificate.detail
    assert "published=8443" in " ".join(" ".join(row.argv) for row in rows if row.argv)
