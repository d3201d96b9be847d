"""What each container of a release is: image, environment, secret mounts, health check.

Pure: config + release facts in, `ContainerSpec`s out. The environment is the service's
plain env with the environment's env laid over it, `{{ svc.url }}` placeholders resolved to
the *same release's* container, `<NAME>_FILE` for each secret, and the release identity
(DEPLOYCTL_RELEASE, for an app that wants to show it). Variables whose values use
`{{ secret.NAME }}` are kept apart: they go to an env file, never onto the argv.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from ...config.models import PLACEHOLDER_RE, Config, Environment
from ..data.accessories import container_name as accessory_container
from .env_values import split_env
from ..cloud.hardening import Hardening, hardening_for
from .names import LABEL_WORKER, SECRETS_MOUNT, Names, StateLayout

RELEASE_ENV = "DEPLOYCTL_RELEASE"
REVISION_ENV = "DEPLOYCTL_REVISION"


@dataclass(frozen=True)
class ContainerSpec:
    service: str
    name: str
    image: str  # repo@sha256:... (ssh) or sha256:<image id> (local)
    port: int
    health_path: str
    env: dict[str, str]
    secrets: tuple[str, ...] = ()
    secrets_dir: str = ""  # on the host; each secret is a file in it, mounted read-only
    routed: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    # Variables whose values use {{ secret.NAME }}, unrendered; rendered only into env_file.
    secret_env: dict[str, str] = field(default_factory=dict)
    env_file: str = ""  # on the host, mode 0600; empty when no variable uses a secret
    hardening: Hardening | None = None  # least privilege and limits (None: none, as before them)
    command: tuple[str, ...] = ()  # after the image: overrides its CMD (empty: the image's own)

    def secret_mounts(self) -> list[tuple[str, str]]:
        """(host file, container file) per secret."""
        return [(posixpath.join(self.secrets_dir, s), f"{SECRETS_MOUNT}/{s}") for s in self.secrets]


def resolve_placeholders(value: str, names: Names, release: str, config: Config) -> str:
    """A service resolves to its container *of this release*; an accessory (not part of any
    release) to its one container per environment (plan/data/accessories.py)."""
    def replace(match) -> str:  # type: ignore[no-untyped-def]
        ref, part = match.group(1), match.group(2)
        if ref in config.services:
            host, port = names.container(ref, release), config.services[ref].port
        else:
            host, port = accessory_container(names, ref), config.accessories[ref].port
        url = f"http://{host}:{port}" if port else f"http://{host}"
        return {"host": host, "port": str(port), "url": url}[part]

    return PLACEHOLDER_RE.sub(replace, value)


def container_env(config: Config, environment: Environment, service: str, names: Names,
                  release: str, revision: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, secret_env): the variables shown on `docker create`, and those whose values
    use a secret (still templates; only the env file on the host holds them rendered)."""
    spec = config.services[service]
    env = {**spec.env, **environment.env}
    env = {k: resolve_placeholders(v, names, release, config) for k, v in env.items()}
    plain, secret_env = split_env(env)
    for secret in spec.secrets:
        plain[f"{secret}_FILE"] = f"{SECRETS_MOUNT}/{secret}"
    plain[RELEASE_ENV] = release
    plain[REVISION_ENV] = revision or "unknown"
    return plain, secret_env


def release_containers(config: Config, environment: Environment, env_name: str, release: str,
                       revision: str | None, images: dict[str, str],
                       layout: StateLayout | None = None) -> list[ContainerSpec]:
    """The release's containers in config order (dependencies are expressed by URL, not order)."""
    names = Names(config.app, env_name)
    layout = layout or StateLayout(environment.state_dir, config.app, env_name)
    specs = []
    for service, spec in config.services.items():
        env, secret_env = container_env(config, environment, service, names, release, revision)
        specs.append(ContainerSpec(
            service=service,
            name=names.container(service, release),
            image=images[service],
            port=spec.port,
            health_path=spec.healthcheck.path,
            env=env,
            secrets=tuple(spec.secrets),
            secrets_dir=layout.service_secrets(release, service),
            routed=spec.routed,
            labels={**names.labels("service", release, service), **({LABEL_WORKER: "true"} if spec.worker else {})},
            secret_env=secret_env,
            env_file=layout.env_file(release, service) if secret_env else "",
            hardening=hardening_for(spec),
            command=tuple(spec.command or ()),
        ))
    return specs
