"""One certificate for a fleet (docs/tls.md): three stand-in hosts, a real ACME CA (pebble)
whose validator reaches ONE host, a different one for the first order and the renewal, so
both pass only because every host held the answer; then every host serves the same
certificate, checked against pebble's root. Then `tls = "files"` on the same SSH hosts: a
pair for other names refused before any host changes, a company CA's pair installed on all."""

from __future__ import annotations

import pytest

from tests.integration.fleet.site import ENV
import ssl

from deployctl.errors import ExitCode
from tests.support.pebble import TestCa, https_get, pebble

pytestmark = pytest.mark.integration


def _serial(address: str, port: int, name: str, trust) -> str:  # type: ignore[no-untyped-def]
    from cryptography import x509

    status, _, _, der, _ = https_get(port, name, "/nginx-health", trust, address=address)
    assert status == 200
    return format(x509.load_der_x509_certificate(der).serial_number, "x")


def test_one_certificate_on_three_hosts_validated_through_the_last_then_the_first_then_files(site, tmp_path,
                                                                                             monkeypatch):
    https, name = site.proxy_port + 1000, f"{site.app}.fleet.test"
    with pebble(tmp_path, site.proxy_port, address=site.hosts[-1]) as ca:
        text = site.config.read_text().replace("[proxy]\n", f"""[proxy]
hosts = ["{name}"]
tls = "acme"
acme_email = "ops@example.com"
acme_directory = "{ca.directory}"
acme_ca_bundle = "{ca.ca_bundle}"
""").replace(f"[environments.{ENV}]\n", f"[environments.{ENV}]\nproxy_tls_port = {https}\n", 1)
        site.config.write_text(text)
        done = site.deploy("a1b2c3d4e5")
        assert done.returncode == 0, done.stdout + done.stderr
        trust = ca.client_context(tmp_path)
        first = {_serial(address, https, name, trust) for address in site.hosts}
        assert len(first) == 1  # one certificate, on every host

        ca.resolve_to(site.hosts[0])  # the renewal is validated through another host
        renewed = site.cli("certs", "renew", "--env", ENV, "--force")
        assert renewed.returncode == 0, renewed.stdout + renewed.stderr
        second = {_serial(address, https, name, trust) for address in site.hosts}
        assert len(second) == 1 and second != first
        for address in site.hosts:  # the answers are gone, the key is 0600
            host = site.host(address)
            listing = host.exec("sh", "-c", f"ls /var/lib/deployctl/{site.app}/{ENV}/proxy/acme/.well-known/"
                                            f"acme-challenge/ 2>/dev/null; stat -c %a /var/lib/deployctl/{site.app}/"
                                            f"{ENV}/proxy/tls/live/privkey.pem", check=False)
            assert listing.strip() == "600", listing

    # tls = "files" on the same hosts, from the secret source (env here).
    company = TestCa("corp CA")
    site.config.write_text(site.config.read_text().replace('tls = "acme"', 'tls = "files"\n'
                                                           'tls_certificate_secret = "CORP_TLS_CHAIN"\n'
                                                           'tls_key_secret = "CORP_TLS_KEY"')
                           .replace('acme_email = "ops@example.com"\n', "")
                           .replace(f'acme_directory = "{ca.directory}"\n', "")
                           .replace(f'acme_ca_bundle = "{ca.ca_bundle}"\n', ""))
    chain, key = company.issue(["other.corp.test"])
    monkeypatch.setenv("CORP_TLS_CHAIN", chain.decode())
    monkeypatch.setenv("CORP_TLS_KEY", key.decode())
    refused = site.cli("certs", "renew", "--env", ENV)
    assert refused.returncode == ExitCode.CONFIG, refused.stdout + refused.stderr
    assert f"not for {name} (proxy.hosts)" in refused.stderr and "PRIVATE KEY" not in refused.stdout + refused.stderr
    assert {_serial(address, https, name, trust) for address in site.hosts} == second  # nothing changed

    chain, key = company.issue([name])
    monkeypatch.setenv("CORP_TLS_CHAIN", chain.decode())
    monkeypatch.setenv("CORP_TLS_KEY", key.decode())
    installed = site.cli("certs", "renew", "--env", ENV)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "PRIVATE KEY" not in installed.stdout + installed.stderr
    trust_file = tmp_path / "corp-ca.pem"
    trust_file.write_bytes(company.pem)
    corp = ssl.create_default_context(cafile=str(trust_file))
    assert len({_serial(address, https, name, corp) for address in site.hosts}) == 1
