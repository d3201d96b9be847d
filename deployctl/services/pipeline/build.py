"""`deployctl build`: every image deploy.toml names, built concurrently, recorded in the artifacts file."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ...plan.operate.hooks import PRE_BUILD, HookContext
from ..operate.hooks import HookRunner
from ...artifacts import Artifacts, ImageArtifact, read_artifacts, write_artifacts
from ...config.load import LoadedConfig
from ...errors import BuildError, ConfigError, ConnectError, DeployctlError
from ...events import Emit, serialized
from ...plan.pipeline.build import BuildArg, GitState, ImageBuild, check_tag, image_tag, plan_builds, rfc3339, select_images
from ...plan.pipeline.images import PROXY
from .build_image import MissingBaseImage, build_image


@dataclass(frozen=True)
class BuildRequest:
    artifacts_path: Path
    images: Sequence[str] = ()  # empty: all
    tag: str | None = None
    build_args: Sequence[BuildArg] = ()
    no_cache: bool = False
    jobs: int | None = None  # None: one worker per image
    test_images: bool = True
    exclude_from_git: Sequence[Path] = ()  # our own outputs, never part of the dirty hash
    hooks: bool = True  # False: --no-hooks (pre_build skipped, said as a warning)
    env_name: str = ""  # the environment a release builds for (DEPLOYCTL_ENV of pre_build)


@dataclass
class BuildResult:
    artifacts: Artifacts
    path: Path
    cached: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (cached steps, steps)


def label_time(git: GitState | None, environ: dict[str, str] | Any = os.environ) -> str:
    """`created` label: SOURCE_DATE_EPOCH, else the commit's time. Not the wall clock, so an
    unchanged tree yields the very same image id (and the same tag never names two images);
    the artifacts file records when the build actually ran."""
    epoch = environ.get("SOURCE_DATE_EPOCH", "")
    if epoch.isdigit():
        return rfc3339(int(epoch))
    return rfc3339(git.commit_time if git else time.time())


def build_images(loaded: LoadedConfig, request: BuildRequest, *, engine: Any, emit: Emit) -> BuildResult:
    from ...adapters.git import read_git_state

    names = select_images(loaded, request.images)
    git: GitState | None
    if request.tag is None:
        git = read_git_state(loaded.root, exclude=request.exclude_from_git)
        tag = image_tag(git)
    else:
        tag = check_tag(request.tag)
        try:  # labels still name the commit when there is one
            git = read_git_state(loaded.root, exclude=request.exclude_from_git)
        except DeployctlError:
            git = None
    plans = plan_builds(loaded, names, tag=tag, git=git, created=label_time(git),
                        build_args=request.build_args, test_images=request.test_images)
    _check_contexts(plans, list(loaded.config.accessories))
    # pre_build: before any image is built; a failure (or its timeout) stops the build, exit 5.
    HookRunner.for_config(loaded, emit, enabled=request.hooks).run(PRE_BUILD, HookContext(
        loaded.config.app, request.env_name, "build", tag, "", git.revision if git is not None else ""))

    emit = serialized(emit)
    started = time.time()
    results: dict[str, ImageArtifact] = {}
    cached: dict[str, tuple[int, int]] = {}
    failures: list[tuple[str, DeployctlError]] = []
    workers = max(1, min(request.jobs or len(plans), len(plans)))
    # A failed image lets the others finish: their outcome is reported, and their layers
    # land in the cache for the next attempt.
    # On Ctrl-C the workers stop reading their streams; closing a build's connection makes
    # the engine cancel that build, and images not started yet never start.
    cancel = threading.Event()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="build") as pool:
        futures = {plan.name: pool.submit(build_image, engine, plan, request.no_cache, emit, cancel)
                   for plan in plans}
        try:
            for name, future in futures.items():
                try:
                    results[name], cached[name] = future.result()
                except DeployctlError as exc:
                    failures.append((name, exc))
        except BaseException:
            cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    for _, exc in failures:
        if isinstance(exc, ConnectError):  # the engine went away: exit 4, not a build failure
            raise exc
    if failures:
        raise _build_failed(failures, len(plans))

    artifacts = Artifacts(app=loaded.config.app, revision=git.revision if git else None,
                          dirty=bool(git and git.dirty), tag=tag, created=rfc3339(started), images={})
    artifacts = _merge_previous(request.artifacts_path, artifacts)
    for name in names:
        artifacts = artifacts.with_image(name, results[name])
    write_artifacts(request.artifacts_path, artifacts)
    return BuildResult(artifacts, request.artifacts_path, cached)


def _build_failed(failures: Sequence[tuple[str, DeployctlError]], planned: int) -> BuildError:
    """One line for one failed image (`build failed: api: ...`), one per image for several.
    A missing base image says all there is to say in its line; other failures point at the
    failing step's output shown above."""
    hint = "; ".join(dict.fromkeys(exc.hint for _, exc in failures if exc.hint)) or None
    if hint is None and not all(isinstance(exc, MissingBaseImage) for _, exc in failures):
        hint = "the failing step's output is shown above; nothing was written to the artifacts file"
    if len(failures) == 1:
        name, exc = failures[0]
        return BuildError(f"build failed: {name}: {exc.message}", hint=hint)
    failed = ", ".join(name for name, _ in failures)
    return BuildError(f"{len(failures)} of {planned} images failed to build: {failed}\n"
                      + "\n".join(f"  {name}: {exc.message}" for name, exc in failures), hint=hint)


def _check_contexts(plans: Sequence[ImageBuild], accessories: Sequence[str] = ()) -> None:
    problems = []
    for plan in plans:
        key = ("proxy.context" if plan.name == PROXY else f"accessories.{plan.name}.build"
               if plan.name in accessories else f"services.{plan.name}.context")
        if not plan.context.is_dir():
            problems.append(f"{key}: {plan.context} is not a directory")
        elif not (plan.context / plan.dockerfile).is_file():
            problems.append(f"{key}: no {plan.dockerfile} in {plan.context}")
    if problems:
        raise ConfigError(problems)


def _merge_previous(path: Path, fresh: Artifacts) -> Artifacts:
    """A partial build (--service) of the same tag keeps the other images' entries, so
    `build -s backend` after a full build still leaves a complete, consistent file."""
    if not path.exists():
        return fresh
    try:
        previous = read_artifacts(path)
    except DeployctlError:
        return fresh  # unreadable: this build replaces it
    if (previous.app, previous.tag, previous.revision) != (fresh.app, fresh.tag, fresh.revision):
        return fresh
    return Artifacts(fresh.app, fresh.revision, fresh.dirty, fresh.tag, fresh.created, dict(previous.images))
