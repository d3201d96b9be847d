"""The Docker engine through the Docker SDK: build, inspect, login, push, run a container.

Streams are handed to the caller as the engine's decoded JSON chunks; making sense of them
(steps, layers, errors) is the services' job, so this module stays a thin translation of
the SDK plus one rule: SDK and connection exceptions become ConnectError/None here.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..errors import BuildError, ConnectError
from ..secrets import Secret

Chunk = dict[str, Any]


def _engine_address() -> str:
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def _import_docker() -> Any:
    """docker-py imports paramiko (and paramiko `invoke`) for ssh:// engines only, yet on every
    import: about 0.35 s, more than half of `import docker` and a tenth of a no-op rebuild.
    For a unix:// or tcp:// engine its ssh transport module is marked absent, which docker-py
    itself handles as "paramiko not installed"."""
    import importlib

    if "docker" in sys.modules or _engine_address().startswith("ssh://"):
        return importlib.import_module("docker")
    sys.modules.setdefault("docker.transport.sshconn", None)  # type: ignore[assignment]
    try:
        return importlib.import_module("docker")
    finally:
        if sys.modules.get("docker.transport.sshconn", False) is None:
            del sys.modules["docker.transport.sshconn"]


def _connect_error(exc: Exception) -> ConnectError:
    return ConnectError(
        f"cannot reach the Docker engine at {_engine_address()}: {exc}",
        hint="start dockerd (scripts/testenv.sh up on a test machine) or set DOCKER_HOST",
    )


class DockerEngine:
    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def connect(cls, *, pool_size: int = 10) -> "DockerEngine":
        docker = _import_docker()
        try:
            # version="auto": this engine may be older than the SDK's default API version.
            client = docker.DockerClient(base_url=_engine_address(), version="auto", timeout=60,
                                         max_pool_size=max(pool_size, 10))
            client.ping()
        except Exception as exc:  # noqa: BLE001 - whatever the transport (unix, tcp, ssh) raised
            raise _connect_error(exc) from None
        return cls(client)

    # -- images ----------------------------------------------------------------------------

    def build(self, *, context: Path, dockerfile: str, tag: str, target: str | None,
              buildargs: Mapping[str, str], labels: Mapping[str, str], nocache: bool,
              cache_from: Sequence[str] = ()) -> Iterator[Chunk]:
        """The classic builder's stream. `pull=False` is the builder's "prefer local": a FROM
        image the engine has is used as it is (no registry round trip, no surprise update), one
        it lacks is pulled. Where it cannot be pulled (no network, a wrong name) the stream ends
        with the registry's error at that FROM step (services/pipeline/build_image.py names the image).
        `cache_from` limits the cache to those images' ancestors."""
        import docker
        import requests

        try:
            yield from self.client.api.build(
                path=str(context), dockerfile=dockerfile, tag=tag, target=target,
                buildargs=dict(buildargs), labels=dict(labels), nocache=nocache,
                cache_from=list(cache_from) or None, rm=True, forcerm=True, pull=False, decode=True,
            )
        except docker.errors.APIError as exc:
            # Refused before the first step: missing Dockerfile, bad target, unreadable context.
            raise BuildError(f"the engine refused the build: {exc.explanation or exc}") from None
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise _connect_error(exc) from None

    def image_id(self, reference: str) -> str | None:
        import docker

        try:
            return self.client.api.inspect_image(reference)["Id"]
        except docker.errors.ImageNotFound:
            return None

    def layers(self, image: str) -> list[str]:
        """The image's layer diff ids, base first: an image built on another starts with its layers."""
        return list(self.client.api.inspect_image(image)["RootFS"].get("Layers") or [])

    # -- registries ------------------------------------------------------------------------

    def login(self, server: str, username: str, password: Secret) -> None:
        """Asks the engine to check credentials against the registry (nothing is written
        to ~/.docker/config.json). Raises ConnectError with the engine's own words, which
        say whether the registry was unreachable or refused."""
        import docker
        import requests

        try:
            self.client.api.login(username=username, password=password.reveal(), registry=server, reauth=True)
        except docker.errors.APIError as exc:
            raise ConnectError(f"login as {username!r}: {exc.explanation or exc}") from None
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise _connect_error(exc) from None

    def push(self, repository: str, tag: str, auth: Mapping[str, str] | None) -> Iterator[Chunk]:
        import docker
        import requests

        try:
            yield from self.client.api.push(repository, tag, stream=True, decode=True,
                                            auth_config=dict(auth) if auth else None)
        except docker.errors.APIError as exc:
            raise ConnectError(f"push of {repository}:{tag} refused: {exc.explanation or exc}") from None
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise _connect_error(exc) from None

    # -- containers ------------------------------------------------------------------------

    def bridge_gateway(self) -> str:
        """Where a container on the default bridge reaches this machine's services."""
        ipam = self.client.api.inspect_network("bridge").get("IPAM") or {}
        for entry in ipam.get("Config") or []:
            if entry.get("Gateway"):
                return entry["Gateway"]
        return "172.17.0.1"

    def run_and_collect(self, *, image: str, command: list[str] | None, environment: Mapping[str, str],
                        collect: str, into: Path, on_line: Callable[[str], None],
                        timeout: float) -> tuple[int, bool]:
        """Runs `image` to completion, streaming its output lines, then copies the directory
        `collect` out of the stopped container into `into` with get_archive (a bind mount
        would fight the image's non-root user over file ownership).

        Returns (exit status, whether `collect` existed). The container is always removed.
        """
        with self._finished_container(image, command, environment, on_line, timeout) as (container, status):
            return status, self._copy_out(container, collect, into)

    def run_and_copy_files(self, *, image: str, command: list[str], environment: Mapping[str, str],
                           files: Mapping[str, str], into: Path, on_line: Callable[[str], None],
                           timeout: float) -> tuple[int, set[str]]:
        """As run_and_collect, for single files: `files` maps a local name (in `into`) to an
        absolute path in the container. Returns (exit status, the local names copied).

        `environment` goes to the engine in the create call's JSON body over the API socket:
        never on a command line, never in an image layer (the container is removed after)."""
        with self._finished_container(image, command, environment, on_line, timeout) as (container, status):
            copied = {name for name, path in files.items() if self._copy_file(container, path, into / name)}
            return status, copied

    def working_dir(self, image: str) -> str:
        """The image's WORKDIR ("/" when it sets none)."""
        config = self.client.api.inspect_image(image).get("Config") or {}
        return config.get("WorkingDir") or "/"

    @contextlib.contextmanager
    def _finished_container(self, image: str, command: list[str] | None, environment: Mapping[str, str],
                            on_line: Callable[[str], None], timeout: float) -> Iterator[tuple[Any, int]]:
        """A container of `image` run to its end (killed after `timeout`, status 124), with its
        output streamed line by line; removed when the block ends."""
        import docker

        container = self.client.containers.create(image, command=command, environment=dict(environment),
                                                  detach=True, labels={"io.deployctl.role": "test"})
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            try:
                container.kill()
            except docker.errors.APIError:
                pass

        timer = threading.Timer(timeout, kill)
        try:
            container.start()
            timer.start()
            buffer = b""
            for chunk in container.logs(stream=True, follow=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    on_line(line.decode(errors="replace").rstrip("\r"))
            if buffer:
                on_line(buffer.decode(errors="replace"))
            status = container.wait().get("StatusCode", 1)
            if timed_out.is_set():
                on_line(f"[deployctl] killed after {timeout:.0f}s")
                status = 124
            yield container, status
        finally:
            timer.cancel()
            try:
                container.remove(force=True)
            except docker.errors.APIError:
                pass

    @staticmethod
    def _copy_file(container: Any, path: str, target: Path) -> bool:
        """Copies one regular file out of the container; False when there is none at `path`."""
        import docker

        try:
            stream, _ = container.get_archive(path)
        except docker.errors.NotFound:
            return False
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = next((m for m in tar.getmembers() if m.isfile()), None)
            source = tar.extractfile(member) if member is not None else None
            if source is None:
                return False  # a directory or a link, not the report file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read())
        return True

    @staticmethod
    def _copy_out(container: Any, path: str, into: Path) -> bool:
        import docker

        try:
            stream, _ = container.get_archive(path.rstrip("/") + "/.")
        except docker.errors.NotFound:
            return False
        data = io.BytesIO(b"".join(stream))
        into.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=into.parent) as tmp, tarfile.open(fileobj=data) as tar:
            tar.extractall(tmp, filter="data")  # "data": no absolute paths, links out, devices
            top = Path(tmp) / os.path.basename(path.rstrip("/"))
            source = top if top.is_dir() else Path(tmp)
            for item in source.iterdir():
                item.rename(into / item.name)
        return True
