"""The shared proxy on an SSH host (docs/proxy.md, "Several apps on one host"): a deploy
over SSH starts the host's shared proxy (nginx on the host's network) and routes the app's
host name to its own proxy; a name no app has gets the shared proxy's 404; `deployctl
remove` takes the route out with the app. (The two-app rules are proven on this machine's
engine, tests/integration/test_shared_proxy.py; this is the SSH target's part.)"""

from __future__ import annotations

import http.client

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
