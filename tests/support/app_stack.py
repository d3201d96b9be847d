"""The users app as it ships, for the integration and browser tests: its three images built
from their Dockerfiles on the stand-in bases, and a running stack of them (migrations,
backend, frontend, nginx) on a private Docker network against the test MariaDB.

Containers are wired the way nginx/README.md tells deployctl to: the proxy mounts a
directory holding `frontend.conf` and resolves the frontend's container name through
Docker's embedded DNS. Only nginx publishes a port (on 127.0.0.1).
"""
from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import requests

REPO = Path(__file__).resolve().parents[2]
IMAGE_PREFIX = "deployctl-apptest"
UPSTREAM_FILE = "/etc/nginx/upstream/frontend.conf"
APP_PORT = 8000


@dataclass(frozen=True)
class AppImages:
    backend: str
    frontend: str
    nginx: str


def build_app_images(client, standin_images: dict[str, str]) -> AppImages:
    """Build what ships from each Dockerfile with the stand-in base images. The services'
    `runtime` target is their final stage too; naming it spares the classic builder the
    test stages, which it would otherwise build on the way to the last one."""
    import docker

    plan = {
        "backend": (REPO / "app/backend", standin_images["python"], "runtime"),
        "frontend": (REPO / "app/frontend", standin_images["python"], "runtime"),
        "nginx": (REPO / "nginx", standin_images["nginx"], None),
    }
    tags = {}
    for name, (context, base, target) in plan.items():
        tag = f"{IMAGE_PREFIX}/{name}:latest"
        try:
            client.images.build(path=str(context), tag=tag, buildargs={"BASE_IMAGE": base}, target=target,
                                rm=True, forcerm=True)
        except docker.errors.BuildError as error:
            lines = "".join(chunk.get("stream", "") or chunk.get("error", "") for chunk in error.build_log)
            raise RuntimeError(f"building {name} from {context} failed: {error}\n{lines[-3000:]}") from None
        tags[name] = tag
    return AppImages(**tags)


def upstream_conf(server: str) -> str:
    """The upstream file's content, in the format nginx/README.md specifies."""
    return f"# deployctl-apptest\nupstream frontend {{\n    server {server};\n}}\n"


@dataclass
class AppStack:
    url: str
    release: str
    network: str
    containers: dict = field(default_factory=dict)
    upstream_dir: Path | None = None

    def logs(self, name: str) -> str:
        return self.containers[name].logs().decode(errors="replace")

    def nginx_exec(self, *argv: str) -> tuple[int, str]:
        result = self.containers["nginx"].exec_run(list(argv))
        return result.exit_code, result.output.decode(errors="replace")


@contextmanager
def running_app_stack(client, images: AppImages, mariadb, *, release: str | None = None) -> Iterator[AppStack]:
    """Start the stack, wait until a page renders through nginx, yield it, remove it all."""
    suffix = secrets.token_hex(4)
    release = release or f"20261127-000000-{suffix[:7]}"
    prefix = f"apptest-{suffix}"
    workdir = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    network = client.networks.create(prefix, driver="bridge")
    stack = AppStack(url="", release=release, network=prefix, upstream_dir=workdir / "upstream")
    try:
        secrets_dir = workdir / "secrets"
        secrets_dir.mkdir()
        (secrets_dir / "db_password").write_text(mariadb.password + "\n")
        (secrets_dir / "frontend_secret_key").write_text(secrets.token_hex(32) + "\n")
        for path in (workdir, secrets_dir, *secrets_dir.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)  # readable by the images' uid 10001
        secret_mount = {str(secrets_dir): {"bind": "/run/secrets", "mode": "ro"}}
        database_env = {
            "DATABASE_HOST": mariadb.container_host,
            "DATABASE_PORT": str(mariadb.port),
            "DATABASE_NAME": mariadb.create_database("apptest"),
            "DATABASE_USER": mariadb.user,
            "DATABASE_PASSWORD_FILE": "/run/secrets/db_password",
        }
        release_env = {"DEPLOYCTL_RELEASE": release, "DEPLOYCTL_REVISION": f"rev-{suffix}"}

        migrate = client.containers.run(
            images.backend, ["python", "-m", "backend.migrate"], name=f"{prefix}-migrate",
            environment=database_env, volumes=secret_mount, network=prefix, detach=True)
        stack.containers["migrate"] = migrate
        status = migrate.wait(timeout=120)
        if status["StatusCode"] != 0:
            raise RuntimeError(f"migrations failed ({status['StatusCode']}):\n{stack.logs('migrate')}")

        stack.containers["backend"] = client.containers.run(
            images.backend, name=f"{prefix}-backend", environment={**database_env, **release_env},
            volumes=secret_mount, network=prefix, detach=True)
        stack.containers["frontend"] = client.containers.run(
            images.frontend, name=f"{prefix}-frontend", network=prefix, detach=True,
            environment={
                **release_env,
                "BACKEND_URL": f"http://{prefix}-backend:{APP_PORT}",
                "FRONTEND_SECRET_KEY_FILE": "/run/secrets/frontend_secret_key",
            },
            volumes=secret_mount)

        stack.upstream_dir.mkdir()
        (stack.upstream_dir / "frontend.conf").write_text(upstream_conf(f"{prefix}-frontend:{APP_PORT}"))
        stack.upstream_dir.chmod(0o755)
        nginx = client.containers.run(
            images.nginx, name=f"{prefix}-nginx", network=prefix, detach=True,
            ports={"80/tcp": ("127.0.0.1", None)},
            volumes={str(stack.upstream_dir): {"bind": "/etc/nginx/upstream", "mode": "ro"}})
        stack.containers["nginx"] = nginx
        stack.url = f"http://127.0.0.1:{_published_port(nginx)}"
        _wait_for_page(stack)
        yield stack
    finally:
        for container in reversed(list(stack.containers.values())):
            container.remove(force=True)
        network.remove()
        shutil.rmtree(workdir, ignore_errors=True)


def wait_healthy(container, timeout: float = 90) -> str:
    """Wait for Docker's HEALTHCHECK verdict; return the final status."""
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        status = container.attrs["State"].get("Health", {}).get("Status", "none")
        if status in ("healthy", "unhealthy", "none") or time.monotonic() > deadline:
            return status
        time.sleep(1)


def _published_port(container, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get("80/tcp")
        if bindings:
            return int(bindings[0]["HostPort"])
        if container.status == "exited" or time.monotonic() > deadline:
            raise RuntimeError(f"nginx published no port:\n{container.logs().decode(errors='replace')}")
        time.sleep(0.2)


def _wait_for_page(stack: AppStack, timeout: float = 60) -> None:
    """Until the home page renders through nginx: proves nginx -> frontend -> backend -> DB."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = requests.get(stack.url + "/", timeout=5)
            if response.status_code == 200 and 'id="release-id"' in response.text:
                return
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except requests.RequestException as error:
            last = str(error)
        for name, container in stack.containers.items():
            container.reload()
            if name != "migrate" and container.status == "exited":
                raise RuntimeError(f"{name} exited:\n{stack.logs(name)}")
        time.sleep(0.5)
    logs = "\n".join(f"--- {n}\n{stack.logs(n)[-1500:]}" for n in stack.containers)
    raise TimeoutError(f"the app did not answer through nginx within {timeout:g}s ({last})\n{logs}")
