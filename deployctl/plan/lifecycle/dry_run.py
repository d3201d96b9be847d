"""What `deploy --dry-run` and `rollback --dry-run` print: per host, each step and the exact
docker argv. The preparation's rows come from the step list the deploy itself walks
(services/lifecycle/deploy.HostDeploy.preparation), the switch part is `SwitchPlan.steps()` of the very
plan the run executes (plan/lifecycle/switch_plan.py); this module only puts them in the order a run
takes them, with the preflight and the lock around. Nothing here touches a host."""

from __future__ import annotations

from typing import Sequence

from . import docker_commands as dc
from .lock import release_command
from .names import StateLayout
from .steps import PlannedStep
from .switch_plan import SwitchPlan

__all__ = ["deploy_steps", "rollback_steps"]

REGISTRY_CONFIG = "<REGISTRY_CONFIG>"  # the directory `mktemp -d` prints on the host


def _argv(step: str, argv: list[str], detail: str = "") -> PlannedStep:
    return PlannedStep(step, detail, tuple(argv))


def unlock_row(layout: StateLayout) -> PlannedStep:
    return PlannedStep("unlock", f"rm -r {layout.lock_dir} while its info.json carries this command's token "
                                 "(one command, under lock.op)",
                       tuple(release_command(layout.lock_dir + ".op", layout.lock_dir, layout.lock_info, "<TOKEN>")))


def deploy_steps(plan: SwitchPlan, preparation: Sequence[PlannedStep], migrations: Sequence[PlannedStep],
                 layout: StateLayout, *, local: bool, images: Sequence[str], keep: int,
                 registry_login: tuple[str, str] | None = None,
                 fetching: Sequence[PlannedStep] = ()) -> list[PlannedStep]:
    """`fetching`: the rows of what the host does before the lock (the pulls);
    `preparation`: the rows of the host's preparation steps under it; `migrations`: the
    rows of its migrations (on the host that runs them: the first)."""
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
    steps += fetching
    steps.append(PlannedStep("lock", f"mkdir {layout.lock_dir} (atomic); exit 8 if held"))
    steps += preparation
    steps += migrations
    steps += plan.steps()
    steps.append(PlannedStep("prune", f"keep {keep} releases (never the live or previous good)"))
    steps.append(unlock_row(layout))
    return steps


def rollback_steps(plan: SwitchPlan, layout: StateLayout) -> list[PlannedStep]:
    return [
        PlannedStep("lock", f"mkdir {layout.lock_dir} (atomic); exit 8 if held"),
        *plan.steps(),
        unlock_row(layout),
    ]
