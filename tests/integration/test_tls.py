"""HTTPS on real parts (docs/tls.md): a real ACME CA (pebble, validating for real), this
machine's engine with deployctl's proxy, a client that checks the chain against pebble's
root; and `tls = "files"` on an SSH host."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from deployctl.cli.main import main
from deployctl.config import load_config
from deployctl.errors import ExitCode
from deployctl.events import Recorder
from deployctl.plan.certificates import describe
from deployctl.secrets import Secret
from deployctl.services.deploy import deploy
from deployctl.services.release_images import ReleaseImages
from tests.integration.deploy_fixtures import probe_config, remove_app, unique_app
from tests.support.net import free_port
from tests.support.pebble import TestCa, https_get, pebble
from tests.support.traffic import Traffic

pytestmark = pytest.mark.integration
SECRETS = {"PROBE_DB_PASSWORD": Secret("probe-password-value")}


def _images(probe, revision: str) -> ReleaseImages:
    return ReleaseImages({"backend": probe.good, "frontend": probe.good}, revision)


def _acme_config(tmp: Path, app: str, name: str, http: int, https: int, ca) -> Path:  # type: ignore[no-untyped-def]
    path = probe_config(tmp, app, port=http, extra_env=f"proxy_tls_port = {https}")
    path.write_text(path.read_text().replace("[proxy]\n", f"""[proxy]
hosts = ["{name}"]
tls = "acme"
acme_email = "ops@example.com"
acme_directory = "{ca.directory}"
acme_ca_bundle = "{ca.ca_bundle}"
hsts = true
"""))
    return path


def _serial(port: int, name: str, context) -> str:  # type: ignore[no-untyped-def]
    from cryptography import x509

    status, _, _, der, _ = https_get(port, name, "/nginx-health", context)
    assert status == 200
    return format(x509.load_der_x509_certificate(der).serial_number, "x")


def _cli(capsys, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_acme_obtain_serve_renew_under_load_and_a_refusal_keeps_the_certificate(tmp_path, probe_images, capsys):
    app, http, https = unique_app(), free_port(), free_port()
    name = f"{app}.deployctl.test"
    try:
        with pebble(tmp_path, http) as ca:
            path = _acme_config(tmp_path, app, name, http, https, ca)
            # The first deploy: HTTP-01 answered through deployctl's own proxy, then HTTPS.
            release = deploy(load_config(path), "local", _images(probe_images, "1111111aaaa"), SECRETS,
                             Recorder()).release
            trust = ca.client_context(tmp_path)  # pebble's root only, names checked
            status, headers, body, der, version = https_get(https, name, "/version", trust)
            assert status == 200 and headers["X-Deployctl-Release"] == release
            assert version in ("TLSv1.2", "TLSv1.3")
            assert headers["Strict-Transport-Security"].startswith("max-age=")
            import http.client as hc

            plain = hc.HTTPConnection("127.0.0.1", http, timeout=5)
            plain.request("GET", "/version?x=1", headers={"Host": name})
            answer = plain.getresponse()
            assert answer.status == 301 and answer.getheader("Location") == f"https://{name}:{https}/version?x=1"
            plain.close()
            key_file = next((tmp_path / "state" / app / "local" / "proxy" / "tls").glob("v-*/privkey.pem"))
            assert key_file.stat().st_mode & 0o777 == 0o600
            account = tmp_path / "state" / app / "local" / "acme" / "account.pem"
            assert account.stat().st_mode & 0o777 == 0o600

            code, out, _ = _cli(capsys, "-c", str(path), "certs", "status", "--env", "local", "--json")
            result = json.loads(out.strip().splitlines()[-1])
            assert code == 0 and result["hosts"][0]["certificate"]["names"] == [name]
            assert "Pebble" in result["hosts"][0]["certificate"]["issuer"]
            assert "PRIVATE KEY" not in out
            first = _serial(https, name, trust)

            # Renewal (forced: pebble's certificates last years) under 4 workers of HTTPS traffic.
            with Traffic(f"https://127.0.0.1:{https}/version", workers=4, max_seconds=60, ssl_context=trust,
                         server_name=name) as traffic:
                time.sleep(1)
                began = time.time()
                code, out, err = _cli(capsys, "-c", str(path), "certs", "renew", "--env", "local", "--force")
                ended = time.time()
                time.sleep(1)
            assert code == 0, err
            report = traffic.report
            # Requests throughout: before the renewal, during it (the reload) and after it.
            assert [s for s in report.samples if s.started < began] and [s for s in report.samples if s.started > ended]
            assert [s for s in report.samples if began <= s.started <= ended], report.summary()
            assert report.failures == [], report.summary() + repr(report.failures[:3])
            renewed = _serial(https, name, trust)
            assert renewed != first
            # Without --force, a certificate with years left is left alone.
            code, out, _ = _cli(capsys, "-c", str(path), "certs", "renew", "--env", "local")
            assert code == 0 and "no renewal needed" in out + _

        # The CA refuses: another pebble whose validator reaches nothing on this name.
        with pebble(tmp_path, free_port()) as refusing:
            path.write_text(path.read_text().replace(ca.directory, refusing.directory)
                            .replace(ca.ca_bundle, refusing.ca_bundle))
            code, out, err = _cli(capsys, "-c", str(path), "certs", "renew", "--env", "local", "--force")
            assert code == ExitCode.CERTIFICATE, out + err
            assert "connection refused" in (out + err).lower() and "keeps serving" in err
            assert _serial(https, name, trust) == renewed  # the current certificate still serves
    finally:
        remove_app(app)




def test_tls_files_on_an_ssh_host_refused_before_any_change_then_served(ssh_host, registry, probe_images, tmp_path):
    from tests.integration.test_deploy_ssh import push
    from tests.integration.deploy_fixtures import write_probe_artifacts
    from tests.integration.test_deploy_local import run_cli

    app, http, https = unique_app(), free_port(), free_port()
    name = f"{app}.corp.test"
    ssh = (f"[environments.staging.ssh]\nuser = \"{ssh_host.user}\"\nport = {ssh_host.port}\n"
           f"key_file = \"{ssh_host.key_file}\"\nknown_hosts = \"{ssh_host.known_hosts_file}\"\n")
    config = probe_config(tmp_path, app, port=http, env_name="staging", target="ssh",
                          extra_env=f"hosts = [\"{ssh_host.host}\"]\nproxy_tls_port = {https}\n{ssh}",
                          registry=f"[registry]\nserver = \"{registry.address}\"\nnamespace = \"{app}\"\n")
    config.write_text(config.read_text().replace("[proxy]\n", f"""[proxy]
