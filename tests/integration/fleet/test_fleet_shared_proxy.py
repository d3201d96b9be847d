"""The shared proxy on an SSH host (docs/proxy.md, "Several apps on one host"): a deploy
over SSH starts the host's shared proxy (nginx on the host's network) and routes the app's
host name to its own proxy; a name no app has gets the shared proxy's 404; `deployctl
remove` takes the route out with the app. (The two-app rules are proven on this machine's
engine, tests/integration/test_shared_proxy.py; this is the SSH target's part.)"""

from __future__ import annotations

import http.client
import time

import pytest

from tests.integration.fleet.conftest import _ports
from tests.integration.fleet.site import ENV, json_lines, new_site

pytestmark = pytest.mark.integration


def ask(address: str, port: int, host: str) -> tuple[int, str]:
    """Straight to the host (the test load balancer sends its own Host header)."""
    conn = http.client.HTTPConnection(address, port, timeout=10)
    try:
        conn.request("GET", "/version", headers={"Host": host, "Connection": "close"})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("X-Deployctl-Release") or ""
    finally:
        conn.close()


def test_the_shared_proxy_routes_on_an_ssh_host_and_remove_takes_the_route_out(fleet, fleet_images, tmp_path):
    site = new_site(fleet, fleet_images, tmp_path, next(_ports), count=1)
    [address], shared = site.hosts, next(_ports)
    text = site.config.read_text().replace("[proxy]\n", f'[proxy]\nhosts = ["{site.app}.test"]\n', 1)
    site.config.write_text(text.replace(f"[environments.{ENV}]\n", f'[environments.{ENV}]\nshared_proxy = '
                                        f'"s{site.app}"\nshared_proxy_port = {shared}\n', 1))
    try:
        done = site.deploy("1111111aaaa", "--json")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        release = json_lines(done.stdout)[-1]["release"]
        assert ask(address, shared, f"{site.app}.test") == (200, release)
        assert ask(address, shared, "nobody.test")[0] == 404
        gone = site.cli("remove", "--env", ENV, "--yes")
        assert gone.returncode == 0, gone.stdout + gone.stderr
        assert ask(address, shared, f"{site.app}.test")[0] == 404
    finally:
        fleet.remove_app(site.app)
        site.host(address).exec("sh", "-c", f"docker rm -f deployctl-shared-proxy-s{site.app}; "
                                 f"rm -rf /var/lib/deployctl/shared-proxy/s{site.app}", check=False)


def on_the_shared_proxy(site, name: str, port: int, own_port: int) -> None:  # type: ignore[no-untyped-def]
    """The site's deploy.toml with its host name, its own proxy on `own_port` and the shared
    proxy `name` on `port` (the port its own proxy published so far)."""
    text = site.config.read_text().replace("[proxy]\n", f'[proxy]\nhosts = ["{site.app}.test"]\n', 1)
    text = text.replace(f"proxy_port = {site.proxy_port}\n", f"proxy_port = {own_port}\nshared_proxy = \"{name}\"\n"
                        f"shared_proxy_port = {port}\n", 1)
    site.config.write_text(text)


def test_a_fleet_moves_to_the_shared_proxy_host_by_host_under_traffic_and_a_second_app_joins(fleet, fleet_images,
                                                                                             tmp_path):
    """An app deployed with its own proxy on port P on 3 hosts, then deployed with
    shared_proxy on P behind a load balancer that retries a refused connection on another
    host: one host at a time, 0 failed requests; then a second app joins the same shared
    proxies, and a rollback of the first goes through them."""
    from tests.support.traffic import Traffic

    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
    site = new_site(fleet, fleet_images, tmp_path / "one", next(_ports))
    port, name = site.proxy_port, f"s{site.app}"
    other = new_site(fleet, fleet_images, tmp_path / "two", next(_ports))
    balancer = fleet.load_balancer(port, retry_refused=True)
    try:
        first = site.deploy("1111111aaaa", "--json")
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
        v1 = json_lines(first.stdout)[-1]["release"]
        on_the_shared_proxy(site, name, port, next(_ports))
        with Traffic(f"{balancer.url}/version", workers=4, max_requests=20_000, max_seconds=240,
                     host_header=f"{site.app}.test") as traffic:
            time.sleep(1)
            moved = site.deploy("2222222bbbb", "--json")
            time.sleep(0.5)
        report = traffic.report
        assert moved.returncode == 0, moved.stdout[-4000:] + moved.stderr[-2000:]
        v2 = json_lines(moved.stdout)[-1]["release"]
        assert report.total > 100 and report.failures == [], report.summary()
        events = json_lines(moved.stdout)
        assert any("one host at a time" in e.get("text", "") for e in events), moved.stdout[-3000:]
        gaps = {e["host"]: e["detail"] for e in events if e["event"] == "step_done" and e.get("step") == "move"}
        assert sorted(gaps) == sorted(site.hosts), gaps
        print("move gaps:", gaps, report.summary())
        # One at a time: a host starts its new release only after the one before has moved.
        moved_at = {e["host"]: e["at"] for e in events if e["event"] == "step_done" and e.get("step") == "move"}
        started = {e["host"]: e["at"] for e in events if e["event"] == "step_started" and e.get("step") == "start"}
        assert all(moved_at[a] <= started[b] for a, b in zip(site.hosts, site.hosts[1:])), (moved_at, started)
        for address in site.hosts:
            assert ask(address, port, f"{site.app}.test") == (200, v2)
            assert site.history(address).records[-1].extra["shared_proxy"]["moved"] is True
            assert not site.host(address).exec("sh", "-c", "docker ps -aq --filter name=-premove", check=False)

        # A second app joins the same shared proxies (its route reloads them) while the first is asked.
        other.config.write_text(other.config.read_text().replace("[proxy]\n", f'[proxy]\nhosts = ["{other.app}.test"]\n',
                                                                 1).replace(
            f"[environments.{ENV}]\n", f'[environments.{ENV}]\nshared_proxy = "{name}"\nshared_proxy_port = {port}\n', 1))
        with Traffic(f"{balancer.url}/version", workers=4, max_requests=20_000, max_seconds=240,
                     host_header=f"{site.app}.test") as traffic:
            joined = other.deploy("3333333cccc", "--json")
            back = site.cli("rollback", "--env", ENV)
            back_done = time.time()
            time.sleep(0.5)
        assert joined.returncode == 0, joined.stdout[-3000:] + joined.stderr[-2000:]
        assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-2000:]
        assert traffic.report.failures == [], traffic.report.summary()
        assert traffic.report.wrong_release_after(back_done, v1) == [], traffic.report.summary()
        w1 = json_lines(joined.stdout)[-1]["release"]
        for address in site.hosts:
            assert ask(address, port, f"{other.app}.test") == (200, w1)
            assert ask(address, port, f"{site.app}.test") == (200, v1)  # the rollback, through the shared proxy
    finally:
        balancer.close()
        for app in (site.app, other.app):
            fleet.remove_app(app)
        for host in fleet.hosts:
            host.exec("sh", "-c", f"docker rm -f deployctl-shared-proxy-{name}; "
                      f"rm -rf /var/lib/deployctl/shared-proxy/{name}", check=False)
