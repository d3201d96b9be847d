"""Asks a registry (Docker Registry HTTP API v2) for the digest of `repository:tag`, so
`deploy --version TAG` can run images by digest without a build on this machine."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request

from ..errors import ConnectError
from ..secrets import Secret

MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])


def _scheme(server: str) -> str:
    # Like Docker: plain HTTP only for registries on the loopback interface.
    host = server.rsplit(":", 1)[0] if not server.startswith("[") else server
    return "http" if host in ("localhost", "127.0.0.1", "[::1]") else "https"


class _RedirectRefused(Exception):
    def __init__(self, code: int, target: str) -> None:
        super().__init__(target)
        self.code, self.target = code, target


class _NoRedirectWithCredentials(urllib.request.HTTPRedirectHandler):
    """urllib copies a request's headers onto the redirected request, Authorization
    included: a registry (or anyone who can make it answer 30x) would receive the Basic
    credentials on any host it names, over plain HTTP too. With credentials every redirect
    is refused, even to the same origin: a manifest HEAD has no reason to move (registries
    redirect blob downloads, not manifests), and one rule is easier to trust than an origin
    comparison. Without credentials nothing secret travels: redirects are followed as before."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if req.has_header("Authorization"):
            raise _RedirectRefused(code, newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def manifest_digest(repository: str, tag: str, *, username: str | None = None,
                    password: Secret | None = None, timeout: float = 10.0) -> str:
    server, _, name = repository.partition("/")
    url = f"{_scheme(server)}://{server}/v2/{name}/manifests/{tag}"
    request = urllib.request.Request(url, method="HEAD", headers={"Accept": MANIFEST_TYPES})
    if username and password is not None:
        token = base64.b64encode(f"{username}:{password.reveal()}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    opener = urllib.request.build_opener(_NoRedirectWithCredentials())
    try:
        with opener.open(request, timeout=timeout) as response:
            digest = response.headers.get("Docker-Content-Digest")
    except _RedirectRefused as exc:
        raise ConnectError(f"{repository}:{tag}: the registry at {server} redirected ({exc.code}) to {exc.target}; "
                           "refused: the request carries the registry's credentials and they would go along",
                           hint="point the registry setting at the address that answers without a redirect") from None
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise ConnectError(f"{repository}:{tag}: no such image in the registry",
                               hint="push it first (deployctl push), or check --version") from None
        raise ConnectError(f"{repository}:{tag}: the registry answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConnectError(f"cannot reach the registry at {server}: {exc}") from None
    if not digest or not digest.startswith("sha256:"):
        raise ConnectError(f"{repository}:{tag}: the registry did not say the manifest's digest")
    return digest
