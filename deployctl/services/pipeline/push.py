"""`deployctl push`: each built image to the registry, its digest recorded in the artifacts file."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from ...artifacts import Artifacts, ImageArtifact, read_artifacts, write_artifacts
from ...config.load import LoadedConfig
from ...config.models import Environment
from ...errors import ConnectError, DeployctlError, UsageError
from ...events import Emit, StepProgress, Timer, serialized
from .push_log import PushLog, classify
from .registry_auth import RegistryLogin, configured_registry, registry_login


@dataclass(frozen=True)
class Pushed:
    name: str
    pinned: str
    transferred: int  # layers whose bytes were sent
    existing: int  # layers the registry already had


@dataclass
class PushResult:
    artifacts: Artifacts
    pushed: list[Pushed] = field(default_factory=list)


def push_images(loaded: LoadedConfig, artifacts_path: Path, *, engine: Any, emit: Emit,
                images: Sequence[str] = (), environment: Environment | None = None) -> PushResult:
    registry = configured_registry(loaded.config)
    artifacts = read_artifacts(artifacts_path, app=loaded.config.app)
    names = _select(artifacts, images)
    for name in names:
        _check_local(engine, name, artifacts.images[name], registry.server)

    login = registry_login(loaded.config, environment)
    if login is not None:
        timer = Timer(emit, "login", detail=f"{login.username}@{login.server}")
        try:
            engine.login(login.server, login.username, login.password)
        except ConnectError as exc:
            timer.failed(exc.message)
            raise _registry_error(registry.server, exc.message) from None
        timer.done()

    emit = serialized(emit)
    outcomes: dict[str, Pushed] = {}
    failures: list[tuple[str, str]] = []
    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="push") as pool:
        futures = {name: pool.submit(_push_one, engine, name, artifacts.images[name], login, emit) for name in names}
        for name, future in futures.items():
            try:
                digest, outcomes[name] = future.result()
                # Recorded only once the registry has confirmed the manifest's digest.
                artifacts = artifacts.with_image(name, replace(artifacts.images[name], digest=digest))
            except DeployctlError as exc:
                failures.append((name, exc.message))
    if outcomes:
        write_artifacts(artifacts_path, artifacts)
    if failures:
        summary = "\n".join(f"  {n}: {m}" for n, m in failures)
        raise _registry_error(registry.server, failures[0][1],
                              summary=f"{len(failures)} of {len(names)} images were not pushed:\n{summary}")
    return PushResult(artifacts, [outcomes[n] for n in names])


def _select(artifacts: Artifacts, images: Sequence[str]) -> list[str]:
    for name in images:
        if name not in artifacts.images:
            raise UsageError(f"--service {name!r}: not in the artifacts file (built: {', '.join(artifacts.images)})")
    names = [n for n in artifacts.images if not images or n in images]
    if not names:
        raise UsageError("the artifacts file lists no images", hint="run `deployctl build` first")
    return names


def _check_local(engine: Any, name: str, image: ImageArtifact, server: str) -> None:
    if not image.repository.startswith(server + "/"):
        raise UsageError(f"{name}: built as {image.repository}, but deploy.toml's registry is {server}",
                         hint="rebuild with `deployctl build` so images are named for this registry")
    if engine.image_id(image.reference) != image.image_id:
        raise UsageError(f"{name}: {image.reference} on this engine is not the image the artifacts file records",
                         hint="run `deployctl build` on this machine before `deployctl push`")


def _registry_error(server: str, cause: str, *, summary: str | None = None) -> ConnectError:
    """One ConnectError (exit 4) whose first words say what the user should check."""
    kind = classify(cause)
    if kind == "unreachable":
        head, hint = (f"cannot reach the registry {server}",
                      "check registry.server, and that the registry is up and reachable from the Docker engine")
    elif kind == "refused":
        head, hint = (f"the registry {server} refused the credentials",
                      "check registry.username and the secret named by registry.password_secret")
    else:
        head, hint = f"pushing to {server} failed", None
    return ConnectError(f"{head}: {cause}" if summary is None else f"{head}; {summary}", hint=hint)


def _push_one(engine: Any, name: str, image: ImageArtifact, login: RegistryLogin | None,
              emit: Emit) -> tuple[str, Pushed]:
    timer = Timer(emit, "push", service=name, detail=image.reference)
    log = PushLog()
    try:
        for chunk in engine.push(image.repository, image.tag, login.auth_config() if login else None):
            line = log.feed(chunk)
            if line:
                emit(StepProgress("push", line, log.done, len(log.layers), service=name))
    except DeployctlError as exc:
        timer.failed(exc.message)
        raise
    if log.error or not log.digest:
        message = log.error or "the engine finished the push without reporting a digest"
        timer.failed(message)
        raise ConnectError(message)
    pinned = f"{image.repository}@{log.digest}"
    timer.done(f"{log.digest[:19]}: {log.summary()}")
    return log.digest, Pushed(name, pinned, log.transferred, log.already_there)
