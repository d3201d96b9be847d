"""Image names. One place decides them so build, push and deploy always agree."""

from __future__ import annotations

from ..config.models import Config

PROXY = "proxy"  # the name the nginx image is built and recorded under, beside the services


def image_names(config: Config) -> list[str]:
    """Every image deployctl builds: the services in config order, then the proxy."""
    return [*config.services, PROXY]


def image_repository(config: Config, name: str) -> str:
    """`server/namespace/name` with a registry, else `app/name` (local engine only)."""
    if config.registry is None:
        return f"{config.app}/{name}"
    parts = [config.registry.server, config.registry.namespace.strip("/"), name]
    return "/".join(p for p in parts if p)
