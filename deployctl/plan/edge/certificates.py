"""What a certificate says and whether it may serve: pure checks on PEM bytes (no I/O), with
`cryptography` (already installed as paramiko's dependency).

A `tls = "files"` pair is checked here before any host changes (docs/tls.md): the key is
the certificate's, the certificate covers every name in `[proxy] hosts`, it is valid now.
The same description answers `deployctl certs status` and the renewal rule (30 days).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

RENEW_WITHIN = timedelta(days=30)


class CertificateProblem(ValueError):
    """A certificate or key that cannot serve; the message says why, never the key."""


@dataclass(frozen=True)
class CertificateInfo:
    names: tuple[str, ...]
    issuer: str
    not_before: datetime
    not_after: datetime
    serial: str

    def days_left(self, now: datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400

    def as_dict(self, now: datetime) -> dict:
        return {"names": list(self.names), "issuer": self.issuer, "not_before": self.not_before.isoformat(),
                "not_after": self.not_after.isoformat(), "days_left": round(self.days_left(now), 1),
                "serial": self.serial}


def _x509():  # type: ignore[no-untyped-def]
    from cryptography import x509  # lazily: only commands that touch certificates pay for it

    return x509


def load_chain(pem: bytes, what: str = "the certificate") -> list:
    """The certificates of a PEM chain, leaf first."""
    try:
        chain = _x509().load_pem_x509_certificates(pem)
    except ValueError:
        chain = []
    if not chain:
        raise CertificateProblem(f"{what} is not a PEM certificate chain (-----BEGIN CERTIFICATE----- ...)")
    return chain


def load_key(pem: bytes, what: str = "the private key"):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        return load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        # Never the exception's text: it may quote the key's bytes.
        raise CertificateProblem(f"{what} is not an unencrypted PEM private key") from None


def describe(pem: bytes) -> CertificateInfo:
    leaf = load_chain(pem)[0]
    x509 = _x509()
    try:
        names = tuple(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                      .get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    issuer = leaf.issuer.rfc4514_string() or "(no issuer name)"
    return CertificateInfo(names=names, issuer=issuer, not_before=leaf.not_valid_before_utc,
                           not_after=leaf.not_valid_after_utc, serial=format(leaf.serial_number, "x"))


def covers(names: tuple[str, ...] | list[str], host: str) -> bool:
    """RFC 6125: a name matches itself, case-insensitively; `*.example.com` matches exactly
    one more label on the left."""
    host = host.lower().rstrip(".")
    for name in (n.lower().rstrip(".") for n in names):
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:] and not host.startswith("*."):
            return True
    return False


def check_pair(chain_pem: bytes, key_pem: bytes, hosts: list[str], now: datetime) -> CertificateInfo:
    """The checks a certificate passes before it reaches any host; CertificateProblem names
    the first that fails."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    chain = load_chain(chain_pem)
    key = load_key(key_pem)
    public = chain[0].public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) != public:
        raise CertificateProblem("the private key does not match the certificate (the first one in the chain)")
    info = describe(chain_pem)
    missing = [h for h in hosts if not covers(info.names, h)]
    if missing:
        raise CertificateProblem(f"the certificate is for {', '.join(info.names) or 'no DNS name'}, "
                                 f"not for {', '.join(missing)} (proxy.hosts)")
    if info.not_after <= now:
        raise CertificateProblem(f"the certificate expired on {info.not_after:%Y-%m-%d %H:%M} UTC")
    if info.not_before > now:
        raise CertificateProblem(f"the certificate is valid only from {info.not_before:%Y-%m-%d %H:%M} UTC")
    return info


def renewal_reason(info: CertificateInfo | None, hosts: list[str], now: datetime,
                   within: timedelta = RENEW_WITHIN) -> str | None:
    """Why a host's certificate must be (re)issued; None when it may keep serving."""
    if info is None:
        return "no certificate yet"
    missing = [h for h in hosts if not covers(info.names, h)]
    if missing:
        return f"it does not cover {', '.join(missing)}"
    if info.not_after - now <= within:
        return f"it expires on {info.not_after:%Y-%m-%d} (within {within.days} days)"
    return None


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def new_private_key() -> bytes:
    """A certificate's (or an ACME account's) key: ECDSA P-256, PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def csr_der(key_pem: bytes, hosts: list[str]) -> bytes:
    """The certificate request an ACME finalize carries: every host as a DNS name."""
    from cryptography.hazmat.primitives import hashes, serialization

    x509 = _x509()
    key = load_key(key_pem)
    request = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
               .sign(key, hashes.SHA256()))
    return request.public_bytes(serialization.Encoding.DER)
