"""Maintenance mode's rules (plan/edge/maintenance.py, services/edge/maintenance.py) on fake hosts:
on every host, kept by deploys and rollbacks until `off`, deployctl's verify let through,
shown by `status`, a refused change leaves the host serving; on a Swarm's nodes the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.config import LoadedConfig, parse_config
from deployctl.errors import ExitCode, RolloutError
from deployctl.events import Recorder
from deployctl.plan.edge import maintenance as plan
from deployctl.plan.edge.proxy_config import RELEASE_HEADER, render_proxy_config
from deployctl.plan.lifecycle.release_spec import ProxySpec
from deployctl.services.inspect import status
from deployctl.services.edge.maintenance import set_maintenance
from deployctl.services.env import Env
from tests.support.fake_host import CommandResult, Fault
from tests.unit.test_lifecycle_rules import (CONFIG, LOADED, LOCAL, PROD, SWAP, fleet, local,  # noqa: F401
                                             virtual_time)

R1 = "20261127-101500-aaaaaaa"
STATE = plan.Maintenance("2026-12-06T04:00:00Z", 120, "ab" * 16)


def _public(host):  # type: ignore[no-untyped-def]
    return host.http_get("127.0.0.1", 8080, "/version")


def _config(host, layout=LOCAL) -> str:  # type: ignore[no-untyped-def]
    return host.text(f"{layout.proxy_dir}/nginx.conf")


def test_the_render_holds_the_block_off_and_on_off_round_trips():
    text = render_proxy_config(ProxySpec("nginx", False), R1, {R1: "a:1"})
    assert plan.state_of(text) is None and plan.verify_headers(text) == {}
    on = plan.with_state(text, STATE)
    assert plan.state_of(on) == STATE
    assert plan.verify_headers(on) == {plan.VERIFY_HEADER: STATE.token}
    assert 'if ($http_x_deployctl_verify = "' + STATE.token + '")' in on
    assert plan.with_state(on, None) == text
    # A switch's new configuration takes the state of the one it replaces, both ways.
    fresh = render_proxy_config(ProxySpec("nginx", False), "20261127-111500-bbbbbbb", {"20261127-111500-bbbbbbb": "b:1"})
    assert plan.state_of(plan.carry(on, fresh)) == STATE
    assert plan.carry(text, fresh) == fresh and plan.carry(None, fresh) == fresh
    # The health check is never behind it, and the page goes with the 503 only.
    assert on.index("location = /") < on.index("location / {") < on.index("if ($deployctl_maintenance)")
    with pytest.raises(ValueError, match="no maintenance block"):
        plan.with_state("http { server { location / { } } }", STATE)


def test_on_survives_a_deploy_and_a_rollback_until_off_and_status_shows_it(local):
    site, host = local
    assert _public(host).status == 200
    [result] = set_maintenance(Env.resolve(LOADED, "local"), Recorder(), on=True, retry_after=90, connectors=[host])
    assert result.changed and result.maintenance
    answer = _public(host)
    assert (answer.status, answer.headers["retry-after"]) == (503, "90")
    assert host.text(f"{LOCAL.proxy_dir}/{plan.PAGE_FILE}") == plan.DEFAULT_PAGE.decode()
    token = plan.state_of(_config(host)).token
    # A deploy verifies through the proxy (its token lets it through) and keeps the state.
    r2 = site.deploy()
    assert plan.state_of(_config(host)).token == token and _public(host).status == 503
    assert host.http_get("127.0.0.1", 8080, "/version", headers={plan.VERIFY_HEADER: token}).headers[
        RELEASE_HEADER.lower()] == r2
    [shown] = status(Env.resolve(LOADED, "local"), connectors=[host])
    assert shown.maintenance and "Retry-After 90s" in shown.maintenance and shown.proxy_routes == r2
    site.rollback()
    assert plan.state_of(_config(host)).token == token and _public(host).status == 503
    # On again: idempotent (no reload), the page can be replaced.
    [again] = set_maintenance(Env.resolve(LOADED, "local"), Recorder(), on=True, retry_after=90, page=b"<p>soon</p>",
                              connectors=[host])
    assert not again.changed and host.text(f"{LOCAL.proxy_dir}/{plan.PAGE_FILE}") == "<p>soon</p>"
    [off] = set_maintenance(Env.resolve(LOADED, "local"), Recorder(), on=False, connectors=[host])
    assert off.changed and not off.maintenance
    assert _public(host).status == 200 and _public(host).headers[RELEASE_HEADER.lower()] == site.r1
    assert host.text(f"{LOCAL.proxy_dir}/{plan.PAGE_FILE}") is None
    assert status(Env.resolve(LOADED, "local"), connectors=[host])[0].maintenance is None
    assert not (LOCAL.lock_dir in host.dirs)  # the lock it took is released


def test_a_fleet_goes_into_maintenance_on_every_host_and_a_refused_host_keeps_serving(fleet):
    site, hosts = fleet
    hosts[1].faults.append(Fault("run", SWAP, effect=lambda argv: CommandResult(1, "", "nginx: [emerg] test")))
    with pytest.raises(RolloutError) as info:
        set_maintenance(Env.resolve(LOADED, "prod"), Recorder(), on=True, connectors=list(hosts))
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED
    assert "h2" in info.value.message and "nginx -t refused" in info.value.message
    assert "changed: h1, h3" in (info.value.hint or "")
    assert [_public(h).status for h in hosts] == [503, 200, 503]
    assert [plan.state_of(_config(h, PROD)) is not None for h in hosts] == [True, False, True]
    hosts[1].faults.clear()
    results = set_maintenance(Env.resolve(LOADED, "prod"), Recorder(), on=True, connectors=list(hosts))
    assert [r.changed for r in results] == [False, True, False]
    site.deploy()  # a fleet deploy, batch 1: every host verifies through its own proxy
    assert [_public(h).status for h in hosts] == [503, 503, 503]
    set_maintenance(Env.resolve(LOADED, "prod"), Recorder(), on=False, connectors=list(hosts))
    assert [_public(h).status for h in hosts] == [200, 200, 200]


def test_a_swarm_goes_into_maintenance_on_every_node_keeps_it_through_a_deploy_until_off():
    """Every ready node's global proxy task through the same staged swap, under the manager's
    lock (cli/maintenance.py gives the nodes), on the fake Swarm (tests/support/fake_swarm.py)."""
    from deployctl.services.env import Env
    from deployctl.services.swarm.swarm_site import SwarmSite, node_proxies
    from tests.support.fake_swarm import FakeSwarm
    from tests.unit import test_swarm_lifecycle_rules as swarm_rules

    fake = FakeSwarm(swarm_rules.NAMES)
    site = swarm_rules.Site(fake)
    first = site.deploy()
    layout = swarm_rules.LAYOUT

    def switch(on: bool, emit: Recorder | None = None):  # type: ignore[no-untyped-def]
        nodes = SwarmSite(fake, fake.node, swarm_rules.NAMES, layout, Recorder())
        conns, proxies = node_proxies(nodes, Env.resolve(swarm_rules.LOADED, "swarm"))
        return set_maintenance(Env.resolve(swarm_rules.LOADED, "swarm"), emit or Recorder(), on=on, connectors=conns,
                               proxies=proxies, lock=fake)

    results = switch(True)
    assert [(r.host, r.maintenance, r.changed, r.error) for r in results] == [
        (address, True, True, None) for address in fake.nodes]
    for node in fake.nodes.values():
        answer = node.http_get("127.0.0.1", 8080, "/version")
        assert answer.status == 503 and answer.headers["retry-after"] == "300"
        assert plan.state_of(node.text(f"{layout.proxy_dir}/nginx.conf")) is not None
        assert node.text(f"{layout.proxy_dir}/{plan.PAGE_FILE}") is not None
        assert any("nginx.conf.next" in text for _, text in node.calls)  # staged, tested, renamed, reloaded
    assert layout.lock_dir not in fake.dirs  # the manager's lock, released
    second = site.deploy()  # its verify passes through the token; the block is carried
    assert second != first and fake.serving_nodes() == {second}
    assert all(node.http_get("127.0.0.1", 8080, "/version").status == 503 for node in fake.nodes.values())
    switch(False)
    for node in fake.nodes.values():
        answer = node.http_get("127.0.0.1", 8080, "/version")
        assert answer.status == 200 and answer.headers[RELEASE_HEADER.lower()] == second
        assert node.text(f"{layout.proxy_dir}/{plan.PAGE_FILE}") is None
    fake.faults.append(Fault("run", SWAP, effect="fail", times=1))
    with pytest.raises(RolloutError) as info:
        switch(True)
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED and "nginx -t refused" in info.value.message
    answers = sorted(node.http_get("127.0.0.1", 8080, "/version").status for node in fake.nodes.values())
    assert answers == [200, 503, 503]  # the refused node keeps serving the release
    assert layout.lock_dir not in fake.dirs
