"""Accessories as data: container and volume names, where their secrets live on a host, and
every `docker` argv that boots, checks, stops or removes one (executed by services/data/accessories.py).

An accessory is not part of a release: one container per environment and host, named
`<app>-<env>-<name>`, on the app's network under that name and under the alias NAME (as
docker-compose does), so services reach it as `db` or by `{{ NAME.host }}` in env; its data
in named volumes `<app>-<env>-<name>-<volume>` that outlive the container.

On the host, everything of one accessory lives under `<state root>/accessories/<name>/`:
`secrets/` (files mounted read-only, as for services but readable by every user in the
container: SECRET_FILE_MODE), `env` (the env values that
use `{{ secret.NAME }}`, rendered, mode 0600, read by `docker run --env-file`) and `files/`
(the project files of `files = [...]`, mounted read-only at their path in the container).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ...config.models import Accessory, Config
from ..lifecycle.env_values import refs_in, split_env
from ..pipeline.images import configured_image
from ..lifecycle.names import LABEL_APP, LABEL_ENV, LABEL_ROLE, SECRETS_MOUNT, Names, StateLayout

ROLE = "accessory"
LABEL_ACCESSORY = "io.deployctl.accessory"
STOP_TIMEOUT = 30  # a database gets longer than a web process to flush and shut down cleanly
# Files of `files = [...]` are configuration, not secrets (those are `secrets` or env
# templates): world-readable so the container's own user (mysql, say) can read them.
FILE_MODE = 0o644
# An accessory's secret files are readable by every user IN its container (as Swarm mounts
# its secrets, 0444, and Kubernetes 0644): the official database images (postgres, mariadb,
# mysql) start as root and drop to their own user (gosu) BEFORE they read *_FILE, so a root
# image's 0600 file handed to nobody could not be read. Outside the container the files stay
# private: each is bind-mounted alone, and its folder and every parent up to the state root
# are 0700 (services/data/accessories.py _prepare_dir).
SECRET_FILE_MODE = 0o444


def container_name(names: Names, accessory: str) -> str:
    return f"{names.prefix}-{accessory}"


def volume_name(names: Names, accessory: str, volume: str) -> str:
    return f"{names.prefix}-{accessory}-{volume}"


def accessory_dir(layout: StateLayout, accessory: str) -> str:
    return posixpath.join(layout.root, "accessories", accessory)


def secrets_dir(layout: StateLayout, accessory: str) -> str:
    return posixpath.join(accessory_dir(layout, accessory), "secrets")


def env_file_path(layout: StateLayout, accessory: str) -> str:
    return posixpath.join(accessory_dir(layout, accessory), "env")


def files_dir(layout: StateLayout, accessory: str) -> str:
    return posixpath.join(accessory_dir(layout, accessory), "files")


def file_mounts(layout: StateLayout, accessory: str, files: Sequence[str]) -> tuple["FileMount", ...]:
    """`local:/in/container` -> where the file lands on the host: under files/, at its path
    in the container (unique per accessory: config validation forbids two mounts at one path)."""
    mounts = []
    for index, entry in enumerate(files):
        local, inside = entry.split(":", 1)
        host = posixpath.join(files_dir(layout, accessory), inside.lstrip("/"))
        if posixpath.normpath(host) != host or not host.startswith(files_dir(layout, accessory) + "/"):
            # config validation refuses such a path; this keeps the upload inside files/ regardless
            raise ValueError(f"accessories.{accessory}.files[{index}]: {inside!r} leaves the accessory's files folder")
        mounts.append(FileMount(f"accessories.{accessory}.files[{index}]", local, host, inside))
    return tuple(mounts)


def image_for(accessory: Accessory, environ: Mapping[str, str] | None = None) -> str:
    """`image`, or the value of the variable `image_env` names when that is set. An accessory
    built from the project has no image until a deploy lays the built one over its config
    (services/env.py: Env.with_accessory_images): then "" here."""
    return configured_image(accessory.image or "", accessory.image_env, environ)


@dataclass(frozen=True)
class FileMount:
    key: str  # accessories.NAME.files[i], for messages
    local: str  # as written in deploy.toml, relative to its folder
    host: str  # where it is uploaded on the host
    inside: str  # where the container sees it (read-only)


@dataclass(frozen=True)
class AccessorySpec:
    name: str  # the accessory's name in deploy.toml
    container: str
    image: str  # "" for a built accessory whose image is not known (no artifacts file)
    env: dict[str, str]  # plain values: `-e K=V`, shown anywhere
    volumes: tuple[tuple[str, str], ...]  # (volume name, path inside)
    secrets: tuple[str, ...]
    secrets_dir: str
    command: tuple[str, ...]
    health_command: tuple[str, ...] | None
    health_interval: float
    health_timeout: float
    labels: dict[str, str] = field(default_factory=dict)
    # Values that use {{ secret.NAME }}, as templates: rendered only into `env_file` (0600).
    env_templates: dict[str, str] = field(default_factory=dict)
    env_file: str = ""
    files: tuple[FileMount, ...] = ()
    build: str | None = None  # accessories.NAME.build: the image comes from `deployctl build`
    network: str = ""  # the app network it joins (under `alias`)

    @property
    def alias(self) -> str:
        """What the app's containers call it on the app network: its name in deploy.toml."""
        return self.name

    def secret_names(self) -> list[str]:
        """Every secret a boot needs: the mounted files, then those the env values use."""
        return list(dict.fromkeys([*self.secrets, *refs_in(self.env_templates.values())]))

    def secret_mounts(self) -> list[tuple[str, str]]:
        return [(posixpath.join(self.secrets_dir, s), f"{SECRETS_MOUNT}/{s}") for s in self.secrets]


