"""Image names. One place decides them so build, push and deploy always agree."""

from __future__ import annotations

import os
from typing import Mapping

from ...config.models import Config, Proxy

PROXY = "proxy"  # the name the nginx image is built and recorded under, beside the services


def configured_image(image: str, image_env: str | None, environ: Mapping[str, str] | None = None) -> str:
    """`image`, or the value of the variable `image_env` names when that is set: where the
    official image cannot be pulled, a stand-in is passed without editing deploy.toml."""
    environ = os.environ if environ is None else environ
    if image_env and environ.get(image_env):
        return environ[image_env]
    return image


def builtin_proxy_image(proxy: Proxy, environ: Mapping[str, str] | None = None) -> str:
    return configured_image(proxy.image, proxy.image_env, environ)


def scheduler_image(config: Config, environ: Mapping[str, str] | None = None) -> str:
    return configured_image(config.scheduler.image, config.scheduler.image_env, environ)


def image_names(config: Config) -> list[str]:
    """Every image deployctl builds: the services in config order, then the proxy when the
    project builds its own (the built-in proxy runs the configured nginx image)."""
    return [*config.services, *([PROXY] if config.proxy.context is not None else [])]


def built_accessories(config: Config) -> list[str]:
    """Accessories whose image is built from the project (`build = "context"`), config order."""
    return [name for name, accessory in config.accessories.items() if accessory.build is not None]


def built_image_names(config: Config) -> list[str]:
    """Every image `deployctl build` makes (and `push` pushes): a release's images, then the
    accessories built from the project. Recorded in the artifacts file under their names,
    which cannot clash: config validation keeps accessory names apart from services and
    "proxy". Not part of a release (image_names): a deploy boots an absent accessory with its
    image, but never recreates a running one."""
    return [*image_names(config), *built_accessories(config)]


def image_repository(config: Config, name: str) -> str:
    """`server/namespace/name` with a registry, else `app/name` (local engine only)."""
    if config.registry is None:
        return f"{config.app}/{name}"
    parts = [config.registry.server, config.registry.namespace.strip("/"), name]
    return "/".join(p for p in parts if p)