hosts = ["{name}"]
tls = "files"
tls_certificate_secret = "CORP_TLS_CHAIN"
tls_key_secret = "CORP_TLS_KEY"
"""))
    repos = {n: f"{registry.address}/{app}/{n}" for n in ("backend", "frontend", "proxy")}
    company = TestCa("corp CA")
    try:
        digests = {n: push(img, repos[n], "7150001a") for n, img in
                   (("backend", probe_images.good), ("frontend", probe_images.good), ("proxy", probe_images.proxy))}
        write_probe_artifacts(config, app, "7150001a", probe_images.good, probe_images.good, probe_images.proxy,
                              digests=digests, repositories=repos)
        # A certificate for other names: refused before any host changes, the key never shown.
        chain, key = company.issue(["other.corp.test"])
        refused = run_cli(config, "deploy", "--env", "staging", env={
            "PROBE_DB_PASSWORD": "pw", "CORP_TLS_CHAIN": chain.decode(), "CORP_TLS_KEY": key.decode()})
        assert refused.returncode == ExitCode.CONFIG, refused.stdout + refused.stderr
        assert f"not for {name} (proxy.hosts)" in refused.stderr and "PRIVATE KEY" not in refused.stdout + refused.stderr
        assert not (tmp_path / "state").exists()

        chain, key = company.issue([name])
        secrets = {"PROBE_DB_PASSWORD": "pw", "CORP_TLS_CHAIN": chain.decode(), "CORP_TLS_KEY": key.decode()}
        done = run_cli(config, "deploy", "--env", "staging", "--json", env=secrets)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "PRIVATE KEY" not in done.stdout + done.stderr
        release = json.loads(done.stdout.strip().splitlines()[-1])["release"]
        trust_file = tmp_path / "corp-ca.pem"
        trust_file.write_bytes(company.pem)
        import ssl

        status, headers, _, der, _ = https_get(https, name, "/version", ssl.create_default_context(cafile=str(trust_file)))
        assert status == 200 and headers["X-Deployctl-Release"] == release
        assert der == describe_der(chain)
        key_file = next((tmp_path / "state" / app / "staging" / "proxy" / "tls").glob("v-*/privkey.pem"))
        assert key_file.stat().st_mode & 0o777 == 0o600
        shown = run_cli(config, "certs", "status", "--env", "staging", "--json", env=secrets)
        assert shown.returncode == 0, shown.stderr
        host = json.loads(shown.stdout.strip().splitlines()[-1])["hosts"][0]
        assert host["certificate"]["names"] == [name] and "corp CA" in host["certificate"]["issuer"]
    finally:
        remove_app(app)


def describe_der(chain_pem: bytes) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    return x509.load_pem_x509_certificates(chain_pem)[0].public_bytes(Encoding.DER)
