"""The Swarm's warm window (services/swarm/swarm_deploy._retire, _stop_expired_warm) on a scripted
site: after a switch the release it replaced keeps its tasks for rollout.warm_window (recorded
in the manager's warm.json), every other release goes to 0 tasks; a warm release past its
window goes to 0 at the next command's lock, never the live one or a rollback's target."""

from __future__ import annotations

import re
import time

from deployctl.plan.swarm import services as sw
from deployctl.plan.lifecycle.names import Names, StateLayout
from deployctl.plan.lifecycle.warm import WarmRelease, parse_warm, render_warm
from deployctl.services.swarm.swarm_deploy import _retire, _stop_expired_warm

R1, R2, R3 = "20261206-010000-aaaaaaa", "20261206-020000-bbbbbbb", "20261206-030000-ccccccc"
RELEASE = re.compile(r"\d{8}-\d{6}-[0-9a-f]{7}")
LAYOUT = StateLayout("/srv/state", "shop", "prod")


class Manager:
    host = "manager"

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def read_file(self, path: str) -> bytes | None:
        return self.files.get(path)

    def put_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        self.files[path] = data


class Site:
    def __init__(self, counts: dict[str, int]) -> None:
        self.manager, self.layout, self.names = Manager(), LAYOUT, Names("shop", "prod")
        self.counts = counts  # release -> tasks of each of its two services
        self.ran: list[list[str]] = []

    def services(self) -> dict[str, tuple[str, str, int]]:
        return {f"shop-prod-{svc}-{release}": (release, svc, count)
                for release, count in self.counts.items() for svc in ("backend", "frontend")}

    def run(self, argv) -> None:  # type: ignore[no-untyped-def]
        self.ran.append(list(argv))


class Plan:
    @staticmethod
    def retire(others: list[str]) -> tuple[str, ...]:
        return tuple(sw.scale({name: 0 for name in others}))


def scaled_to_zero(site: Site) -> set[str]:
    """The releases whose services a `docker service scale NAME=0` named."""
    return {RELEASE.search(word).group(0) for argv in site.ran for word in argv  # type: ignore[union-attr]
            if word.endswith("=0")}


def test_the_replaced_release_keeps_its_tasks_inside_the_window_and_the_others_go_to_zero():
    site = Site({R1: 2, R2: 2, R3: 2})  # R3 just went live, replacing R2; R1 still ran
    _retire(site, Plan(), R3, 0.0, lambda event: None, "manager", previous=R2, warm_window=600)
    assert scaled_to_zero(site) == {R1}
    [warm] = parse_warm(site.manager.files[LAYOUT.warm])
    assert warm.release == R2 and warm.until - warm.since == 600


def test_without_a_window_every_other_release_goes_to_zero():
    site = Site({R2: 2, R3: 2})
    _retire(site, Plan(), R3, 0.0, lambda event: None, "manager", previous=R2, warm_window=0)
    assert scaled_to_zero(site) == {R2} and parse_warm(site.manager.files[LAYOUT.warm]) == []


def test_a_warm_release_past_its_window_goes_to_zero_at_the_next_lock_but_never_a_kept_one():
    now = time.time()
    site = Site({R1: 2, R2: 2, R3: 2})
    site.manager.files[LAYOUT.warm] = render_warm([WarmRelease(R1, now - 700, now - 100),
                                                   WarmRelease(R2, now - 10, now + 590)])
    _stop_expired_warm(site, {R3}, lambda event: None, "manager")
    assert scaled_to_zero(site) == {R1}
    assert [w.release for w in parse_warm(site.manager.files[LAYOUT.warm])] == [R2]
    # a rollback to the expired release keeps it (its target)
    site = Site({R1: 2, R3: 2})
    site.manager.files[LAYOUT.warm] = render_warm([WarmRelease(R1, now - 700, now - 100)])
    _stop_expired_warm(site, {R3, R1}, lambda event: None, "manager")
    assert site.ran == []
