"""A Swarm rollback inside the warm window switches by the live configuration's standby flag
(plan/swarm/swarm_proxy.py, services/swarm/swarm_deploy._switch_by_flag), on the scripted
fake Swarm (its nodes answer from the standby while the flag file exists, as nginx's
per-request stat does): no reload before the verify, the target's own configuration written
after it, and a failed verify lowers the flag on every node with the outcome and exit code of
any failed switch. A cold rollback, or a configuration with no standby, takes the staged route."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deployctl.config import LoadedConfig, parse_config
from deployctl.errors import ExitCode
from deployctl.events import StepDone, StepStarted
from deployctl.plan.edge.proxy_config import STANDBY_FLAG_PREFIX, live_release, standby_of
from deployctl.plan.lifecycle.releases import LIVE, REVERTED
from deployctl.adapters.connector import CommandResult
from tests.support.fake_host import Fault
from deployctl.plan.swarm import services as sw
from tests.support.fake_swarm import FakeSwarm
from tests.unit import test_swarm_lifecycle_rules as rules

WARM = LoadedConfig(Path("/project/deploy.toml"), parse_config(rules.CONFIG.replace("warm_window = 0",
                                                                                    "warm_window = 600")))
LAYOUT, NAMES = rules.LAYOUT, rules.NAMES
virtual_time = rules.virtual_time


@pytest.fixture
def warm():
    fake = FakeSwarm(NAMES)
    site = rules.Site(fake, WARM)
    site.r1 = site.deploy()
    site.r2 = site.deploy()
    yield site, fake
    assert not fake.unknown and not any(n.unknown for n in fake.nodes.values()), fake.unknown


def configs(fake: FakeSwarm) -> set[bytes | None]:
    return {n.files.get(f"{LAYOUT.proxy_dir}/nginx.conf", (None,))[0] for n in fake.nodes.values()}


def flags(fake: FakeSwarm) -> dict[str, set[str]]:
    return {n.hostname: {p.rsplit("/", 1)[1] for p in n.files if p.rsplit("/", 1)[1].startswith(STANDBY_FLAG_PREFIX)}
            for n in fake.nodes.values()}


RELOAD = r"docker kill --signal HUP|nginx -s reload"  # what makes a node's nginx load its file


def swaps_during_route(site: rules.Site, fake: FakeSwarm, action) -> int:  # type: ignore[no-untyped-def]
    """How many node reloads (a swap's, or a starting task's) ran between the route's start
    and the verify's end (the `nginx -t` of a staged file alone reloads nothing)."""
    counted = {"on": False, "swaps": 0}
    events = site.emit.events

    def count(event) -> None:  # type: ignore[no-untyped-def]
        if isinstance(event, StepStarted) and event.step == "route":
            counted["on"] = True
        if isinstance(event, StepDone) and event.step == "verify":
            counted["on"] = False
        events.append(event)

    def counting(node):  # type: ignore[no-untyped-def]
        run = node.run

        def counted_run(argv, *args, **kwargs):  # type: ignore[no-untyped-def]
            if re.search(RELOAD, " ".join(argv)):
                counted["swaps"] += counted["on"]
            return run(argv, *args, **kwargs)
        return counted_run

    for node in fake.nodes.values():
        node.run = counting(node)  # type: ignore[method-assign]
    site.emit = count  # type: ignore[assignment]
    try:
        action()
    finally:
        for node in fake.nodes.values():
            del node.run
        site.emit = rules.Recorder()
        site.emit.events = events
    return counted["swaps"]


def test_a_deploy_names_the_release_it_leaves_warm_as_the_standby_of_every_node(warm):
    site, fake = warm
    (config,) = configs(fake)
    standby = standby_of(config)
    assert live_release(config) == site.r2 and standby is not None and standby.release == site.r1
    assert standby.address.startswith(f"tasks.{NAMES.container('frontend', site.r1)}:")
    assert fake.running(NAMES.container("frontend", site.r1)) == 3  # warm: its tasks run


def test_a_warm_rollback_switches_by_the_flag_with_no_reload_then_writes_its_own_configuration(warm):
    site, fake = warm
    before = len(fake.calls)
    swaps = swaps_during_route(site, fake, site.rollback)
    assert swaps == 0  # the switch and the verify: the flag only, no nginx reload on any node
    # the services listed once (to choose and check the target), not again to retire
    listing = " ".join(sw.inspect_listed_services(NAMES))  # one manager call: the listing and its inspect
    assert len([text for call, text in fake.calls[before:] if text == listing]) == 1
    assert not [text for call, text in fake.calls[before:] if text.startswith("docker service ls")]
    assert fake.serving_nodes() == {site.r1} and site.on_disk() == {site.r1} and site.current() == site.r1
    last = site.records()[-1]
    assert (last.release, last.action, last.outcome) == (site.r1, "rollback", LIVE)
    (config,) = configs(fake)
    standby = standby_of(config)  # the release it left stays warm and is the standby in turn
    assert standby is not None and standby.release == site.r2
    assert all(len(f) == 1 for f in flags(fake).values())  # the flag that switched stays, no other
    assert not site.locked()
    # and back again (a roll forward inside the window): by the flag too
    swaps = swaps_during_route(site, fake, lambda: site.rollback(to=site.r2))
    assert swaps == 0 and fake.serving_nodes() == {site.r2} and site.current() == site.r2


