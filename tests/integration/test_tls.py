"""HTTPS on real parts (docs/tls.md): a real ACME CA (pebble, validating for real), this
machine's engine with deployctl's proxy, a client that checks the chain against pebble's
root. SSH hosts (a fleet of 3, acme then `tls = "files"`): fleet/test_fleet_tls.py."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from deployctl.cli.main import main
from deployctl.config import load_config
from deployctl.errors import ExitCode
from deployctl.events import Recorder
from deployctl.secrets import Secret
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.env import Env
from tests.integration.deploy_fixtures import probe_config, remove_app, unique_app
from tests.support.net import free_port, wait_until
from tests.support.pebble import http_get, https_get, pebble
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
            release = deploy(Env.resolve(load_config(path), "local"), _images(probe_images, "1111111aaaa"), SECRETS,
                             Recorder()).release
            trust = ca.client_context(tmp_path)  # pebble's root only, names checked
            status, headers, body, der, version = https_get(https, name, "/version", trust)
            assert status == 200 and headers["X-Deployctl-Release"] == release
            assert version in ("TLSv1.2", "TLSv1.3")
            assert headers["Strict-Transport-Security"].startswith("max-age=")

            def plain_get() -> tuple[int, str | None]:
                status, headers = http_get(http, name, "/version?x=1")
                return status, headers.get("Location")

            # nginx's reload is asynchronous: HTTPS answering with the new certificate (the
            # install waits for that) does not mean no HTTP request is proxied any more (seen
            # in a parallel run after the guard tests: 301 and the app's 404 for the query, in
            # turn, for a moment: an open question in the session note). The redirect is proven
            # once it answers, with the HTTPS port and the query kept.
            redirect = (301, f"https://{name}:{https}/version?x=1")
            wait_until(lambda: plain_get() == redirect, 10, "HTTP answering 301 to HTTPS")
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



