"""What `deploy --dry-run` and `rollback --dry-run` print: per host, each step and the exact
docker argv. The switch part is `SwitchPlan.steps()` of the very plan the run executes
(plan/switch_plan.py); before it, the preparation built from the same ContainerSpecs and
argv functions the deploy uses. Nothing here touches a host."""

from __future__ import annotations

from typing import Sequence

from . import docker_commands as dc
from .containers import ContainerSpec
from .names import Names, StateLayout
from .steps import PlannedStep
from .switch_plan import SwitchPlan

__all__ = ["deploy_steps", "rollback_steps"]

REGISTRY_CONFIG = "<REGISTRY_CONFIG>"  # the directory `mktemp -d` prints on the host


def _argv(step: str, argv: list[str], detail: str = "") -> PlannedStep:
    return PlannedStep(step, detail, tuple(argv))


def deploy_steps(plan: SwitchPlan, containers: Sequence[ContainerSpec], names: Names, layout: StateLayout, *,
                 local: bool, images: Sequence[str], keep: int, migrations: dict[str, list[str]],
                 registry_login: tuple[str, str] | None = None) -> list[PlannedStep]:
    """`migrations`: service -> command, on the host that runs them (the first)."""
    release = plan.target.release
    steps = [_argv("preflight", dc.docker_version(), "connect; docker present")]
    config_dir = REGISTRY_CONFIG if registry_login else None
    if registry_login:
        steps.append(_argv("preflight", dc.registry_config_dir(),
                           f"{REGISTRY_CONFIG}: a 0700 docker client config for this command's login only"))
        steps.append(_argv("preflight", dc.sweep_registry_configs("<its parent>"),
                           "removes the login directories of killed commands (a day old)"))
        steps.append(_argv("preflight", dc.login(*registry_login, config_dir), "password on stdin"))
    if local:
        steps.append(_argv("preflight", dc.image_present(*dict.fromkeys(images)), "every image in the engine"))
    steps.append(PlannedStep("lock", f"mkdir {layout.lock_dir} (atomic); exit 8 if held"))
    if not local:
        steps += [_argv("pull", dc.pull(image, config_dir)) for image in images]
    if config_dir:
        steps.append(_argv("pull", dc.remove_registry_config(config_dir),
                           "the login leaves the host (also when anything failed)"))
    steps.append(_argv("network", dc.network_create(names), "only if missing"))
    steps.append(_argv("network", dc.release_network_create(names, release),
                       "the release's own: its services find each other by name there"))
    for spec in containers:
        if spec.env_file:
            steps.append(PlannedStep("secrets", f"write {spec.env_file} (mode 0600): "
                                                f"{', '.join(sorted(spec.secret_env))} (values from the secret source)"))
        for host_file, _ in spec.secret_mounts():
            steps.append(PlannedStep("secrets", f"write {host_file} (mode 0600)"))
        if spec.secrets:
            steps.append(PlannedStep("secrets", f"hand {spec.secrets_dir} to the image's user when not root",
                                     tuple(dc.chown_secrets(spec.image, "<USER>", spec.secrets_dir))))
    for spec in containers:
        command = migrations.get(spec.service)
        if command:
            for argv in dc.run_migration(spec, plan.target.network, names.network, names.migration(release), command,
                                         names.labels("migrate", release, spec.service)):
                steps.append(_argv("migrate", argv))
    steps += plan.steps()
    steps.append(PlannedStep("prune", f"keep {keep} releases (never the live or previous good)"))
    steps.append(PlannedStep("unlock", f"rm -r {layout.lock_dir}"))
    return steps


def rollback_steps(plan: SwitchPlan, layout: StateLayout) -> list[PlannedStep]:
    return [
        PlannedStep("lock", f"mkdir {layout.lock_dir} (atomic); exit 8 if held"),
        *plan.steps(),
        PlannedStep("unlock", f"rm -r {layout.lock_dir}"),
    ]
