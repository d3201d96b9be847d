"""The bootcamp example app (examples/bootcamp-users): what its tests need to run it here.

Its Dockerfiles say `FROM python:3.12-slim` and its compose file `image: mysql:5.7`, as a
bootcamp would write them. Nothing can be pulled on our machines, so the stand-in images
are tagged with those names when the names are absent (never removed again: other sessions
on the same engine may be using them).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.support.engine import STANDIN_IMAGES

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bootcamp-users"

# official name -> stand-in that speaks its interface
OFFICIAL_NAMES = {
    "python:3.12-slim": STANDIN_IMAGES["python"],
    "mysql:5.7": STANDIN_IMAGES["mariadb"],
    "nginx:latest": STANDIN_IMAGES["nginx"],
}


def tag_official_names(client) -> dict[str, str]:
    """Makes each official name exist in the engine; returns name -> what it now is."""
    import docker

    done = {}
    for name, standin in OFFICIAL_NAMES.items():
        try:
            client.images.get(name)
            done[name] = "present"
        except docker.errors.ImageNotFound:
            repo, tag = name.rsplit(":", 1)
            client.images.get(standin).tag(repo, tag)
            done[name] = f"tagged from {standin}"
    return done


def compose_command() -> list[str]:
    exe = shutil.which("docker-compose")
    if exe is None:
        raise FileNotFoundError("docker-compose is not installed: apt-get install -y docker-compose")
    return [exe]


def compose_with_port(source: Path, target: Path, service: str, host_port: int) -> Path:
    """A copy of a compose file whose `service` publishes its container port on
    127.0.0.1:host_port instead (compose v1 appends override files' ports, so a copy is the
    way to move one). Run it with --project-directory set to the example."""
    data = yaml.safe_load(source.read_text())
    ports = data["services"][service]["ports"]
    container_port = str(ports[0]).rsplit(":", 1)[-1]
    data["services"][service]["ports"] = [f"127.0.0.1:{host_port}:{container_port}"]
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


def run_compose(project: str, compose_file: Path, *args: str, env: dict[str, str],
                timeout: float = 600) -> subprocess.CompletedProcess:
    argv = [*compose_command(), "-p", project, "-f", str(compose_file),
            "--project-directory", str(EXAMPLE), *args]
    return subprocess.run(argv, env={**os.environ, "DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0", **env},
                          capture_output=True, text=True, timeout=timeout, cwd=EXAMPLE)
