"""This machine's Docker engine and the stand-in base images built by scripts/testenv.sh."""
from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
import struct

START_COMMAND = "scripts/testenv.sh up"
DOCKER_URL = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")

# key -> stand-in image name (docs/TEAM-CONTRACT.md). The Dockerfiles keep the official
# images as BASE_IMAGE defaults; tests pass these instead.
STANDIN_IMAGES = {
    "python": "deployctl-standin/python:3.11-bookworm",
    "nginx": "deployctl-standin/nginx:bookworm",
    "mariadb": "deployctl-standin/mariadb:bookworm",
    "postgres": "deployctl-standin/postgres:15-bookworm",
    "host": "deployctl-standin/host:bookworm",
}


def connect_docker(timeout: int = 300):
    """A pinged ``docker.DockerClient``; raises with the reason when the engine is not up.
    The API version is negotiated (the engine is Debian's 20.10, API 1.41)."""
    import docker  # lazily: pure unit tests do not pay for the SDK

    client = docker.DockerClient(base_url=DOCKER_URL, version="auto", timeout=timeout)
    try:
        client.ping()
    except Exception:
        client.close()
        raise
    return client


def missing_images(client, names: dict[str, str]) -> list[str]:
    import docker

    missing = []
    for name in names.values():
        try:
            client.images.get(name)
        except docker.errors.ImageNotFound:
            missing.append(name)
    return missing


def interface_ipv4(name: str) -> str | None:
    """The IPv4 address of a network interface (SIOCGIFADDR), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def bridge_gateway() -> str:
    """Where containers on the default bridge reach this machine: docker0's address."""
    return interface_ipv4("docker0") or "172.17.0.1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
