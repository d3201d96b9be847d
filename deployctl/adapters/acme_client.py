"""A small ACME (RFC 8555) client: account, order, HTTP-01 challenge, finalize, download.

Why our own rather than certbot's `acme` library: deployctl needs only this one flow (the
challenge answers are files deployctl places on every host itself, services/edge/tls.py), and
`cryptography` (already installed, via paramiko) plus `requests` (already a dependency)
cover it in about 150 lines, where `acme` + `josepy` would add pyOpenSSL pinned against
the installed `cryptography`. The CA's own words reach the user: every failure carries the
RFC 7807 problem document's `detail` (and the failed challenge's error).

Keys are ECDSA P-256 (JWS ES256). Nothing here prints or logs a key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import requests

DEFAULT_TIMEOUT = 30.0


class AcmeError(Exception):
    """The CA refused, or could not be reached; `str()` quotes its reason."""


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class AcmeClient:
    def __init__(self, directory_url: str, account_key_pem: bytes, *, ca_bundle: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        self.directory_url, self.timeout = directory_url, timeout
        self.key = load_pem_private_key(account_key_pem, password=None)
        self.session = requests.Session()
        # Given per request: a session's `verify` loses to REQUESTS_CA_BUNDLE from the environment.
        self.verify: str | bool = ca_bundle if ca_bundle else True
        self.session.headers["User-Agent"] = "deployctl-acme"
        self.kid: str | None = None
        self._nonce: str | None = None
        self._directory: dict[str, Any] | None = None

    # -- JWS ---------------------------------------------------------------------------------

    @property
    def jwk(self) -> dict[str, str]:
        numbers = self.key.public_key().public_numbers()
        return {"crv": "P-256", "kty": "EC", "x": b64(numbers.x.to_bytes(32, "big")),
                "y": b64(numbers.y.to_bytes(32, "big"))}

    def thumbprint(self) -> str:
        """RFC 7638: what a key authorization ends with."""
        canonical = json.dumps(self.jwk, sort_keys=True, separators=(",", ":")).encode()
        return b64(hashlib.sha256(canonical).digest())

    def key_authorization(self, token: str) -> str:
        return f"{token}.{self.thumbprint()}"

    def _sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        r, s = decode_dss_signature(self.key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    # -- transport ---------------------------------------------------------------------------

    def directory(self) -> dict[str, Any]:
        if self._directory is None:
            self._directory = self._json(self._request("GET", self.directory_url), "the directory")
        return self._directory

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, url, timeout=self.timeout, verify=self.verify, **kwargs)
        except requests.RequestException as exc:
            raise AcmeError(f"cannot reach the ACME server at {url}: {_short(exc)}") from None
        if "Replay-Nonce" in response.headers:
            self._nonce = response.headers["Replay-Nonce"]
        return response

    def _new_nonce(self) -> str:
        if self._nonce is None:
            self._request("HEAD", self.directory()["newNonce"])
        if self._nonce is None:
            raise AcmeError("the ACME server gave no Replay-Nonce")
        nonce, self._nonce = self._nonce, None
        return nonce

    def post(self, url: str, payload: dict[str, Any] | None, *, accept: str | None = None) -> requests.Response:
        """A JWS-signed POST; `payload` None is a POST-as-GET. A badNonce is retried (RFC 8555
        6.5: the server sends a fresh nonce with the error)."""
        for attempt in range(3):
            protected: dict[str, Any] = {"alg": "ES256", "nonce": self._new_nonce(), "url": url}
            if self.kid:
                protected["kid"] = self.kid
            else:
                protected["jwk"] = self.jwk
            header = b64(json.dumps(protected).encode())
            body = "" if payload is None else b64(json.dumps(payload).encode())
            signature = b64(self._sign(f"{header}.{body}".encode()))
            headers = {"Content-Type": "application/jose+json"}
            if accept:
                headers["Accept"] = accept
            response = self._request("POST", url, data=json.dumps(
                {"protected": header, "payload": body, "signature": signature}), headers=headers)
            if response.status_code < 400:
                return response
            problem = _problem(response)
            if problem.get("type", "").endswith(":badNonce") and attempt < 2:
                continue
            raise AcmeError(_reason(problem, response))
        raise AcmeError("the ACME server kept refusing nonces")  # pragma: no cover - loop returns or raises

    def _json(self, response: requests.Response, what: str) -> dict[str, Any]:
        if response.status_code >= 400:
            raise AcmeError(f"{what}: {_reason(_problem(response), response)}")
        try:
            return response.json()
        except ValueError:
            raise AcmeError(f"{what}: the ACME server answered {response.status_code} with no JSON") from None

    # -- the flow ----------------------------------------------------------------------------

    def account(self, email: str) -> str:
        """Registers the account key (or finds the account it already has: RFC 8555 7.3 answers
        200 with its URL); returns the account URL."""
        response = self.post(self.directory()["newAccount"],
                             {"termsOfServiceAgreed": True, "contact": [f"mailto:{email}"]})
        self.kid = response.headers.get("Location")
        if not self.kid:
            raise AcmeError("the ACME server created an account but gave no account URL")
        return self.kid

    def new_order(self, hosts: list[str]) -> tuple[str, dict[str, Any]]:
        response = self.post(self.directory()["newOrder"],
                             {"identifiers": [{"type": "dns", "value": h} for h in hosts]})
        return response.headers.get("Location", ""), self._json(response, "the new order")

    def get(self, url: str, what: str) -> dict[str, Any]:
        return self._json(self.post(url, None), what)

    def http01(self, authorization: dict[str, Any]) -> tuple[str, str]:
        """(token, challenge URL) of an authorization's HTTP-01 challenge."""
        for challenge in authorization.get("challenges", []):
            if challenge.get("type") == "http-01":
                return challenge["token"], challenge["url"]
        name = authorization.get("identifier", {}).get("value", "?")
        raise AcmeError(f"{name}: the ACME server offers no http-01 challenge (only "
                        f"{', '.join(c.get('type', '?') for c in authorization.get('challenges', []))})")

    def respond(self, challenge_url: str) -> None:
        """Tells the CA the answer is in place: it validates from now on."""
        self.post(challenge_url, {})

    def wait(self, url: str, what: str, *, done: tuple[str, ...], timeout: float) -> dict[str, Any]:
        """Polls `url` until its status is in `done` (then returns it) or `invalid` (AcmeError
        with the CA's reason)."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.get(url, what)
            status = body.get("status")
            if status in done:
                return body
            if status == "invalid":
                raise AcmeError(f"{what} is invalid: {_failure(body)}")
            if time.monotonic() > deadline:
                raise AcmeError(f"{what} is still {status!r} after {timeout:g}s")
            time.sleep(0.5)

    def finalize(self, order: dict[str, Any], csr_der: bytes) -> None:
        self.post(order["finalize"], {"csr": b64(csr_der)})

    def certificate(self, url: str) -> bytes:
        response = self.post(url, None, accept="application/pem-certificate-chain")
        return response.content


def _problem(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _reason(problem: dict[str, Any], response: requests.Response) -> str:
    """The CA's own words: `detail` (and its type, and each subproblem's detail)."""
    if not problem:
        return f"HTTP {response.status_code}: {response.text[:200].strip()}"
    kind = problem.get("type", "").rsplit(":", 1)[-1]
    text = f"{problem.get('detail', 'no detail')} ({kind or response.status_code})"
    subs = [f"{s.get('identifier', {}).get('value', '?')}: {s.get('detail', '')}"
            for s in problem.get("subproblems", []) if isinstance(s, dict)]
    return text + (f"; {'; '.join(subs)}" if subs else "")


def _failure(body: dict[str, Any]) -> str:
    """Why an authorization (or order) is invalid: the failed challenge's error first."""
    for challenge in body.get("challenges", []):
        error = challenge.get("error")
        if isinstance(error, dict):
            kind = error.get("type", "").rsplit(":", 1)[-1]
            return f"{error.get('detail', 'no detail')} ({kind})"
    error = body.get("error")
    if isinstance(error, dict):
        return f"{error.get('detail', 'no detail')} ({error.get('type', '').rsplit(':', 1)[-1]})"
    return "the ACME server gave no reason"


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."
