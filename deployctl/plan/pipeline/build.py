"""What `deployctl build` makes: image tags from git state, OCI labels, one spec per image.

Pure: the git adapter gathers the facts, this module decides. A tag is immutable by
construction: it names the commit, and a dirty tree adds a hash of its changes, so two
different trees can never be pushed under the same tag.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ...config.load import LoadedConfig
from ...config.models import ENV_NAME_RE
from ...config.problems import suggest
from ...errors import UsageError
from ..timestamps import rfc3339  # noqa: F401 - re-exported: the build's callers import it from here
from .images import PROXY, built_image_names, image_repository

REVISION_CHARS = 12
DIRTY_HASH_CHARS = 10
TEST_SUFFIX = "-test"
# Docker's tag grammar; the room for TEST_SUFFIX is kept so the test image's tag is valid too.
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,%d}\Z" % (127 - len(TEST_SUFFIX)))

OCI = "org.opencontainers.image"
APP_LABEL = "io.deployctl.app"
SERVICE_LABEL = "io.deployctl.service"


@dataclass(frozen=True)
class GitState:
    revision: str  # the full commit id of HEAD
    commit_time: int  # HEAD's committer time, seconds since the epoch
    dirty_hash: str | None = None  # hex digest of the changes; None for a clean tree
    source: str | None = None  # the `origin` remote's URL, if any

    @property
    def dirty(self) -> bool:
        return self.dirty_hash is not None


def fingerprint_changes(diff: bytes, untracked: Iterable[tuple[str, bytes]]) -> str | None:
    """A digest of everything that makes a tree differ from HEAD, or None when nothing does.

    `diff` is `git diff HEAD --binary` (staged and unstaged); `untracked` pairs each
    untracked path with its content. Paths are part of the digest so a renamed file counts.
    """
    files = sorted(untracked)
    if not diff and not files:
        return None
    digest = hashlib.sha256()
    digest.update(b"diff\0%d\0" % len(diff))
    digest.update(diff)
    for path, content in files:
        digest.update(b"file\0%s\0%d\0" % (path.encode(), len(content)))
        digest.update(content)
    return digest.hexdigest()


def image_tag(git: GitState) -> str:
    tag = git.revision[:REVISION_CHARS]
    if git.dirty_hash:
        tag += f"-dirty-{git.dirty_hash[:DIRTY_HASH_CHARS]}"
    return tag


def check_tag(tag: str) -> str:
    if not TAG_RE.match(tag):
        raise UsageError(
            f"--tag {tag!r} is not a valid image tag",
            hint=f"letters, digits, '_', '.' and '-', not starting with '.' or '-', at most {127 - len(TEST_SUFFIX)} characters",
        )
    return tag


def oci_labels(app: str, image: str, *, version: str, revision: str | None, created: str,
               source: str | None) -> dict[str, str]:
    """Labels every image carries, so `docker inspect` on any host says what it is."""
    labels = {
        f"{OCI}.version": version,
        f"{OCI}.created": created,
        f"{OCI}.title": f"{app}-{image}",
        APP_LABEL: app,
        SERVICE_LABEL: image,
    }
    if revision:
        labels[f"{OCI}.revision"] = revision
    if source:
        labels[f"{OCI}.source"] = source
    return labels


@dataclass(frozen=True)
class BuildArg:
    key: str
    value: str
    image: str | None = None  # None: every image


def parse_build_arg(text: str) -> BuildArg:
    """`KEY=VALUE` for every image, `IMAGE:KEY=VALUE` for one (e.g. `proxy:BASE_IMAGE=...`)."""
    name, sep, value = text.partition("=")
    image, colon, key = name.rpartition(":")
    if not sep or not ENV_NAME_RE.match(key) or (colon and not image):
        raise UsageError(f"--build-arg {text!r}: expected KEY=VALUE or IMAGE:KEY=VALUE")
    return BuildArg(key, value, image or None)


@dataclass(frozen=True)
class ImageBuild:
    """One image to build: the runtime target, and the test target after it if any."""

    name: str  # a service name or PROXY
    repository: str
    tag: str
    context: Path
    dockerfile: str
    target: str | None
    test_target: str | None
    build_args: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def test_reference(self) -> str | None:
        return f"{self.repository}:{self.tag}{TEST_SUFFIX}" if self.test_target else None


@dataclass(frozen=True)
class _AccessoryBuild:
    """An accessory's build keys in the shape of a service's (accessories.NAME.build)."""

    context: str
    dockerfile: str
    build_args: dict[str, str] = field(default_factory=dict)


def select_images(loaded: LoadedConfig, selected: Sequence[str]) -> list[str]:
    """The images to work on, in config order; unknown names fail with a suggestion."""
    names = built_image_names(loaded.config)
    for name in selected:
        if name not in names:
            raise UsageError(f"--service {name!r}: no such image (images: {', '.join(names)}){suggest(name, names)}")
    return [n for n in names if not selected or n in selected]


def plan_builds(loaded: LoadedConfig, names: Sequence[str], *, tag: str, git: GitState | None, created: str,
                build_args: Sequence[BuildArg] = (), test_images: bool = True) -> list[ImageBuild]:
    config = loaded.config
    for arg in build_args:
        if arg.image is not None and arg.image not in built_image_names(config):
            raise UsageError(f"--build-arg {arg.image}:{arg.key}: no image named {arg.image!r}")
    plans = []
    for name in names:
        if name == PROXY:
            spec, target, test_target = config.proxy, None, None
        elif name in config.accessories:  # `build = "context"`: its last stage, no build args, no tests
            accessory = config.accessories[name]
            spec, target, test_target = _AccessoryBuild(accessory.build or "", accessory.dockerfile), None, None
        else:
            service = config.services[name]
            # "" in deploy.toml means "none", as TOML has no null.
            spec, target = service, service.target or None
            test_target = (service.test_target or None) if test_images else None
        # deploy.toml first, then --build-arg for every image, then the image's own.
        args = dict(spec.build_args)
        args.update({a.key: a.value for a in build_args if a.image is None})
        args.update({a.key: a.value for a in build_args if a.image == name})
        labels = oci_labels(config.app, name, version=tag, created=created,
                            revision=git.revision if git else None, source=git.source if git else None)
        plans.append(ImageBuild(
            name=name,
            repository=image_repository(config, name),
            tag=tag,
            context=(loaded.root / spec.context).resolve(),
            dockerfile=spec.dockerfile,
            target=target,
            test_target=test_target,
            build_args=args,
            labels=labels,
        ))
    return plans
