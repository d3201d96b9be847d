"""The rows of `deploy --dry-run` and `rollback --dry-run` that are no step of a host's job:
the preflight before any lock, the lock itself and its release. Everything between the lock
and the unlock is printed from the Steps the job runs (services/lifecycle/dry_runs.py: the
preparation, the migrations, the switch); nothing here touches a host."""

from __future__ import annotations

from typing import Sequence

from . import docker_commands as dc
from .lock import release_command
from .names import StateLayout
from .steps import PlannedStep

__all__ = ["lock_row", "preflight_rows", "unlock_row"]

REGISTRY_CONFIG = "<REGISTRY_CONFIG>"  # the directory `mktemp -d` prints on the host


def _argv(step: str, argv: list[str], detail: str = "") -> PlannedStep:
    return PlannedStep(step, detail, tuple(argv))


def preflight_rows(*, local: bool, images: Sequence[str],
                   registry_login: tuple[str, str] | None = None) -> list[PlannedStep]:
    """What services/lifecycle/preflight.py runs on a host before anything else."""
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
    return steps


def lock_row(layout: StateLayout) -> PlannedStep:
    return PlannedStep("lock", f"mkdir {layout.lock_dir} (atomic); exit 8 if held")


def unlock_row(layout: StateLayout) -> PlannedStep:
    return PlannedStep("unlock", f"rm -r {layout.lock_dir} while its info.json carries this command's token "
                                 "(one command, under lock.op)",
                       tuple(release_command(layout.lock_dir + ".op", layout.lock_dir, layout.lock_info, "<TOKEN>")))
