"""Accessories as data: container and volume names, where their secrets live on a host, and
every `docker` argv that boots, checks, stops or removes one (executed by services/accessories.py).

An accessory is not part of a release: one container per environment and host, named
`<app>-<env>-<name>`, on the app's network so services reach it by that name (or by
`{{ NAME.host }}` in env), its data in named volumes `<app>-<env>-<name>-<volume>` that
outlive the container. Secrets are files mounted read-only, exactly as for services.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ..config.models import Accessory, Config
from .images import configured_image
from .names import LABEL_APP, LABEL_ENV, LABEL_ROLE, SECRETS_MOUNT, Names, StateLayout

ROLE = "accessory"
LABEL_ACCESSORY = "io.deployctl.accessory"
STOP_TIMEOUT = 30  # a database gets longer than a web process to flush and shut down cleanly


def container_name(names: Names, accessory: str) -> str:
    return f"{names.prefix}-{accessory}"


def volume_name(names: Names, accessory: str, volume: str) -> str:
    return f"{names.prefix}-{accessory}-{volume}"


def secrets_dir(layout: StateLayout, accessory: str) -> str:
    return posixpath.join(layout.root, "accessories", accessory, "secrets")


def image_for(accessory: Accessory, environ: Mapping[str, str] | None = None) -> str:
    """`image`, or the value of the variable `image_env` names when that is set."""
    return configured_image(accessory.image or "", accessory.image_env, environ)


@dataclass(frozen=True)
class AccessorySpec:
    name: str  # the accessory's name in deploy.toml
    container: str
    image: str
    env: dict[str, str]
    volumes: tuple[tuple[str, str], ...]  # (volume name, path inside)
    secrets: tuple[str, ...]
    secrets_dir: str
    command: tuple[str, ...]
    health_command: tuple[str, ...] | None
    health_interval: float
    health_timeout: float
    labels: dict[str, str] = field(default_factory=dict)

    def secret_mounts(self) -> list[tuple[str, str]]:
        return [(posixpath.join(self.secrets_dir, s), f"{SECRETS_MOUNT}/{s}") for s in self.secrets]


def labels(names: Names, accessory: str) -> dict[str, str]:
    return {LABEL_APP: names.app, LABEL_ENV: names.env, LABEL_ROLE: ROLE, LABEL_ACCESSORY: accessory}


def accessory_spec(config: Config, env_name: str, accessory: str, layout: StateLayout,
                   environ: Mapping[str, str] | None = None) -> AccessorySpec:
    names = Names(config.app, env_name)
    spec = config.accessories[accessory]
    env = dict(spec.env)
    for secret in spec.secrets:  # as for services: <NAME>_FILE says where the file is
        env.setdefault(f"{secret}_FILE", f"{SECRETS_MOUNT}/{secret}")
    volumes = tuple((volume_name(names, accessory, source), path)
                    for source, path in (v.split(":", 1) for v in spec.volumes))
    return AccessorySpec(
        name=accessory,
        container=container_name(names, accessory),
        image=image_for(spec, environ),
        env=env,
        volumes=volumes,
        secrets=tuple(spec.secrets),
        secrets_dir=secrets_dir(layout, accessory),
        command=tuple(spec.command or ()),
        health_command=tuple(spec.healthcheck.command) if spec.healthcheck.command else None,
        health_interval=spec.healthcheck.interval,
        health_timeout=spec.healthcheck.timeout,
        labels=labels(names, accessory),
    )


def environment_accessories(config: Config, env_name: str, layout: StateLayout,
                            environ: Mapping[str, str] | None = None) -> list[AccessorySpec]:
    """The accessories an environment lists, in its order."""
    return [accessory_spec(config, env_name, name, layout, environ)
            for name in config.environments[env_name].accessories]


def _labels(values: Mapping[str, str]) -> list[str]:
    return [arg for k, v in sorted(values.items()) for arg in ("--label", f"{k}={v}")]


def volume_create(spec: AccessorySpec, volume: str) -> list[str]:
    """Idempotent: creating a volume that exists leaves it (and its data) as it is."""
    return ["docker", "volume", "create", *_labels(spec.labels), volume]


def run(spec: AccessorySpec, network: str) -> list[str]:
    """No published port: only containers on the app's network reach it. `unless-stopped`
    brings it back after the engine restarts; `accessory stop` keeps it stopped."""
    return [
        "docker", "run", "--detach", "--name", spec.container, "--network", network,
        "--restart", "unless-stopped", "--log-opt", "max-size=10m",
        "--stop-timeout", str(STOP_TIMEOUT),
        *_labels(spec.labels),
        *[arg for k, v in sorted(spec.env.items()) for arg in ("-e", f"{k}={v}")],
        *[arg for volume, path in spec.volumes for arg in ("-v", f"{volume}:{path}")],
        *[arg for host, inside in spec.secret_mounts() for arg in ("-v", f"{host}:{inside}:ro")],
        spec.image, *spec.command,
    ]


def health(spec: AccessorySpec) -> list[str] | None:
    return ["docker", "exec", spec.container, *spec.health_command] if spec.health_command else None


# name|status|image as configured|health (Docker's own HEALTHCHECK, if the image has one)|started.
# `index`: recent engines fail the whole template on `.State.Health` when an image has none.
STATE_FORMAT = ("{{.Name}}|{{.State.Status}}|{{.Config.Image}}|"
                '{{with index .State "Health"}}{{.Status}}{{end}}|{{.State.StartedAt}}|{{.Id}}')


def inspect(containers: Sequence[str]) -> list[str]:
    return ["docker", "container", "inspect", "--format", STATE_FORMAT, *containers]


def start(spec: AccessorySpec) -> list[str]:
    return ["docker", "start", spec.container]


def stop(spec: AccessorySpec) -> list[str]:
    return ["docker", "stop", "--time", str(STOP_TIMEOUT), spec.container]


def remove(spec: AccessorySpec) -> list[str]:
    """Only the container; its named volumes are removed separately and only on request."""
    return ["docker", "rm", "--force", spec.container]


def volume_remove(volumes: Sequence[str]) -> list[str]:
    return ["docker", "volume", "rm", *volumes]


def logs(spec: AccessorySpec, lines: int, follow: bool = False) -> list[str]:
    return ["docker", "logs", "--tail", str(lines), *(["--follow"] if follow else []), spec.container]


def planned_steps(config: Config, env_name: str, layout: StateLayout,
                  environ: Mapping[str, str] | None = None) -> list:  # list[PlannedStep]
    """What `deploy --dry-run` shows for the environment's accessories: each is booted only
    when absent (started when stopped), before the release is touched."""
    from .dry_run import PlannedStep

    names = Names(config.app, env_name)
    steps = []
    for spec in environment_accessories(config, env_name, layout, environ):
        for host_file, _ in spec.secret_mounts():
            steps.append(PlannedStep("accessory", f"{spec.name}: write {host_file} (mode 0600), only if absent"))
        for volume, _ in spec.volumes:
            steps.append(PlannedStep("accessory", f"{spec.name}: only if absent", tuple(volume_create(spec, volume))))
        steps.append(PlannedStep("accessory", f"{spec.name}: only if absent (a stopped one is started)",
                                 tuple(run(spec, names.network))))
        probe = health(spec)
        if probe:
            steps.append(PlannedStep("accessory", f"{spec.name}: until it exits 0 (timeout {spec.health_timeout:g}s)",
                                     tuple(probe)))
    return steps
