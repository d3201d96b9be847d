"""Which image each service (and the proxy) of a release runs, decided before any host is
touched: by digest for `ssh` targets (from the artifacts file, or resolved from the registry
for `--version TAG`), by image id for the `local` target (the image is already in the engine).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..artifacts import Artifacts
from ..config import LoadedConfig
from ..errors import ConfigError
from ..plan.images import image_names, image_repository
from ..secrets import Secret


@dataclass(frozen=True)
class ReleaseImages:
    images: dict[str, str]  # service or "proxy" -> what `docker run` gets
    revision: str | None
    dirty: bool = False  # built from a working tree with uncommitted changes


def resolve_images(loaded: LoadedConfig, env_name: str, artifacts: Artifacts | None, *,
                   version: str | None = None, registry_password: Secret | None = None,
                   registry_username: str | None = None) -> ReleaseImages:
    config, environment = loaded.config, loaded.environment(env_name)
    wanted = image_names(config)
    if version is not None and environment.target == "ssh":
        from ..adapters.registry_api import manifest_digest

        registry = config.registry
        images = {}
        for name in wanted:
            repository = image_repository(config, name)
            username = registry_username or (registry.username if registry else None)
            digest = manifest_digest(repository, version, username=username, password=registry_password)
            images[name] = f"{repository}@{digest}"
        return ReleaseImages(images, version if _looks_like_revision(version) else None)
    if artifacts is None:
        raise ConfigError(["no artifacts file to deploy from"],
                          hint="run `deployctl build` (and `push` for ssh targets), or pass --version TAG")
    missing = [n for n in wanted if n not in artifacts.images]
    if missing:
        raise ConfigError([f"the artifacts file has no image for {name!r}" for name in missing],
                          hint="rebuild every image with `deployctl build`")
    images = {}
    for name in wanted:
        image = artifacts.images[name]
        if environment.target == "local":
            images[name] = image.image_id
        elif image.pinned is None:
            raise ConfigError([f"image {name!r} has no registry digest in the artifacts file"],
                              hint="run `deployctl push` first: ssh hosts pull images by digest")
        else:
            images[name] = image.pinned
    return ReleaseImages(images, artifacts.revision, artifacts.dirty)


def _looks_like_revision(text: str) -> bool:
    return len(text) >= 7 and all(c in "0123456789abcdef" for c in text[:7])
