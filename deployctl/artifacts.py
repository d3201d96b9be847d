"""The artifacts file: what a build produced, handed from stage to stage (and machine to machine).

`deployctl build` writes it, `push` adds each image's digest, `test` and `deploy` read it
(`--artifacts FILE`), like `skaffold build --file-output` / `skaffold deploy -a`.
Small JSON with a format number; a reader refuses a format it does not know.

    {
      "format": 1,
      "app": "usersapp",
      "revision": "0123456789abcdef0123456789abcdef01234567",   # null if not built from git
      "dirty": false,
      "tag": "0123456789ab",
      "created": "2026-11-27T10:15:00Z",                         # when the build ran (UTC)
      "images": {
        "backend": {
          "repository": "registry.example.internal:5000/usersapp/backend",
          "tag": "0123456789ab",
          "image_id": "sha256:...",          # the local engine's id of the runtime image
          "digest": null,                    # "sha256:..." once pushed (the registry's manifest digest)
          "pinned": null,                    # "<repository>@sha256:..." once pushed: what deploy runs
          "test_image": {"reference": "...:0123456789ab-test", "image_id": "sha256:..."}  # or null
        },
        "frontend": {...},
        "proxy": {...}
      }
    }
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError, UsageError
from .release_ids import REVISION_RE

FORMAT = 1
DEFAULT_FILE = Path(".deployctl") / "build.json"


@dataclass(frozen=True)
class TestImage:
    reference: str
    image_id: str
    __test__ = False  # not a pytest test class despite the name


@dataclass(frozen=True)
class ImageArtifact:
    repository: str
    tag: str
    image_id: str
    digest: str | None = None
    test_image: TestImage | None = None

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def pinned(self) -> str | None:
        return f"{self.repository}@{self.digest}" if self.digest else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "tag": self.tag,
            "image_id": self.image_id,
            "digest": self.digest,
            "pinned": self.pinned,
            "test_image": None if self.test_image is None else {
                "reference": self.test_image.reference, "image_id": self.test_image.image_id},
        }


@dataclass(frozen=True)
class Artifacts:
    app: str
    revision: str | None
    dirty: bool
    tag: str
    created: str
    images: dict[str, ImageArtifact] = field(default_factory=dict)

    def with_image(self, name: str, image: ImageArtifact) -> "Artifacts":
        return replace(self, images={**self.images, name: image})

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "app": self.app,
            "revision": self.revision,
            "dirty": self.dirty,
            "tag": self.tag,
            "created": self.created,
            "images": {name: image.to_dict() for name, image in self.images.items()},
        }

    @classmethod
    def from_dict(cls, data: Any) -> "Artifacts":
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r} is not supported (this deployctl reads format {FORMAT})")
        images = {}
        for name, raw in _get(data, "images", dict).items():
            test = raw.get("test_image") if isinstance(raw, dict) else None
            where = f"images.{name}"
            images[name] = ImageArtifact(
                repository=_shaped(_get(raw, "repository", str, where), REPOSITORY_RE, f"{where}.repository",
                                   "an image repository"),
                tag=_shaped(_get(raw, "tag", str, where), TAG_RE, f"{where}.tag", "an image tag"),
                image_id=_shaped(_get(raw, "image_id", str, where), DIGEST_RE, f"{where}.image_id",
                                 "an image id (e.g. sha256:<hex>)"),
                digest=_shaped(_get(raw, "digest", (str, type(None)), where), DIGEST_RE, f"{where}.digest",
                               "a digest (e.g. sha256:<hex>)"),
                test_image=None if test is None else TestImage(
                    _shaped(_get(test, "reference", str, f"{where}.test_image"), REFERENCE_RE,
                            f"{where}.test_image.reference", "an image reference"),
                    _shaped(_get(test, "image_id", str, f"{where}.test_image"), DIGEST_RE,
                            f"{where}.test_image.image_id", "an image id (e.g. sha256:<hex>)")),
            )
        return cls(
            app=_get(data, "app", str),
            # The release id is made from it, and the id becomes container names and a
            # directory under the state root that is removed with `rm -rf`.
            revision=_shaped(_get(data, "revision", (str, type(None))), REVISION_RE, "revision",
                             "a git revision (7 to 64 hex digits)"),
            dirty=_get(data, "dirty", bool),
            tag=_shaped(_get(data, "tag", str), TAG_RE, "tag", "an image tag"),
            created=_get(data, "created", str),
            images=images,
        )


# What build.json's fields must look like before they reach `docker` argv, names or paths:
# the file travels between CI stages and machines, so it is input, not our own state.
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# An engine's image id or a registry digest (`sha256:...`); loosely, as engines differ, but
# never a leading '-', a '/' or a space.
DIGEST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+=-]*")
# host[:port]/path: lowercase path components; never starts with '-' (it would read as a flag).
REPOSITORY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*")
REFERENCE_RE = re.compile(rf"{REPOSITORY_RE.pattern}:{TAG_RE.pattern}")


def _shaped(value: str | None, pattern: re.Pattern[str], key: str, what: str) -> str | None:
    if value is not None and not pattern.fullmatch(value):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise ValueError(f"{key}: {shown} is not {what}")
    return value


def _get(data: Any, key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    if not isinstance(data, dict) or key not in data:
        raise ValueError(f"{where + '.' if where else ''}{key} is missing")
    if not isinstance(data[key], kind):
        raise ValueError(f"{where + '.' if where else ''}{key} has the wrong type")
    return data[key]


def write_artifacts(path: Path, artifacts: Artifacts) -> None:
    """Atomically: a reader (another stage) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(artifacts.to_dict(), handle, indent=2)
            handle.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_artifacts(path: Path, *, app: str | None = None) -> Artifacts:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no artifacts file", hint="run `deployctl build` first, or pass --artifacts FILE") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        artifacts = Artifacts.from_dict(json.loads(text))
    except (ValueError, AttributeError, TypeError) as exc:
        raise ConfigError([f"{path}: not a deployctl artifacts file: {exc}"],
                          hint="rebuild with `deployctl build` to write a fresh one") from None
    if app is not None and artifacts.app != app:
        raise ConfigError([f"{path}: built for app {artifacts.app!r}, but deploy.toml is for {app!r}"])
    return artifacts
