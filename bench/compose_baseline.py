"""The baseline the release benchmarks measure against: the same probe services and nginx,
released the way docker-compose does it (`up -d --force-recreate` with the new images)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

from tests.integration.deploy_fixtures import free_port, unique_app

COMPOSE = """
version: "2.4"
services:
  backend:
    image: ${PROBE_IMAGE}
    environment: {DEPLOYCTL_RELEASE: "${RELEASE}"}
  frontend:
    image: ${PROBE_IMAGE}
    environment: {DEPLOYCTL_RELEASE: "${RELEASE}", BACKEND_URL: "http://backend:8000"}
  proxy:
    image: ${PROXY_IMAGE}
    ports: ["127.0.0.1:${PORT}:80"]
    volumes: ["./upstream:/etc/nginx/upstream:ro"]
"""


@contextlib.contextmanager
def compose_site(probe) -> Iterator[tuple[int, Callable[[str], None]]]:  # type: ignore[no-untyped-def]
    """(port, up): `up(release)` recreates the services with `release` as their release id.
    The project is taken down on exit."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "docker-compose.yaml").write_text(COMPOSE)
        (Path(tmp) / "upstream").mkdir()
        (Path(tmp) / "upstream" / "frontend.conf").write_text("upstream frontend { server frontend:8000; }\n")
        env = {**os.environ, "PROBE_IMAGE": probe.good, "PROXY_IMAGE": probe.proxy, "PORT": str(port)}
        project = ["docker-compose", "-p", unique_app(), "-f", str(Path(tmp) / "docker-compose.yaml")]

        def up(release: str) -> None:
            subprocess.run([*project, "up", "-d", "--force-recreate", "backend", "frontend", "proxy"],
                           env={**env, "RELEASE": release}, check=True, capture_output=True)

        try:
            yield port, up
        finally:
            subprocess.run([*project, "down", "-t", "1"], env={**env, "RELEASE": "x"}, capture_output=True)


def wait_for(port: int, release: str | None = None, timeout: float = 60) -> None:
    """Until the site answers /version (from `release`'s frontend, when given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=2).read())
            if release is None or body.get("frontend", {}).get("release") == release:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"port {port} never answered with {release}")
