"""A real ACME CA for tests: Debian's `pebble` (Let's Encrypt's test CA, RFC 8555) with
`pebble-challtestsrv` as its DNS (every name -> 127.0.0.1), on free ports, one per test
(shared/testenv.md, "A real ACME server"). Validation is real: PEBBLE_VA_ALWAYS_VALID is
removed from its environment, so a challenge passes only when pebble's validator fetched
the right answer from http://<name>:<http_port>/.well-known/acme-challenge/<token>.

Also a small private CA (`TestCa`) for `tls = "files"`: a company CA issuing a certificate
and key for given names, as the secret source would hold them.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import ssl
import subprocess
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tests.support.net import free_port, wait_until

PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"
CHALLTESTSRV = shutil.which("pebble-challtestsrv") or "/usr/bin/pebble-challtestsrv"


def _pem(obj) -> bytes:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization

    if hasattr(obj, "public_bytes") and hasattr(obj, "serial_number"):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class TestCa:
    """A private CA: `issue(names)` gives (chain PEM, key PEM) signed by it."""

    __test__ = False

    def __init__(self, name: str = "deployctl test CA") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=3650))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
                     .sign(self.key, hashes.SHA256()))

    @property
    def pem(self) -> bytes:
        return _pem(self.cert)

    def issue(self, names: list[str], *, ips: list[str] = (), days: float = 90,
              starts: float = -1) -> tuple[bytes, bytes]:
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (names or list(ips))[0])]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now + datetime.timedelta(days=starts))
                .not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                .sign(self.key, hashes.SHA256()))
        return _pem(cert) + self.pem, _pem(key)


    def sign_csr(self, csr_der: bytes, days: float = 90) -> bytes:
        """A chain for a certificate request (what a CA's finalize does), leaf first."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        csr = x509.load_der_x509_csr(csr_der)
        now = datetime.datetime.now(datetime.timezone.utc)
        alt = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        cert = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(self.cert.subject)
                .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(alt, critical=False).sign(self.key, hashes.SHA256()))
        return _pem(cert) + self.pem


@dataclass
class Pebble:
    directory: str  # https://127.0.0.1:<port>/dir
    ca_bundle: str  # trust for the directory's own TLS (acme_ca_bundle)
    management: str  # https://127.0.0.1:<port>
    http_port: int  # where its validator connects for HTTP-01
    dns_management: str = ""  # pebble-challtestsrv's management API (http://127.0.0.1:<port>)

    def resolve_to(self, address: str) -> None:
        """Every name resolves to `address` from now on (which host the validator reaches)."""
        request = urllib.request.Request(f"{self.dns_management}/set-default-ipv4",
                                         data=json.dumps({"ip": address}).encode(), method="POST")
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5).read()

    def root_pem(self) -> bytes:
        """The root pebble issues under (a new one per pebble run)."""
        context = ssl.create_default_context(cafile=self.ca_bundle)
        with urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=context)).open(
                f"{self.management}/roots/0", timeout=10) as response:
            return response.read()

    def client_context(self, tmp: Path) -> ssl.SSLContext:
        """A client that trusts pebble's root only (and checks the name, as browsers do)."""
        path = tmp / f"pebble-root-{self.http_port}.pem"
        path.write_bytes(self.root_pem())
        return ssl.create_default_context(cafile=str(path))


