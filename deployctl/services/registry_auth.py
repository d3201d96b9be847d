"""Credentials for the registry deploy.toml names: never from deploy.toml itself.

basic: `registry.username` with the password from the secret named by
`registry.password_secret`, looked up in the environment's secret source (`--env`), or in
the process environment when no environment is given. No username: anonymous.
ecr: a 12-hour token from GetAuthorizationToken.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config.models import Config, Registry
from ..errors import ConfigError
from ..secrets import Secret


@dataclass(frozen=True)
class RegistryLogin:
    server: str
    username: str
    password: Secret

    def auth_config(self) -> dict[str, str]:
        """For the engine's push call only; never logged (the password is in the redactor)."""
        return {"username": self.username, "password": self.password.reveal(), "serveraddress": self.server}


def configured_registry(config: Config) -> Registry:
    if config.registry is None:
        raise ConfigError(["deploy.toml has no [registry] table: there is nowhere to push to"],
                          hint="add [registry] with server (and namespace, username) to deploy.toml")
    return config.registry


def registry_login(config: Config, env_secrets: str = "env") -> RegistryLogin | None:
    """The login for the configured registry, or None for an anonymous (open) registry.
    `env_secrets` is the environment's `secrets` spec ("env", "ssm:/...", ...)."""
    registry = configured_registry(config)
    if registry.provider == "ecr":
        from ..adapters.aws import ecr_login

        assert registry.region is not None  # the model requires it for ECR
        username, password = ecr_login(registry.region)
        return RegistryLogin(registry.server, username, password)
    if registry.username is None:
        return None
    from .secret_sources import fetch_secrets, source_for

    secrets = fetch_secrets(source_for(env_secrets), [registry.password_secret],
                            context=f"the registry {registry.server} (registry.password_secret)")
    return RegistryLogin(registry.server, registry.username, secrets[registry.password_secret])
