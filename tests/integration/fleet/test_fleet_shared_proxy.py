"""The shared proxy on SSH hosts (docs/proxy.md, "Several apps on one host" and "Moving an app
to the shared proxy"), in one test walking its phases: an app deployed with its own proxy on
port P of two hosts moves to the hosts' shared proxy on P with its next deploy, host by host
behind a load balancer that retries a refused connection on another host, under 4 workers of
traffic with 0 failed requests; a second app then joins the same shared proxies (its route
reloads them), a name no app has gets the shared proxy's 404, and `deployctl remove` takes
the second app's route out, with the first app's traffic still at 0 failed; last, a rollback of
the first app goes through the shared proxies under the same traffic, 0 failed. (The two-app rules
are proven on this machine's engine, tests/integration/test_shared_proxy.py; the move's
failure rules on fake hosts, tests/unit/test_shared_move.py.)"""

from __future__ import annotations

import http.client
import time

import pytest

from tests.integration.fleet.site import ENV, json_lines, new_site
from tests.support.traffic import Traffic

pytestmark = pytest.mark.integration
HOSTS = 2  # enough for host by host behind a balancer


def ask(address: str, port: int, host: str) -> tuple[int, str]:
    """Straight to the host, with the Host the shared proxy routes by."""
    conn = http.client.HTTPConnection(address, port, timeout=10)
    try:
        conn.request("GET", "/version", headers={"Host": host, "Connection": "close"})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("X-Deployctl-Release") or ""
    finally:
        conn.close()


def released(done) -> str:  # type: ignore[no-untyped-def]
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return json_lines(done.stdout)[-1]["release"]


def shared(site, name: str, port: int, own_port: int | None = None) -> None:  # type: ignore[no-untyped-def]
    """The site's deploy.toml with its host name and the shared proxy `name` on `port`, its own
    proxy moved to `own_port` (None: kept)."""
    text = site.config.read_text().replace("[proxy]\n", f'[proxy]\nhosts = ["{site.app}.test"]\n', 1)
    own = f"proxy_port = {site.proxy_port if own_port is None else own_port}\n"
    site.config.write_text(text.replace(f"proxy_port = {site.proxy_port}\n", f'{own}shared_proxy = "{name}"\n'
                                        f"shared_proxy_port = {port}\n", 1))


def test_an_app_moves_to_the_shared_proxy_host_by_host_without_a_failed_request_and_another_joins_and_leaves(
        fleet, fleet_images, tmp_path):
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
    site = new_site(fleet, fleet_images, tmp_path / "one", fleet.proxy_port(), count=HOSTS)
    port, name = site.proxy_port, f"s{site.app}"
    other = new_site(fleet, fleet_images, tmp_path / "two", fleet.proxy_port(), count=HOSTS)
    balancer = fleet.load_balancer(port, count=HOSTS, retry_refused=True)
    try:
        v1 = released(site.deploy("1111111aaaa", "--json"))  # one app per host: its own proxy on P
        shared(site, name, port, own_port=fleet.proxy_port())
        with Traffic(f"{balancer.url}/version", workers=4, max_requests=20_000, max_seconds=240,
                     host_header=f"{site.app}.test") as traffic:
            time.sleep(1)
            moved = site.deploy("2222222bbbb", "--json")
            time.sleep(0.5)
        v2 = released(moved)
        report = traffic.report
        assert report.total > 100 and report.failures == [], report.summary()
        assert set(report.releases()) == {v1, v2}, report.summary()
        events = json_lines(moved.stdout)
        assert any("one host at a time" in e.get("text", "") for e in events), moved.stdout[-3000:]
        done = {e["host"]: e for e in events if e["event"] == "step_done" and e.get("step") == "move"}
        assert sorted(done) == sorted(site.hosts), moved.stdout[-3000:]
        print("move:", {host: e["detail"] for host, e in done.items()}, report.summary())
        # One at a time: a host starts its new release only after the one before has moved.
        started = {e["host"]: e["at"] for e in events if e["event"] == "step_started" and e.get("step") == "start"}
        assert all(done[a]["at"] <= started[b] for a, b in zip(site.hosts, site.hosts[1:])), (done, started)
        for address in site.hosts:
            assert ask(address, port, f"{site.app}.test") == (200, v2)
            assert site.history(address).records[-1].extra["shared_proxy"]["moved"] is True
            assert not site.host(address).exec("sh", "-c", "docker ps -aq --filter name=-premove", check=False)

        # A second app joins the same shared proxies and leaves again, the first one asked meanwhile.
        shared(other, name, port)
        with Traffic(f"{balancer.url}/version", workers=4, max_requests=20_000, max_seconds=240,
                     host_header=f"{site.app}.test") as traffic:
            w1 = released(other.deploy("3333333cccc", "--json"))
            for address in other.hosts:
                assert ask(address, port, f"{other.app}.test") == (200, w1)
                assert ask(address, port, "nobody.test")[0] == 404
            gone = other.cli("remove", "--env", ENV, "--yes")
            time.sleep(0.5)
        assert gone.returncode == 0, gone.stdout[-3000:] + gone.stderr[-2000:]
        assert traffic.report.total > 10 and traffic.report.failures == [], traffic.report.summary()
        for address in site.hosts:
            assert ask(address, port, f"{other.app}.test")[0] == 404
            assert ask(address, port, f"{site.app}.test") == (200, v2)

        # A rollback after the move goes through the shared proxies (the app's own proxies
        # switch; the shared ones are not touched), under traffic through the balancer.
        phase = time.monotonic()
        with Traffic(f"{balancer.url}/version", workers=4, max_requests=20_000, max_seconds=240,
                     host_header=f"{site.app}.test") as traffic:
            time.sleep(0.5)
            back = site.cli("rollback", "--env", ENV, "--json")
            time.sleep(0.5)
        print(f"rollback phase: {time.monotonic() - phase:.1f}s", traffic.report.summary())
        assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-2000:]
        assert traffic.report.failures == [] and set(traffic.report.releases()) == {v2, v1}, traffic.report.summary()
        for address in site.hosts:
            assert ask(address, port, f"{site.app}.test") == (200, v1)
    finally:
        balancer.close()
        for app in (site.app, other.app):
            fleet.remove_app(app)
        for host in fleet.hosts:
            host.exec("sh", "-c", f"docker rm -f deployctl-shared-proxy-{name}; "
                      f"rm -rf /var/lib/deployctl/shared-proxy/{name}", check=False)
