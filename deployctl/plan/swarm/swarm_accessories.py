"""Accessories on a Swarm, as data (services/swarm/swarm_accessories.py runs these argvs on the
manager). An accessory is one Swarm service per environment (`<app>-<env>-<name>`, one
task), not part of a release, on the app's overlay network under the alias NAME (as on
the other targets: services reach it as `db` or by `{{ NAME.host }}`), `--endpoint-mode
dnsrr` (no VIP, no routing mesh, as every service here).

Its data lives in named volumes, and a named volume belongs to one node: so an accessory
with volumes must be **pinned** (`placement`, Swarm's placement constraints, e.g.
`node.hostname==db-1`); Swarm then restarts it on that node only, with its data. Its
secrets are Docker secrets (files at /run/secrets/NAME, as on the other targets), and env
values using `{{ secret.* }}` come from a 0600 env file on the manager that the docker CLI
reads: never on an argv. Its `files` are Docker configs (Swarm hands them to whichever node
runs the task, where the other targets upload them to every host), named by their content:
a changed file is a new config. Created when absent, never recreated by a deploy (its data
and the credentials it was initialised with are in its volumes).
"""

from __future__ import annotations

from typing import Mapping

from ..data.accessories import STOP_TIMEOUT, AccessorySpec
from ..lifecycle import docker_commands as dc
from ..lifecycle.names import Names
from .services import within_name_limit


def secret_name(names: Names, accessory: str, secret: str) -> str:
    """Not release-scoped: an accessory outlives releases. Within Docker's 64 characters."""
    return within_name_limit(f"{names.prefix}-{accessory}-{secret}", secret)


def config_name(names: Names, accessory: str, index: int, content: bytes) -> str:
    """files[index] with this content: a Docker config is immutable, so the name carries a
    hash of the content (a changed file is another config). Within Docker's 64 characters."""
    import hashlib

    digest = hashlib.sha256(content).hexdigest()[:12]
    return within_name_limit(f"{names.prefix}-{accessory}-file{index}-{digest}", f"file{index}-{digest}")


def config_names(names: Names, spec: AccessorySpec, contents: Mapping[str, bytes]) -> dict[str, str]:
    """Path in the container -> the Docker config carrying it (`contents`: host path ->
    bytes, as services/data/accessories.read_files reads them)."""
    return {mount.inside: config_name(names, spec.name, index, contents[mount.host])
            for index, mount in enumerate(spec.files)}


def _labels(flag: str, labels: dict[str, str]) -> list[str]:
    return [arg for k, v in sorted(labels.items()) for arg in (flag, f"{k}={v}")]


def _seconds(value: float) -> str:
    return f"{max(1, round(value * 1000))}ms"


def create(spec: AccessorySpec, names: Names, placement: tuple[str, ...], registry_auth: bool | str = False,
           configs: Mapping[str, str] | None = None) -> list[str]:
    """One task, restarted on any exit, only where `placement` allows; health from the
    accessory's `healthcheck.command` (Swarm reports the task running once it passed).
    `configs`: path in the container -> Docker config (its `files`), world-readable as the
    other targets mount them (configuration: the image's own user must read it)."""
    mounts = [arg for volume, path in spec.volumes
              for arg in ("--mount", f"type=volume,source={volume},target={path}")]
    secrets = [arg for s in spec.secrets for arg in ("--secret", f"source={secret_name(names, spec.name, s)},target={s}")]
    files = [arg for inside, config in sorted((configs or {}).items())
             for arg in ("--config", f"source={config},target={inside},mode=0444")]
    health = (["--health-cmd", " ".join(_quote(a) for a in spec.health_command),
               "--health-interval", _seconds(spec.health_interval), "--health-timeout", _seconds(max(spec.health_interval, 5.0)),
               "--health-retries", "3", "--health-start-period", _seconds(spec.health_timeout)]
              if spec.health_command else [])
    return [
        *dc.with_registry_auth(registry_auth),
        "--name", spec.container, "--replicas", "1", "--endpoint-mode", "dnsrr",
        "--network", f"name={spec.network},alias={spec.alias}",
        *[arg for c in placement for arg in ("--constraint", c)],
        *_labels("--label", spec.labels), *_labels("--container-label", spec.labels),
        *[arg for k, v in sorted(spec.env.items()) for arg in ("--env", f"{k}={v}")],
        *(["--env-file", spec.env_file] if spec.env_templates else []),
        *mounts, *secrets, *files,
        "--restart-condition", "any", "--restart-delay", "1s", "--stop-grace-period", f"{STOP_TIMEOUT}s",
        "--log-opt", "max-size=10m", "--no-resolve-image", *health,
        spec.image, *spec.command,
    ]


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def inspect(spec: AccessorySpec) -> list[str]:
    """Its wanted task count, image and Docker configs (names, space-separated); the
    command fails when it is absent."""
    return ["docker", "service", "inspect", "--format",
            "{{.Spec.Mode.Replicated.Replicas}}\t{{.Spec.TaskTemplate.ContainerSpec.Image}}\t"
            "{{range .Spec.TaskTemplate.ContainerSpec.Configs}}{{.ConfigName}} {{end}}", spec.container]


def scale(spec: AccessorySpec, count: int) -> list[str]:
    return ["docker", "service", "scale", "--detach", f"{spec.container}={count}"]


def remove(spec: AccessorySpec) -> list[str]:
    return ["docker", "service", "rm", spec.container]


def logs(spec: AccessorySpec, lines: int, follow: bool = False) -> list[str]:
    return ["docker", "service", "logs", "--tail", str(lines), *(["--follow"] if follow else []), spec.container]


def planned_steps(config, env_name: str, layout, environ=None,  # type: ignore[no-untyped-def]
                  files: Mapping[str, bytes] | None = None) -> list:
    """What a swarm `deploy --dry-run` shows for the environment's accessories: each created
    only when absent (scaled back to one task when stopped), before the release's services.
    `files`: host path -> content of their `files` (services/data/accessories.read_files)."""
    from ..data.accessories import environment_accessories
    from ..lifecycle.steps import PlannedStep

    names = Names(config.app, env_name)
    steps = []
    for spec in environment_accessories(config, env_name, layout, environ):
        for secret in spec.secrets:
            steps.append(PlannedStep("accessory", f"{spec.name}: docker secret {secret_name(names, spec.name, secret)} "
                                                  "from stdin, if missing"))
        if spec.env_templates:
            steps.append(PlannedStep("accessory", f"{spec.name}: on the manager, write {spec.env_file} (mode 0600) "
                                                  f"with {', '.join(sorted(spec.env_templates))}"))
        configs = config_names(names, spec, files or {}) if spec.files and files is not None else {}
        for mount in spec.files:
            if mount.inside in configs:
                steps.append(PlannedStep("accessory", f"{spec.name}: docker config {configs[mount.inside]} from "
                                                      f"{mount.local} (stdin), if missing"))
        pinned = tuple(config.accessories[spec.name].placement)
        steps.append(PlannedStep("accessory", f"{spec.name}: only if absent (a stopped one is scaled back to 1), "
                                              "then until its task runs and is healthy",
                                 tuple(create(spec, names, pinned, configs=configs))))
    return steps
