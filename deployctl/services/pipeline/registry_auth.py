"""Credentials for the registry deploy.toml names: never from deploy.toml itself.

basic: `registry.username` with the password from the secret named by
`registry.password_secret`, looked up in the environment's secret source (`--env`), or in
the process environment when no environment is given. No username: anonymous.
ecr: a 12-hour token from GetAuthorizationToken.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...config.models import Config, Environment, Registry
from ...errors import ConfigError
from ...secrets import Secret


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


def registry_login(config: Config, environment: Environment | None = None) -> RegistryLogin | None:
    """The login for the configured registry, or None for an anonymous (open) registry. The
    password comes from `environment`'s secret source, or the process environment."""
    registry = configured_registry(config)
    if registry.provider == "ecr":
        from ...adapters.aws import ecr_login

        assert registry.region is not None  # the model requires it for ECR
        username, password = ecr_login(registry.region)
        return RegistryLogin(registry.server, username, password)
    if registry.username is None:
        return None
    from ..secret_sources import EnvSecrets, environment_source, fetch_secrets

    source = environment_source(config, environment) if environment is not None else EnvSecrets()
    secrets = fetch_secrets(source, [registry.password_secret],
                            context=f"the registry {registry.server} (registry.password_secret)")
    return RegistryLogin(registry.server, registry.username, secrets[registry.password_secret])
