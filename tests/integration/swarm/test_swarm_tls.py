"""HTTPS on the three-node Swarm (docs/tls.md, "A Swarm"), against a real ACME CA (pebble)
whose validator reaches ONE node (the last for the first order, the manager for the
renewal): both pass only because every node's proxy held the answer. Then every node serves
the same certificate, checked against pebble's root, HTTP answers 301 to HTTPS, the keys
are 0600, and a second deploy and a forced renewal under HTTPS traffic through a TCP load
balancer in front of every node lose no request; maintenance mode on and off on every node."""

from __future__ import annotations

import json

import pytest

from tests.integration.swarm.site import ENV, json_lines
from tests.support.net import wait_until
from tests.support.pebble import http_get, https_get, pebble
from tests.support.traffic import Traffic

pytestmark = pytest.mark.integration


def _get(address: str, port: int, name: str, trust):  # type: ignore[no-untyped-def]
    """(release, certificate serial) one node's proxy answers /version with over HTTPS."""
    from cryptography import x509

    status, headers, _, der, _ = https_get(port, name, "/version", trust, address=address)
    assert status == 200, (address, status, headers)
    return headers.get("X-Deployctl-Release"), format(x509.load_der_x509_certificate(der).serial_number, "x")


def test_one_certificate_on_every_node_validated_through_one_then_a_deploy_and_a_renewal_under_https_traffic(
        swarm, swarm_http_site, tmp_path):
    # deployctl's own http/tcp checks, not the image's HEALTHCHECK: under load (40-57 here)
    # Swarm stops a task whose docker check times out and the deploy fails before its switch
    # (docs/swarm.md, "Health checks on a Swarm"), which is not what this test is about.
    site, nodes = swarm_http_site, swarm.nodes
    https, name = site.proxy_port + 1000, f"{site.app}.swarm.test"
    site.write_config(checks="http", migrate=False)  # 3 frontend, 2 backend tasks: a backend task replaced under load leaves the other
    with pebble(tmp_path, site.proxy_port, address=nodes[-1].address) as ca:
        site.config.write_text(site.config.read_text().replace("[proxy]\n", f"""[proxy]
hosts = ["{name}"]
tls = "acme"
acme_email = "ops@example.com"
acme_directory = "{ca.directory}"
acme_ca_bundle = "{ca.ca_bundle}"
""").replace(f"[environments.{ENV}]\n", f"[environments.{ENV}]\nproxy_tls_port = {https}\n", 1))
        done = site.deploy("1111111aaaa", "--json")
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
        assert "PRIVATE KEY" not in done.stdout + done.stderr
        v1 = json_lines(done.stdout)[-1]["release"]
        trust = ca.client_context(tmp_path)  # pebble's root only, names checked
        answers = {_get(node.address, https, name, trust) for node in nodes}
        assert len(answers) == 1 and next(iter(answers))[0] == v1, answers  # one certificate, every node
        first = next(iter(answers))[1]

        redirect = (301, f"https://{name}:{https}/version?x=1")
        for node in nodes:
            def plain(address: str = node.address) -> tuple[int, str | None]:
                status, headers = http_get(site.proxy_port, name, "/version?x=1", address=address)
                return status, headers.get("Location")

            wait_until(lambda: plain() == redirect, 10, f"{node.address}: HTTP answering 301 to HTTPS")
            modes = node.exec("sh", "-c", f"ls /var/lib/deployctl/{site.app}/{ENV}/proxy/acme/.well-known/"
                                          f"acme-challenge/ 2>/dev/null; stat -c %a /var/lib/deployctl/{site.app}/"
                                          f"{ENV}/proxy/tls/live/privkey.pem /var/lib/deployctl/{site.app}/{ENV}/acme/"
                                          "account.pem", check=False)
            assert modes.split() == ["600", "600"], (node.address, modes)  # no answer left, keys 0600

        status = site.cli("--json", "certs", "status", "--env", ENV)
        assert status.returncode == 0, status.stdout + status.stderr
        rows = json.loads(status.stdout.strip().splitlines()[-1])["hosts"]
        assert sorted(r["host"] for r in rows) == sorted(n.address for n in nodes)
        assert {tuple(r["certificate"]["names"]) for r in rows} == {(name,)}
        assert all("Pebble" in r["certificate"]["issuer"] for r in rows) and "PRIVATE KEY" not in status.stdout

        # v2 and a forced renewal (validated through the manager this time) under HTTPS traffic.
        balancer = swarm.tls_load_balancer(https)
        try:
            wait_until(lambda: _reachable(balancer.port, name, trust), 20, "HTTPS through the load balancer")
            ca.resolve_to(swarm.manager.address)
            with Traffic(f"https://127.0.0.1:{balancer.port}/version", workers=4, max_seconds=150, ssl_context=trust,
                         server_name=name) as traffic:
                assert traffic.wait_for(20, timeout=20)
                done = site.deploy("2222222bbbb", "--json")
                assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
                v2 = json_lines(done.stdout)[-1]["release"]
                renewed = site.cli("certs", "renew", "--env", ENV, "--force")
                assert renewed.returncode == 0, renewed.stdout + renewed.stderr
                assert traffic.wait_for(20, timeout=20)
        finally:
            balancer.close()
        report = traffic.report
        print(f"swarm tls: deploy v2 and a renewal under HTTPS traffic: {report.summary()}")
        assert report.total > 50 and report.failures == [], report.summary() + repr(report.failures[:3])
        answers = {_get(node.address, https, name, trust) for node in nodes}
        assert len(answers) == 1, answers
        release, second = next(iter(answers))
        assert release == v2 and second != first

        # Maintenance mode on every node's proxy (the same staged swap, the manager's lock),
        # over HTTPS too; `status` says so; off: the release answers again.
        on = site.cli("maintenance", "on", "--env", ENV, "--retry-after", "90")
        assert on.returncode == 0, on.stdout + on.stderr
        for node in nodes:
            status, headers, _, _, _ = https_get(https, name, "/version", trust, address=node.address)
            assert status == 503 and headers.get("Retry-After") == "90", (node.address, status, headers)
        shown = json.loads(site.cli("--json", "status", "--env", ENV).stdout.strip().splitlines()[-1])
        assert shown["swarm"]["maintenance"].startswith("on since"), shown["swarm"]
        off = site.cli("maintenance", "off", "--env", ENV)
        assert off.returncode == 0, off.stdout + off.stderr
        assert {_get(node.address, https, name, trust)[0] for node in nodes} == {v2}


def _reachable(port: int, name: str, trust) -> bool:  # type: ignore[no-untyped-def]
    try:
        return https_get(port, name, "/version", trust)[0] == 200
    except OSError:
        return False