def labels(names: Names, accessory: str) -> dict[str, str]:
    return {LABEL_APP: names.app, LABEL_ENV: names.env, LABEL_ROLE: ROLE, LABEL_ACCESSORY: accessory}


def accessory_spec(config: Config, env_name: str, accessory: str, layout: StateLayout,
                   environ: Mapping[str, str] | None = None) -> AccessorySpec:
    names = Names(config.app, env_name)
    spec = config.accessories[accessory]
    env, templated = split_env(spec.env)
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
        env_templates=templated,
        env_file=env_file_path(layout, accessory),
        files=file_mounts(layout, accessory, spec.files),
        build=spec.build,
        network=names.network,
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


def run(spec: AccessorySpec, network: str, *, alias: bool = True, restart: str = "unless-stopped") -> list[str]:
    """No published port: only containers on the app's network reach it, by its container
    name or its deploy.toml name (the alias). `unless-stopped` brings it back after the
    engine restarts; `accessory stop` keeps it stopped. Env values with a secret come from
    the 0600 env file, never from this argv."""
    return [
        "docker", "run", "--detach", "--name", spec.container, "--network", network,
        *(["--network-alias", spec.alias] if alias else []),
        "--restart", restart, "--log-opt", "max-size=10m",
        "--stop-timeout", str(STOP_TIMEOUT),
        *_labels(spec.labels),
        *[arg for k, v in sorted(spec.env.items()) for arg in ("-e", f"{k}={v}")],
        *(["--env-file", spec.env_file] if spec.env_templates else []),
        *[arg for volume, path in spec.volumes for arg in ("-v", f"{volume}:{path}")],
        *[arg for host, inside in spec.secret_mounts() for arg in ("-v", f"{host}:{inside}:ro")],
        *[arg for f in spec.files for arg in ("-v", f"{f.host}:{f.inside}:ro")],
        spec.image, *spec.command,
    ]


def health(spec: AccessorySpec) -> list[str] | None:
    return ["docker", "exec", spec.container, *spec.health_command] if spec.health_command else None


# name|status|image as configured|health (Docker's own HEALTHCHECK, if the image has one)|started|id|
# last exit code|restarts by its restart policy|networks with their aliases (`net=a,b;`).
# `index`: recent engines fail the whole template on `.State.Health` when an image has none.
STATE_FORMAT = ("{{.Name}}|{{.State.Status}}|{{.Config.Image}}|"
                '{{with index .State "Health"}}{{.Status}}{{end}}|{{.State.StartedAt}}|{{.Id}}|'
                "{{.State.ExitCode}}|{{.RestartCount}}|"
                '{{range $net, $ep := .NetworkSettings.Networks}}{{$net}}={{range $ep.Aliases}}{{.}},{{end}};{{end}}')


def parse_aliases(field: str) -> dict[str, list[str]]:
    """The last STATE_FORMAT field -> network -> its aliases."""
    out = {}
    for part in field.strip().split(";"):
        if "=" in part:
            net, _, aliases = part.partition("=")
            out[net] = [a for a in aliases.split(",") if a]
    return out


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
    from ..lifecycle.steps import PlannedStep

    names = Names(config.app, env_name)
    steps = []
    for spec in environment_accessories(config, env_name, layout, environ):
        for host_file, _ in spec.secret_mounts():
            steps.append(PlannedStep("accessory", f"{spec.name}: write {host_file} (mode {SECRET_FILE_MODE:04o}, in a "
                                     "0700 folder), only if absent"))
        if spec.env_templates:  # names only: the values exist nowhere but in that file
            steps.append(PlannedStep("accessory", f"{spec.name}: write {spec.env_file} (mode 0600) with "
                                     f"{', '.join(sorted(spec.env_templates))}, only if absent"))
        for mount in spec.files:
            steps.append(PlannedStep("accessory", f"{spec.name}: upload {mount.local} to {mount.host} "
                                     f"(mode {FILE_MODE:04o}) when it differs"))
        for volume, _ in spec.volumes:
            steps.append(PlannedStep("accessory", f"{spec.name}: only if absent", tuple(volume_create(spec, volume))))
        steps.append(PlannedStep("accessory", f"{spec.name}: only if absent (a stopped one is started)",
                                 tuple(run(spec, names.network))))
        probe = health(spec)
        if probe:
            steps.append(PlannedStep("accessory", f"{spec.name}: until it exits 0 (timeout {spec.health_timeout:g}s)",
                                     tuple(probe)))
    return steps