@contextmanager
def pebble(tmp: Path, http_port: int, address: str = "127.0.0.1") -> Iterator[Pebble]:
    """pebble + pebble-challtestsrv on free ports; `http_port`: the proxy's published HTTP port;
    `address`: what every name resolves to (where the validator connects)."""
    folder = tmp / f"pebble-{free_port()}"
    folder.mkdir()
    api_ca = TestCa("pebble API test CA")
    chain, key = api_ca.issue(["localhost"], ips=["127.0.0.1"])
    (folder / "cert.pem").write_bytes(chain)
    (folder / "key.pem").write_bytes(key)
    (folder / "ca.pem").write_bytes(api_ca.pem)
    api, management, dns, challenges = free_port(), free_port(), free_port(), free_port()
    (folder / "pebble.json").write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{api}", "managementListenAddress": f"127.0.0.1:{management}",
        "certificate": str(folder / "cert.pem"), "privateKey": str(folder / "key.pem"),
        "httpPort": http_port, "tlsPort": free_port(), "ocspResponderURL": "", "externalAccountBindingRequired": False,
    }}))
    env = {k: v for k, v in os.environ.items() if k != "PEBBLE_VA_ALWAYS_VALID"}
    env.update(PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
    logs = (folder / "challtestsrv.log").open("wb"), (folder / "pebble.log").open("wb")
    dns_server = subprocess.Popen([CHALLTESTSRV, "-defaultIPv4", address, "-defaultIPv6", "",
                                   "-dns01", f"127.0.0.1:{dns}", "-http01", "", "-https01", "",
                                   "-tlsalpn01", "", "-management", f"127.0.0.1:{challenges}"],
                                  stdout=logs[0], stderr=subprocess.STDOUT, env=env)
    ca = subprocess.Popen([PEBBLE, "-config", str(folder / "pebble.json"), "-dnsserver", f"127.0.0.1:{dns}"],
                          stdout=logs[1], stderr=subprocess.STDOUT, env=env, cwd=folder)
    server = Pebble(f"https://127.0.0.1:{api}/dir", str(folder / "ca.pem"), f"https://127.0.0.1:{management}",
                    http_port, f"http://127.0.0.1:{challenges}")
    try:
        context = ssl.create_default_context(cafile=server.ca_bundle)

        def answers() -> bool:
            try:
                urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                            urllib.request.HTTPSHandler(context=context)).open(server.directory,
                                                                                               timeout=2)
                return True
            except OSError:
                return False

        wait_until(answers, 20, "pebble's directory",
                   alive=lambda: f"exited {ca.poll()}: {(folder / 'pebble.log').read_text()[-500:]}"
                   if ca.poll() is not None else None)
        yield server
    finally:
        for process in (ca, dns_server):
            process.terminate()
        for process in (ca, dns_server):
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()


def https_get(port: int, name: str, path: str, context: ssl.SSLContext, timeout: float = 5.0,  # type: ignore[no-untyped-def]
              address: str = "127.0.0.1", *, method: str = "GET", body: bytes | None = None,
              headers: dict[str, str] | None = None):
    """GET (or `method` with `body`) https://<name>:<port><path> connected to `address` (the
    name only as SNI and for the certificate check): (status, headers, body, the peer's
    certificate as DER, TLS version). Redirects are returned, not followed."""
    import http.client
    import socket

    raw = socket.create_connection((address, port), timeout=timeout)
    sock = context.wrap_socket(raw, server_hostname=name)
    der, version = sock.getpeercert(binary_form=True), sock.version()
    try:
        conn = http.client.HTTPConnection(name, port, timeout=timeout)
        conn.sock = sock
        conn.request(method, path, body=body, headers={"Host": _host(name, port, 443), "Connection": "close",
                                                       **(headers or {})})
        response = conn.getresponse()
        answer = response.read()
        return response.status, dict(response.getheaders()), answer, der, version
    finally:
        sock.close()


def http_get(port: int, name: str, path: str, timeout: float = 5.0,
             address: str = "127.0.0.1") -> tuple[int, dict[str, str]]:
    """Plain-HTTP GET http://<name>:<port><path> connected to `address`: (status, headers),
    a redirect returned as it is (what the proxy answers before HTTPS)."""
    import http.client

    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": _host(name, port, 80), "Connection": "close"})
        response = conn.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        conn.close()


def _host(name: str, port: int, default: int) -> str:
    return name if port == default else f"{name}:{port}"
