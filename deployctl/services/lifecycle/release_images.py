"""Which image each service (and the proxy) of a release runs, decided before any host is
touched: by digest for `ssh` targets (from the artifacts file, or resolved from the registry
for `--version TAG`), by image id for the `local` target (the image is already in the engine).

Accessories built from the project (`build = "context"`) get theirs the same way, kept apart
(`accessories`): they are not part of the release, and are only needed when one is booted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ...artifacts import Artifacts
from ...errors import ConfigError, DeployctlError
from ...plan.pipeline.images import PROXY, built_accessories, builtin_proxy_image, image_names, image_repository
from ...secrets import Secret
from ..env import Env


@dataclass(frozen=True)
class ReleaseImages:
    images: dict[str, str]  # service or "proxy" -> what `docker run` gets
    revision: str | None
    dirty: bool = False  # built from a working tree with uncommitted changes
    # built accessory -> what `docker run` gets; one missing from the artifacts file (or not
    # pushed, for ssh) is left out, and booting it then fails saying to build (and push).
    accessories: dict[str, str] = field(default_factory=dict)


def resolve_images(env: Env, artifacts: Artifacts | None, *, version: str | None = None,
                   registry_password: Secret | None = None, registry_username: str | None = None) -> ReleaseImages:
    config, environment = env.config, env.settings
    wanted = image_names(config)
    if version is not None and environment.target in ("ssh", "swarm"):
        from ...adapters.registry_api import manifest_digest

        registry = config.registry
        images = {}
        for name in wanted:
            repository = image_repository(config, name)
            username = registry_username or (registry.username if registry else None)
            digest = manifest_digest(repository, version, username=username, password=registry_password)
            images[name] = f"{repository}@{digest}"
        built = {}
        for name in built_accessories(config):
            try:
                digest = manifest_digest(image_repository(config, name), version, username=username,
                                         password=registry_password)
            except DeployctlError:
                continue  # only an error if the accessory must be booted (services/data/accessories.py)
            built[name] = f"{image_repository(config, name)}@{digest}"
        return ReleaseImages(images, version if _looks_like_revision(version) else None, accessories=built)
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
    return ReleaseImages(images, artifacts.revision, artifacts.dirty, accessory_images(env, artifacts))


def accessory_images(env: Env, artifacts: Artifacts | None) -> dict[str, str]:
    """Built accessory -> its image from the artifacts file: the image id on the `local`
    target, the pinned digest on `ssh` (absent until pushed). Env.with_accessory_images
    lays them over the accessories' config."""
    local = env.target == "local"
    out = {}
    for name in built_accessories(env.config):
        image = artifacts.images.get(name) if artifacts is not None else None
        if image is not None and (local or image.pinned):
            out[name] = image.image_id if local else image.pinned  # type: ignore[assignment]
    return out


def _looks_like_revision(text: str) -> bool:
    return len(text) >= 7 and all(c in "0123456789abcdef" for c in text[:7])


def proxy_image_for(config, images: ReleaseImages) -> str:  # type: ignore[no-untyped-def]
    """The project's own proxy image (built with the services), or the built-in one's."""
    if config.proxy.context is not None:
        return images.images[PROXY]
    return builtin_proxy_image(config.proxy)