def test_a_failed_verify_after_the_flag_lowers_it_on_every_node_and_the_live_release_serves(warm):
    site, fake = warm
    rules._verify_wrong(site, fake)
    error = site.failing_rollback()
    assert error.exit_code == ExitCode.DEPLOY_FAILED
    fake.faults.clear()
    assert fake.serving_nodes() == {site.r2} and site.on_disk() == {site.r2} and site.current() == site.r2
    assert flags(fake) == {n: set() for n in flags(fake)}
    last = site.records()[-1]
    assert (last.release, last.action, last.outcome) == (site.r1, "rollback", REVERTED)
    assert fake.running(NAMES.container("frontend", site.r1)) == 3  # a warm target keeps its tasks
    assert not site.locked()


def test_a_cold_rollback_takes_the_staged_route():
    fake = FakeSwarm(NAMES)
    site = rules.Site(fake)  # warm_window = 0: no standby, the replaced release scaled to 0
    site.r1 = site.deploy()
    site.deploy()
    assert standby_of(next(iter(configs(fake)))) is None
    swaps = swaps_during_route(site, fake, site.rollback)
    assert swaps == 3 and fake.serving_nodes() == {site.r1} and site.current() == site.r1


def test_the_targets_own_configuration_is_staged_beside_the_verify_and_swapped_only_once_it_passed(warm):
    """Staged while the verify runs (a staged file changes nothing nginx serves), so that
    after the verified switch each node has one command left (rename, reload); a failed
    verify swaps nothing in, removes the staged file on every node (as a host's), and leaves
    the live file as it was."""
    site, fake = warm
    rules._verify_wrong(site, fake)
    swaps = swaps_during_route(site, fake, site.failing_rollback)
    fake.faults.clear()
    assert swaps == 0
    staged_file = f"{LAYOUT.proxy_dir}/nginx.conf.next"
    written = [n for n in fake.nodes.values() if any(call == "put_file" and staged_file in text for call, text in n.calls)]
    assert len(written) == len(fake.nodes)  # the target's own configuration, staged on every node
    tested = [text for n in fake.nodes.values() for call, text in n.calls if call == "run"
              and re.fullmatch(r"docker exec \S+ nginx -t -q -c \S+/nginx\.conf\.next", text)]
    assert len(tested) == len(fake.nodes)  # and tested there (nginx -t) beside the verify
    assert all(n.text(staged_file) is None for n in fake.nodes.values())  # then removed: never made live
    assert site.on_disk() == {site.r2} and fake.serving_nodes() == {site.r2}
    # the next warm rollback stages its own again and swaps it in
    site.rollback()
    assert site.on_disk() == {site.r1} and fake.serving_nodes() == {site.r1}
    assert all(n.text(f"{LAYOUT.proxy_dir}/nginx.conf.next") is None for n in fake.nodes.values())


def _sleeps(monkeypatch) -> list[float]:  # type: ignore[no-untyped-def]
    import time

    slept: list[float] = []
    virtual = time.sleep
    monkeypatch.setattr(time, "sleep", lambda seconds: (slept.append(seconds), virtual(seconds))[1])
    return slept


@pytest.mark.parametrize("warm_window", [0, 600])
def test_the_drain_before_a_release_stops_is_what_is_left_of_it_since_it_left_the_proxies(monkeypatch, warm_window):
    """As on hosts (plan/lifecycle/warm.drain_left): the release the switch replaced waits the
    whole drain before it goes to 0; one that went warm (out of the proxies) a deploy ago,
    stopped by the next deploy, does not wait again."""
    import time

    loaded = LoadedConfig(Path("/project/deploy.toml"), parse_config(
        rules.CONFIG.replace("warm_window = 0", f"warm_window = {warm_window}").replace("drain = 0", "drain = 7")))
    fake = FakeSwarm(NAMES)
    site = rules.Site(fake, loaded)
    later = [0.0]
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + later[0])
    r1 = site.deploy()
    site.deploy()
    later[0] += 30  # the next deploy, half a minute later
    slept = _sleeps(monkeypatch)
    site.deploy()
    assert fake.running(NAMES.container("frontend", r1)) == 0  # stopped by the third deploy either way
    drains = [s for s in slept if s >= 6]
    if warm_window:  # r1 left the proxies at the second deploy's switch, 30 s ago
        assert drains == []
    else:  # r2, replaced by this switch, waited the drain (r1 was stopped by the second deploy)
        assert drains == [7.0]


def test_a_warm_rollback_whose_own_config_one_node_refuses_keeps_every_flag_serving_and_removes_it_everywhere(warm):
    """As a host's (test_lifecycle_rules): the target is verified through its flag on every
    node; its own file, refused by `nginx -t` on one node beside the verify, is renamed in on
    no node, removed from every node, and said in a warning (exit 0)."""
    site, fake = warm
    fake.faults.append(Fault("run", r"^docker exec \S+ nginx -t -q -c \S+/nginx\.conf\.next$", nth=2,
                             effect=lambda argv: CommandResult(1, "", "nginx: [emerg] refused")))
    before = {n.hostname: len(n.calls) for n in fake.nodes.values()}
    site.rollback()
    staged_file = f"{LAYOUT.proxy_dir}/nginx.conf.next"
    assert site.current() == site.r1
    # renamed in nowhere: every node's live file names the target as its standby, whose flag is up
    assert {live_release(c) for c in configs(fake)} == {site.r2}
    assert {standby_of(c).release for c in configs(fake)} == {site.r1}  # type: ignore[union-attr]
    assert all(len(f) == 1 for f in flags(fake).values())
    assert all(n.text(staged_file) is None for n in fake.nodes.values())
    assert not any(re.search(r"mv -f \S+/nginx\.conf\.next ", text)
                   for n in fake.nodes.values() for _, text in n.calls[before[n.hostname]:])
    [warning] = [w for w in site.warnings() if "serves through the standby flag" in w]
    assert site.r1 in warning and "nginx: [emerg] refused" in warning
    assert not site.locked()
