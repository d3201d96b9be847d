"""A release as a snapshot: everything needed to put it back on a host, recorded with it.

Deploy builds a `ReleaseSpec` from deploy.toml; the history keeps it (`spec` in the release
record); rollback reads it back from the record instead of from today's deploy.toml, so a
renamed service, a moved port or a changed health check cannot break a rollback to
yesterday's release. Nothing secret is in it: env values that use `{{ secret.* }}` live
only in the containers (from an env file of mode 0600), never here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ...config.models import Config, HealthCheck, Proxy
from .names import Names

SPEC_VERSION = 1


@dataclass(frozen=True)
class HealthProbe:
    """How the switch knows a container is ready: kind http | tcp | command | docker | running."""

    container: str
    service: str
    kind: str
    port: int
    path: str = ""
    command: tuple[str, ...] = ()
    timeout: float = 30.0
    interval: float = 0.25
    grace: float = 0.0  # running: seconds the container must stay up

    def describe(self) -> str:
        what = {
            "http": f"GET http://<{self.container} ip>:{self.port}{self.path} answers 200",
            "tcp": f"<{self.container} ip>:{self.port} accepts a TCP connection",
            "command": f"docker exec {self.container} {' '.join(self.command)} exits 0",
            "docker": f"the image's HEALTHCHECK reports {self.container} healthy",
            "running": f"{self.container} still runs {self.grace:g}s after it started (no exit, no restart)",
        }[self.kind]
        return f"{what} (every {self.interval:g}s, up to {self.timeout:g}s)"


@dataclass(frozen=True)
class ServiceSpec:
    service: str
    container: str
    image: str
    port: int
    routed: bool
    health: HealthProbe
    verify_path: str | None = None
    worker: bool = False  # no port, never routed (port is 0)
    stop_first: bool = False  # the previous release's stops before this one starts


@dataclass(frozen=True)
class ProxySpec:
    """The proxy this release was deployed behind: the image and the settings its nginx
    configuration is rendered from (plan/edge/proxy_config.py)."""

    image: str
    custom: bool  # built from the project's own context (an extension of the built-in config)
    listen_port: int = 80
    health_path: str = "/nginx-health"
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_body_size: str = "1m"


@dataclass(frozen=True)
class ReleaseSpec:
    release: str
    revision: str | None
    dirty: bool
    network: str  # the release's own network: its services find each other by name there
    services: tuple[ServiceSpec, ...]
    proxy: ProxySpec
    version: int = SPEC_VERSION

    @property
    def routed(self) -> ServiceSpec:
        return next(s for s in self.services if s.routed)

    @property
    def containers(self) -> list[str]:
        return [s.container for s in self.services]

    @property
    def stop_first(self) -> list[str]:
        """The services whose previous release's container stops before this one starts."""
        return [s.service for s in self.services if s.stop_first]

    @property
    def workers(self) -> list[str]:
        return [s.service for s in self.services if s.worker]

    def probes(self) -> list[HealthProbe]:
        return [s.health for s in self.services]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ReleaseSpec":
        services = tuple(
            ServiceSpec(**{**s, "health": HealthProbe(**{**s["health"], "command": tuple(s["health"]["command"])})})
            for s in data["services"]
        )
        return cls(release=data["release"], revision=data.get("revision"), dirty=bool(data.get("dirty")),
                   network=data["network"], services=services, proxy=ProxySpec(**data["proxy"]),
                   version=data.get("version", SPEC_VERSION))


def health_probe(container: str, service: str, port: int, check: HealthCheck) -> HealthProbe:
    return HealthProbe(container=container, service=service, kind=check.kind, port=port,
                       path=check.path if check.kind == "http" else "",
                       command=tuple(check.command or ()), timeout=check.timeout, interval=check.interval,
                       grace=check.grace if check.kind == "running" else 0.0)


def proxy_spec(proxy: Proxy, image: str) -> ProxySpec:
    return ProxySpec(image=image, custom=proxy.context is not None, listen_port=proxy.port,
                     health_path=proxy.healthcheck, connect_timeout=proxy.connect_timeout,
                     read_timeout=proxy.read_timeout, max_body_size=proxy.max_body_size)


def release_spec(config: Config, env_name: str, release: str, revision: str | None, images: dict[str, str],
                 proxy_image: str, *, dirty: bool = False) -> ReleaseSpec:
    names = Names(config.app, env_name)
    services = []
    for name, service in config.services.items():
        container = names.container(name, release)
        port = 0 if service.worker else service.port
        services.append(ServiceSpec(
            service=name, container=container, image=images[name], port=port, routed=service.routed,
            health=health_probe(container, name, port, service.health),
            verify_path=service.verify_path, worker=service.worker, stop_first=service.stop_first,
        ))
    return ReleaseSpec(release=release, revision=revision, dirty=dirty, network=names.release_network(release),
                       services=tuple(services), proxy=proxy_spec(config.proxy, proxy_image))
