"""The error-rate guard over several proxies' logs (services/judging/watch.Guard): a Swarm's global
proxy has a task per node, and the load balancer spreads users over all of them, so a
release failing on one node's share must be judged on every node's lines together. Each
node is a connector answering `date` and `docker logs` from a script (no engine)."""

from __future__ import annotations

import time

from deployctl.adapters.connector import CommandResult
from deployctl.services.judging.watch import Guard

NEW = "20261201-175000-bbbbbbb"


def stamp(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1e9):09d}Z"


def line(at: float, status: int) -> tuple[float, str]:
    return at, (f'{stamp(at)} 172.17.0.1 [x] "GET /version HTTP/1.1" {status} 97 '
                f"rt=0.005 upstream=10.0.0.3:8000 ustatus={status} urt=0.004 release={NEW}")


class Node:
    """One node's proxy task as the guard reads it: its clock and its access log."""

    def __init__(self, host: str, lines: list[tuple[float, str]]) -> None:
        self.host, self.lines, self.asked = host, lines, []
        self.conn, self.emit = self, lambda event: None

    def running_nginx(self) -> str:
        return f"proxy-task-on-{self.host}"

    def run(self, argv, *, stdin=None, timeout=None, on_line=None) -> CommandResult:  # type: ignore[no-untyped-def]
        self.asked.append(list(argv))
        if argv[0] == "date":
            return CommandResult(0, f"{time.time():.6f}\n", "")
        assert argv[:2] == ["docker", "logs"] and argv[-1] == self.running_nginx(), argv
        since = float(argv[argv.index("--since") + 1])  # as docker does: the lines from then on
        return CommandResult(0, "".join(text + "\n" for at, text in self.lines if at >= since), "")


def test_one_verdict_over_every_nodes_log():
    now = time.time()
    # 10 requests on each node: node a all fine, node b 3 errors. Alone, neither node's
    # share reaches min_requests = 20; together: 20 requests, 15% errors > 5%.
    a = Node("a", [line(now + i * 0.01, 200) for i in range(10)])
    b = Node("b", [line(now + i * 0.01, 500 if i < 3 else 200) for i in range(10)])
    verdict = Guard([a, b], lambda event: None, window=5, max_error_rate=0.05, min_requests=20, tick=0.01,
                    host="manager").watch(NEW, since=now - 1)
    assert verdict.revert and verdict.whole.requests == 20 and verdict.whole.errors == 3, verdict
    assert any(argv[:2] == ["docker", "logs"] for argv in a.asked) and any(argv[:2] == ["docker", "logs"]
                                                                            for argv in b.asked)


def test_each_node_alone_would_not_have_judged():
    now = time.time()
    b = Node("b", [line(now + i * 0.01, 500 if i < 3 else 200) for i in range(10)])
    verdict = Guard([b], lambda event: None, window=0.05, max_error_rate=0.05, min_requests=20, tick=0.01,
                    host="manager").watch(NEW, since=now - 1)
    assert not verdict.revert and verdict.whole.requests == 10
