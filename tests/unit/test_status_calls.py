"""`deployctl status` on one host, on a scripted connector: what it asks the engine. The
proxy's port comes from the proxy listing it makes anyway, not from a `docker port` call."""

from __future__ import annotations

from deployctl.adapters.connector import CommandResult
from deployctl.plan.lifecycle.names import Names, StateLayout
from deployctl.services.inspect import _host_status

NAMES, LAYOUT = Names("shop", "prod"), StateLayout("/var/lib/deployctl", "shop", "prod")
LIVE = "20261206-010000-0000001"


class Host:
    host = "web1"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.files = {LAYOUT.current: LIVE.encode()}

    def read_file(self, path: str) -> bytes | None:
        return self.files.get(path)

    def http_get(self, address: str, port: int, path: str, timeout: float = 2.0, headers=None):  # type: ignore[no-untyped-def]
        raise ConnectionRefusedError(111, "refused")

    def run(self, argv, *, stdin=None, timeout=None, on_line=None) -> CommandResult:  # type: ignore[no-untyped-def]
        self.calls.append(list(argv))
        fmt = argv[argv.index("--format") + 1] if "--format" in argv else ""
        if argv[:2] == ["docker", "ps"] and "{{.Ports}}" in fmt:  # the proxy listing
            return CommandResult(0, "shop-prod-proxy|running|proxy-anchor|nginx:1.27|0.0.0.0:35081->80/tcp\n"
                                    "shop-prod-proxy-nginx-1|running|proxy-nginx|nginx:1.27|\n", "")
        if argv[:2] == ["docker", "ps"]:
            return CommandResult(0, f"shop-prod-frontend-{LIVE}|service|{LIVE}|running\n", "")
        if argv[:3] == ["docker", "container", "inspect"]:
            return CommandResult(0, "".join(f"/{n}|running||10.0.0.2 |{LIVE}|t|sha256:1|0|0\n" for n in argv[5:]), "")
        return CommandResult(1, "", f"unexpected {argv}")


def test_status_reads_the_proxy_port_from_its_listing_without_docker_port():
    host = Host()
    status = _host_status(host, NAMES, LAYOUT, 80)
    assert status.proxy_port == 35081
    assert status.live == LIVE
    assert [c["name"] for c in status.containers] == [f"shop-prod-frontend-{LIVE}", "shop-prod-proxy",
                                                      "shop-prod-proxy-nginx-1"]
    assert not [c for c in host.calls if c[:2] == ["docker", "port"]], host.calls
    assert len(host.calls) == 3, host.calls
