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


def manifest_digest(repository: str, tag: str, *, username: str | None = None,
                    password: Secret | None = None, timeout: float = 10.0) -> str:
    server, _, name = repository.partition("/")
    url = f"{_scheme(server)}://{server}/v2/{name}/manifests/{tag}"
    request = urllib.request.Request(url, method="HEAD", headers={"Accept": MANIFEST_TYPES})
    if username and password is not None:
        token = base64.b64encode(f"{username}:{password.reveal()}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            digest = response.headers.get("Docker-Content-Digest")
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
