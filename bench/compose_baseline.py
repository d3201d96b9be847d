"""The baseline the release benchmarks measure against: the same probe services and nginx,
released the way docker-compose does it (`up -d --force-recreate` with the new images).

`same_work`: the release deployctl ships does two more things than a bare `up -d`: the
backend's migration runs before the new code starts, and the backend gets its secret as a
file. A compose user does the same with `docker-compose run --rm backend <migrate>` before
`up -d`, and a bind-mounted file (what compose's own `secrets:` are without Swarm), so that
baseline does too. Bare `up -d` stays the other baseline."""

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
    environment: {DEPLOYCTL_RELEASE: "${RELEASE}", PROBE_DB_PASSWORD_FILE: /run/secrets/PROBE_DB_PASSWORD}
    volumes: ["./secrets/PROBE_DB_PASSWORD:/run/secrets/PROBE_DB_PASSWORD:ro"]
  frontend:
    image: ${PROBE_IMAGE}
    environment: {DEPLOYCTL_RELEASE: "${RELEASE}", BACKEND_URL: "http://backend:8000"}
  proxy:
    image: ${PROXY_IMAGE}
    ports: ["127.0.0.1:${PORT}:80"]
    volumes: ["./upstream:/etc/nginx/upstream:ro"]
"""


@contextlib.contextmanager
def compose_site(probe, same_work: bool = False) -> Iterator[tuple[int, Callable[..., None]]]:  # type: ignore[no-untyped-def]
    """(port, up): `up(release)` recreates the services with `release` as their release id
    (with `same_work`, after the backend's migration; `up(release, migrate=False)`: a
    rollback, which runs none). The project is taken down on exit."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "docker-compose.yaml").write_text(COMPOSE)
        (Path(tmp) / "secrets").mkdir()
        secret = Path(tmp) / "secrets" / "PROBE_DB_PASSWORD"
        secret.write_text("bench-password-value")
        secret.chmod(0o444)  # compose hands files over as they are: the image's user must read it
        (Path(tmp) / "upstream").mkdir()
        (Path(tmp) / "upstream" / "frontend.conf").write_text("upstream frontend { server frontend:8000; }\n")
        env = {**os.environ, "PROBE_IMAGE": probe.good, "PROXY_IMAGE": probe.proxy, "PORT": str(port)}
        project = ["docker-compose", "-p", unique_app(), "-f", str(Path(tmp) / "docker-compose.yaml")]

        def run(*args: str, release: str) -> None:
            done = subprocess.run([*project, *args], env={**env, "RELEASE": release}, capture_output=True, text=True)
            if done.returncode != 0:  # say why (a busy engine out of network address pools, say)
                raise RuntimeError(f"docker-compose {' '.join(args)} exited {done.returncode}: {done.stderr[-800:]}")

        def up(release: str, migrate: bool = True) -> None:
            if same_work and migrate:
                run("run", "--rm", "--no-deps", "backend", "python", "/probe/server.py", "migrate", release=release)
            run("up", "-d", "--force-recreate", "backend", "frontend", "proxy", release=release)

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
