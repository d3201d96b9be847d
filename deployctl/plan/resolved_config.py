"""The resolved view of one environment: what a deploy there would use, secrets masked."""

from __future__ import annotations

from typing import Any

from .data.accessories import container_name, image_for, volume_name
from .judging.drill import is_production
from .pipeline.images import builtin_proxy_image, PROXY, image_repository
from .lifecycle.names import Names
from ..secrets import MASK
from ..config.load import LoadedConfig


def merged_env(loaded: LoadedConfig, env_name: str, service: str) -> dict[str, str]:
    """A service's plain env with the environment's env laid over it (the environment wins)."""
    return {**loaded.config.services[service].env, **loaded.environment(env_name).env}


def resolve(loaded: LoadedConfig, env_name: str) -> dict[str, Any]:
    config, env = loaded.config, loaded.environment(env_name)
    registry = None
    if config.registry is not None:
        registry = config.registry.model_dump()
        registry["password"] = MASK
    services = {}
    for name, service in config.services.items():
        data = service.model_dump(exclude={"env", "secrets"})
        data["context"] = str((loaded.root / service.context).resolve())
        data["image"] = image_repository(config, name)
        data["env"] = merged_env(loaded, env_name, name)
        data["secrets"] = {secret: MASK for secret in service.secrets}
        if service.worker:  # no port; the health check the switch waits for (`running` by default)
            data.pop("port")
            data["healthcheck"] = service.health.model_dump()
        services[name] = data
    accessories = {}
    for name in env.accessories:  # only the environment's: what a deploy there boots
        spec, names = config.accessories[name], Names(config.app, env_name)
        data = spec.model_dump(exclude={"secrets", "volumes"})
        data["image"] = image_for(spec) if spec.build is None else image_repository(config, name)
        if spec.build is not None:  # built like a service; `env` shows {{ secret.NAME }} templates, never values
            data["build"] = str((loaded.root / spec.build).resolve())
        data["container"] = container_name(names, name)
        data["volumes"] = [f"{volume_name(names, name, v.split(':', 1)[0])}:{v.split(':', 1)[1]}" for v in spec.volumes]
        data["secrets"] = {secret: MASK for secret in spec.secrets}
        accessories[name] = data
    proxy = config.proxy.model_dump()
    if config.proxy.context is not None:  # the project's own proxy image, built like a service
        proxy["context"] = str((loaded.root / config.proxy.context).resolve())
        proxy["image"] = image_repository(config, PROXY)
    else:
        proxy["image"] = builtin_proxy_image(config.proxy)
    if env.proxy_port is not None:
        proxy["port"] = env.proxy_port
    return {
        "config_file": str(loaded.path),
        "app": config.app,
        "environment": env_name,
        "target": env.target,
        # Resolved (the `production` key, else the name): what `deployctl drill` refuses without --i-mean-it.
        "production": is_production(env_name, env),
        "hosts": list(env.hosts) if env.target == "ssh" else [env.manager] if env.target == "swarm" else ["localhost"],
        # Offline on purpose: `deployctl hosts` asks EC2, and deploy resolves the RDS endpoint.
        "discover": env.discover.model_dump() if env.discover else None,
        "database": env.database.model_dump() if env.database else None,
        "infra": env.infra.model_dump() if env.infra else None,
        "aws_region": env.aws_region,
        "ssh": env.ssh.model_dump() if env.target in ("ssh", "swarm") else None,
        "rollout": env.rollout.model_dump(),
        "secret_source": env.secrets,
        "state_dir": env.state_dir,
        "registry": registry,
        "routed_service": config.routed_service,
        "services": services,
        "accessories": accessories,
        "proxy": proxy,
        **({"jobs": {name: job.model_dump() for name, job in config.jobs.items()},
            "scheduler": config.scheduler.model_dump()} if config.jobs else {}),
    }
