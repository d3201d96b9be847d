"""The Swarm's switch (services/swarm/swarm_deploy._switch) on a scripted site: a signal seen after
the route or after the verify switches back, as a host's switch does, and a switch back waits
until every node answers from the previous release before the caller removes anything."""

from __future__ import annotations

import pytest

from deployctl.errors import DeployError
from deployctl.services.lifecycle.rollout import Interrupted
from deployctl.services.swarm.swarm_deploy import SwarmSwitchBackFailed, _switch

PREVIOUS = b"# deployctl proxy configuration\n# live: 20261206-010000-aaaaaaa\n"


class Plan:
    proxy_config = "# deployctl proxy configuration\n# live: 20261206-020000-bbbbbbb\n"
    verify = type("Verify", (), {"path": "/version"})()
    target = type("Target", (), {"release": "20261206-020000-bbbbbbb"})()
    services = ()


class Site:
    def __init__(self, *, verify_fails: bool = False, back_fails: bool = False) -> None:
        self.routed: list[object] = []
        self.waited: list[str | None] = []
        self.verify_fails, self.back_fails = verify_fails, back_fails

    def ready_nodes(self) -> list[str]:
        return ["node1", "node2", "node3"]

    def live_config(self, nodes=None) -> bytes:  # type: ignore[no-untyped-def]
        return PREVIOUS

    def route(self, plan, config, nodes=None, live=None, resolve=None, running=None) -> int:  # type: ignore[no-untyped-def]
        if self.routed and self.back_fails:
            raise DeployError("node2: nginx -t refused the configuration")
        self.routed.append(config)
        return 3

    def verify(self, plan, port: int, nodes=None) -> float:  # type: ignore[no-untyped-def]
        if self.verify_fails:
            raise DeployError("node1: /version answered 500")
        return 0.1

    def wait_answers(self, release, port, path, nodes=None) -> None:  # type: ignore[no-untyped-def]
        self.waited.append(release)


def stop_after(calls: int):  # type: ignore[no-untyped-def]
    seen = [0]

    def checkpoint() -> None:
        seen[0] += 1
        if seen[0] >= calls:
            raise Interrupted("interrupted by SIGTERM")
    return checkpoint


@pytest.mark.parametrize("when", [1, 2], ids=["after the route", "after the verify"])
def test_a_signal_during_the_switch_switches_back_and_waits_for_the_previous_release(when):
    site = Site()
    with pytest.raises(DeployError, match="interrupted by SIGTERM"):
        _switch(site, Plan(), 8080, lambda event: None, "manager", stop_after(when))
    assert site.routed == [Plan.proxy_config, PREVIOUS]  # routed, then the previous configuration back
    assert site.waited == ["20261206-010000-aaaaaaa"]


def test_a_failed_verify_switches_back_and_a_failed_switch_back_is_uncertain():
    site = Site(verify_fails=True)
    with pytest.raises(DeployError, match="answered 500"):
        _switch(site, Plan(), 8080, lambda event: None, "manager")
    assert site.routed == [Plan.proxy_config, PREVIOUS] and site.waited == ["20261206-010000-aaaaaaa"]
    with pytest.raises(SwarmSwitchBackFailed) as caught:
        _switch(Site(verify_fails=True, back_fails=True), Plan(), 8080, lambda event: None, "manager")
    assert caught.value.exit_code == 7


def test_without_a_signal_the_switch_routes_once_and_waits_for_nothing():
    site = Site()
    _switch(site, Plan(), 8080, lambda event: None, "manager", lambda: None)
    assert site.routed == [Plan.proxy_config] and site.waited == []


def test_after_a_shadow_window_the_switch_back_restores_the_live_only_configuration_given():
    # The nodes served the mirror (live_config) when the switch began; what goes back is the
    # configuration from before the window (services/swarm/swarm_judges.SwarmJudges.live_only).
    live_only = b"# deployctl proxy configuration\n# live: 20261206-010000-aaaaaaa\n# only\n"
    site = Site(verify_fails=True)
    with pytest.raises(DeployError, match="answered 500"):
        _switch(site, Plan(), 8080, lambda event: None, "manager", previous=live_only)
    assert site.routed == [Plan.proxy_config, live_only] and site.waited == ["20261206-010000-aaaaaaa"]
