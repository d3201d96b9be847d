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


def verify(conn: Scripted, timeout: float = 2.0) -> float:
    switch = HostSwitch(conn, Names("app", "prod"), StateLayout("/var/lib/deployctl", "app", "prod"), lambda e: None)
    return switch.verify(8080, VerifyCheck(release="r2", path="/version", timeout=timeout))


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
