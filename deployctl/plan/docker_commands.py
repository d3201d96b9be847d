"""The exact `docker` argv lists deploy, rollback and status run on a host (Kamal-style:
commands are data here, executed by a connector elsewhere, and tests compare the lists).

Nothing secret is ever part of an argv: secrets are files mounted read-only, and the
registry password goes to `docker login --password-stdin`.
"""

from __future__ import annotations

from typing import Sequence

from .containers import ContainerSpec
from .names import Names

STOP_TIMEOUT = 10  # seconds gunicorn gets to finish in-flight requests on SIGTERM
PROXY_CONTAINER_PORT = 80


def _labels(labels: dict[str, str]) -> list[str]:
    return [arg for k, v in sorted(labels.items()) for arg in ("--label", f"{k}={v}")]


def _env(env: dict[str, str]) -> list[str]:
    return [arg for k, v in sorted(env.items()) for arg in ("-e", f"{k}={v}")]


def _secret_mounts(spec: ContainerSpec) -> list[str]:
    return [arg for host, inside in spec.secret_mounts() for arg in ("-v", f"{host}:{inside}:ro")]


def run_service(spec: ContainerSpec, network: str) -> list[str]:
    """A release's long-running container. Not published: only nginx (same network) reaches it."""
    return [
        "docker", "run", "--detach", "--name", spec.name, "--network", network,
        "--restart", "unless-stopped", "--log-opt", "max-size=10m",
        *_labels(spec.labels), *_env(spec.env), *_secret_mounts(spec), spec.image,
    ]


def run_migration(spec: ContainerSpec, network: str, name: str, command: Sequence[str],
                  labels: dict[str, str]) -> list[str]:
    """A one-off container of the new image with the service's env and secrets."""
    return [
        "docker", "run", "--rm", "--name", name, "--network", network,
        *_labels(labels), *_env(spec.env), *_secret_mounts(spec), spec.image, *command,
    ]


def chown_secrets(image: str, user: str, host_dir: str) -> list[str]:
    """Hands a secrets directory to the image's own user (names resolved by the image's
    /etc/passwd), so files can stay mode 0600 and still be readable by a non-root app."""
    return ["docker", "run", "--rm", "--network", "none", "--user", "0:0", "--entrypoint", "chown",
            "-v", f"{host_dir}:/secrets", image, "-R", user, "/secrets"]


def run_proxy(names: Names, image: str, port: int, proxy_dir: str, upstream_mount: str,
              labels: dict[str, str]) -> list[str]:
    return [
        "docker", "run", "--detach", "--name", names.proxy, "--network", names.network,
        "--restart", "unless-stopped", "--log-opt", "max-size=10m",
        "--publish", f"{port}:{PROXY_CONTAINER_PORT}",
        *_labels(labels), "-v", f"{proxy_dir}:{upstream_mount}:ro", image,
    ]


def image_user(image: str) -> list[str]:
    return ["docker", "image", "inspect", "--format", "{{.Config.User}}", image]


def image_present(image: str) -> list[str]:
    return ["docker", "image", "inspect", "--format", "{{.Id}}", image]


def pull(image: str) -> list[str]:
    return ["docker", "pull", "--quiet", image]


def login(server: str, username: str) -> list[str]:
    return ["docker", "login", "--username", username, "--password-stdin", server]


def docker_version() -> list[str]:
    return ["docker", "version", "--format", "{{.Server.Version}}"]


def network_inspect(network: str) -> list[str]:
    return ["docker", "network", "inspect", "--format", "{{.Id}}", network]


def network_create(names: Names) -> list[str]:
    return ["docker", "network", "create", *_labels(names.labels("network")), names.network]


def start(containers: Sequence[str]) -> list[str]:
    return ["docker", "start", *containers]


def stop(containers: Sequence[str], timeout: int = STOP_TIMEOUT) -> list[str]:
    return ["docker", "stop", "--time", str(timeout), *containers]


def remove(containers: Sequence[str]) -> list[str]:
    return ["docker", "rm", "--force", "--volumes", *containers]


def remove_images(images: Sequence[str]) -> list[str]:
    return ["docker", "image", "rm", *images]


def logs(container: str, lines: int, follow: bool = False) -> list[str]:
    return ["docker", "logs", "--tail", str(lines), *(["--follow"] if follow else []), container]


# One line per container: name, state, health, IP on the app network, release label.
STATE_FORMAT = ("{{.Name}}|{{.State.Status}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}|"
                "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}|"
                "{{index .Config.Labels \"io.deployctl.release\"}}|{{.State.StartedAt}}|{{.Image}}")


def inspect_state(containers: Sequence[str]) -> list[str]:
    return ["docker", "container", "inspect", "--format", STATE_FORMAT, *containers]


def list_containers(names: Names) -> list[str]:
    """Every container of the app and environment, running or stopped: `name|role|release`."""
    return ["docker", "ps", "--all", "--no-trunc", "--format",
            '{{.Names}}|{{.Label "io.deployctl.role"}}|{{.Label "io.deployctl.release"}}',
            "--filter", f"label=io.deployctl.app={names.app}",
            "--filter", f"label=io.deployctl.env={names.env}"]


def nginx_test_and_reload(names: Names) -> list[str]:
    """Both in one exec (one round trip instead of two on the switch's critical path);
    `&&`: a configuration `nginx -t` refuses never reaches the running nginx."""
    return ["docker", "exec", names.proxy, "sh", "-c", "nginx -t -q && nginx -s reload"]


def port_of(container: str, port: int = PROXY_CONTAINER_PORT) -> list[str]:
    return ["docker", "port", container, f"{port}/tcp"]
