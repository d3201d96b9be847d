"""HostSwitch.verify with a connector that answers from a script: when it gives up early
(the target's own app answering 5xx) and when it keeps asking (nginx's 502 while the reload
settles, another release's answer)."""

from __future__ import annotations

import pytest

from deployctl.adapters.connector import HttpResponse
from deployctl.errors import DeployError
from deployctl.plan.lifecycle.names import Names, StateLayout
from deployctl.plan.lifecycle.switch_plan import VerifyCheck
from deployctl.services.lifecycle.switch import HostSwitch


class Scripted:
    host = "web1"

    def __init__(self, *answers: tuple[int, str]) -> None:
        self.answers, self.asked = list(answers), 0

    def http_get(self, address: str, port: int, path: str, timeout: float = 2.0, headers=None) -> HttpResponse:
        status, release = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        return HttpResponse(status, b"{}", {"x-deployctl-release": release})

    def read_file(self, path: str) -> bytes | None:  # the proxy's configuration: none (no maintenance)
        return None


def verify(conn: Scripted, timeout: float = 2.0, spaced: bool = True) -> float:
    switch = HostSwitch(conn, Names("app", "prod"), StateLayout("/var/lib/deployctl", "app", "prod"), lambda e: None)
    return switch.verify(8080, VerifyCheck(release="r2", path="/version", timeout=timeout, spaced=spaced))


def test_the_targets_own_500s_end_the_verify_after_a_streak():
    conn = Scripted((500, "r2"))
    with pytest.raises(DeployError, match=r"did not answer from r2 3 errors in a row \(last: 500 from r2"):
        verify(conn, timeout=30)
    assert conn.asked == 3


def test_nginx_502_and_another_release_are_waited_out():
    conn = Scripted((502, "r2"), (502, "r2"), (502, "r2"), (200, "r1"), (200, "r1"), (200, "r1"), (500, "r2"),
                    (200, "r2"), (200, "r2"), (200, "r2"))
    verify(conn, timeout=30)
    assert conn.asked == 10


@pytest.mark.parametrize("spaced, pauses", [(True, [0.05] * 4), (False, [0.05] * 2)],
                         ids=["after a reload", "a standby's flag"])
def test_a_streak_is_spaced_after_a_reload_and_back_to_back_after_a_flag(monkeypatch, spaced, pauses):
    """After a reload every answer waits 50 ms (old workers may still accept); after a flag
    (nothing reloaded) only a wrong answer does, and the right ones follow at once."""
    import time

    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    conn = Scripted((200, "r1"), (502, "r2"), (200, "r2"), (200, "r2"), (200, "r2"))
    verify(conn, timeout=30, spaced=spaced)
    assert conn.asked == 5 and slept == pauses


def test_a_warm_rollbacks_flag_plan_verifies_back_to_back_and_says_so():
    from deployctl.plan.lifecycle.switch_plan import VerifyCheck as Check

    assert Check("r2", "/").describe().endswith("3 times in a row (up to 15s)")
    assert Check("r2", "/", spaced=False).describe().endswith("3 times in a row, back to back (up to 15s)")
