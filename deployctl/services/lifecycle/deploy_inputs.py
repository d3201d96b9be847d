"""What a deploy needs before any host is touched, shared by `deploy` and `release`: the
secrets (services', the environment's accessories', and the hosts' registry login), and the
images of the release. Fetching them first makes a missing secret or image fail early
(exit 3) instead of halfway through a rollout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ...secrets import Secret
from ..env import Env

if TYPE_CHECKING:  # annotations only: `rollback` imports this module for hook_secrets alone,
    # and a local rollback's start-up does not pay for the registry and artifacts modules.
    from ..pipeline.registry_auth import RegistryLogin
    from .release_images import ReleaseImages


@dataclass(frozen=True)
class DeployInputs:
    env: Env  # with the RDS endpoint laid over its env, if any (services/data/database_endpoint.py)
    secrets: dict[str, Secret]
    login: RegistryLogin | None  # the hosts' registry login (None: none needed)

    @property
    def registry_password(self) -> Secret | None:
        return self.login.password if self.login else None

    @property
    def registry_username(self) -> str | None:
        return self.login.username if self.login else None


def secret_names(env: Env) -> list[str]:
    """Every secret a deploy to `env` needs: the files the services and its accessories
    mount, and the secrets their env values use."""
    from ...plan.lifecycle.env_values import refs_in
    from ...plan.operate.hooks import secret_names as hook_secret_names

    config, environment = env.config, env.settings
    accessories = [config.accessories[a] for a in environment.accessories]
    names = [s for svc in config.services.values() for s in svc.secrets]
    names += [s for a in accessories for s in a.secrets]
    # {{ secret.NAME }} in env values (services', the environment's, its accessories')
    names += refs_in([*(v for svc in config.services.values() for v in svc.env.values()),
                      *environment.env.values(), *(v for a in accessories for v in a.env.values())])
    names += hook_secret_names(config.hooks)  # [hooks]: only a hook that lists one gets it
    return list(dict.fromkeys(names))


def hook_secrets(env: Env) -> dict:
    """The values of the secrets the hooks list (a rollback fetches no other), masked."""
    from ...plan.operate.hooks import secret_names as hook_secret_names

    names = hook_secret_names(env.config.hooks)
    if not names:
        return {}
    from ..secret_sources import environment_source, fetch_secrets

    return fetch_secrets(environment_source(env.config, env.settings), names,
                         context=f"the hooks of environment {env.name!r}")


def load_for_redaction(env: Env) -> list[str]:
    """Every secret a deploy to `env` uses (and the hosts' registry password), looked
    up in the environment's source when it answers and registered with the redactor, so that
    read-only commands mask them in what they print (`deployctl logs`: a container echoing
    its DATABASE_PASSWORD). Returns why some cannot be masked (nothing when all can)."""
    from ...errors import DeployctlError
    from ..secret_sources import environment_source, mask_secrets

    config, environment = env.config, env.settings
    names = secret_names(env)
    registry = config.registry
    if registry is not None and registry.provider == "basic" and registry.username:
        names.append(registry.password_secret)
    if not names:
        return []
    try:
        missing = mask_secrets(environment_source(config, environment), names)
    except DeployctlError as exc:  # the source cannot answer here: show the logs all the same, and say so
        return [f"secrets of {env.name!r} could not be loaded, so none is masked: {exc.message}"]
    return [f"secret {name!r} is not in this shell's secret source: its value is not masked" for name in missing]


def optional_hosts_login(env: Env) -> RegistryLogin | None:
    """The hosts' registry login for a command that pulls only when an image is missing
    (`accessory boot`), when this shell's secret source has it; None otherwise (an open
    registry, a local target, no password here): the pull then goes without, as it would
    on a host with no login. Hosts keep no login between commands (services/lifecycle/preflight.py)."""
    from ...errors import DeployctlError

    if env.target != "ssh":
        return None
    try:
        return deploy_secrets(env, with_registry=True, only_registry=True)[1]
    except DeployctlError:
        return None


def deploy_secrets(env: Env, *, with_registry: bool = True, only_registry: bool = False
                   ) -> tuple[dict[str, Secret], RegistryLogin | None]:
    """The secrets and the hosts' registry login (None: no login). ECR: a token fetched
    here, which reaches the hosts on stdin only. `only_registry`: the login alone."""
    from ..pipeline.registry_auth import RegistryLogin, registry_login
    from ..secret_sources import environment_source, fetch_secrets

    config, environment = env.config, env.settings
    names = [] if only_registry else secret_names(env)
    registry = config.registry
    hosts_pull = with_registry and registry is not None and environment.target in ("ssh", "swarm")
    wants_password = hosts_pull and registry.provider == "basic" and registry.username
    if wants_password:
        names.append(registry.password_secret)
    values = fetch_secrets(environment_source(config, environment), names, context=f"environment {env.name!r}")
    if wants_password:
        return values, RegistryLogin(registry.server, registry.username, values.pop(registry.password_secret))
    if hosts_pull and registry.provider == "ecr":
        return values, registry_login(config)
    return values, None


def check_accessory_files(env: Env) -> None:
    """Every `files` entry of the environment's accessories exists in the project; one
    ConfigError (exit 3) names each missing one by its key, before any host is touched."""
    from ..data.accessories import read_files, specs_for

    read_files(env.loaded, specs_for(env, env.settings.accessories))


def deploy_inputs(env: Env) -> DeployInputs:
    from ..data.database_endpoint import with_database_endpoint

    check_accessory_files(env)
    secrets, login = deploy_secrets(env, with_registry=True)
    return DeployInputs(with_database_endpoint(env), secrets, login)


def release_images(inputs: DeployInputs, artifacts_path: Path, version: str | None = None) -> ReleaseImages:
    """From the artifacts file (local: image ids; ssh: pinned digests), or for `--version`
    on ssh targets, the tag's digests asked from the registry."""
    from ...artifacts import read_artifacts
    from .release_images import resolve_images

    env = inputs.env
    built = None
    if version is None or env.target == "local":
        built = read_artifacts(artifacts_path, app=env.config.app)
    return resolve_images(env, built, version=version, registry_password=inputs.registry_password,
                          registry_username=inputs.registry_username)


def env_to_deploy(inputs: DeployInputs, images: ReleaseImages) -> Env:
    """What a deploy (and its dry run) runs with: `inputs.env` with the built accessories'
    images laid over their config (Env.with_accessory_images; services/env.py says why a new Env)."""
    return inputs.env.with_accessory_images(images.accessories)
