"""The nginx upstream include file: which release's routed container nginx sends traffic to.

The contract with the proxy image (nginx/nginx.conf): nginx includes
`/etc/nginx/upstream/frontend.conf`, which holds `upstream frontend { server NAME:PORT; }`.
deployctl bind-mounts a host directory (not the file: an atomic rename of the file must be
visible inside) over /etc/nginx/upstream, and `nginx -s reload` applies it gracefully.
"""

from __future__ import annotations

import re

UPSTREAM_MOUNT = "/etc/nginx/upstream"
UPSTREAM_NAME = "frontend"  # the block name nginx.conf proxies to, whatever the routed service is
_RELEASE_LINE = re.compile(r"^# release: (\S+)$", re.M)


def render_upstream(release: str, container: str, port: int) -> str:
    """The whole upstream block, naming one container: the release-scoped name is resolved
    by Docker's DNS when nginx loads it, so `nginx -t` refuses a container that is not running."""
    return (
        "# Written by deployctl; replaced on every deploy and rollback.\n"
        f"# release: {release}\n"
        f"upstream {UPSTREAM_NAME} {{\n"
        f"    server {container}:{port};\n"
        "}\n"
    )


def upstream_release(text: str | bytes | None) -> str | None:
    """Which release an upstream file points at (to switch back to it after a failure)."""
    if not text:
        return None
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    match = _RELEASE_LINE.search(text)
    return match.group(1) if match else None
