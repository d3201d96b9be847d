"""Where secret values come from: the `secrets` key of an environment.

Values are fetched all at once, before any host is touched, so that a missing secret fails
the command early (exit 3) and names every missing secret, not just the first.

`env` reads process environment variables (Jenkins' withCredentials); `ssm:/prefix/` reads
SSM Parameter Store parameters `/prefix/<NAME>` (SecureString decrypted); `secretsmanager:ID`
reads one Secrets Manager secret holding a JSON object whose keys are the names. The AWS
calls live in adapters/aws.py; the name mapping in plan/cloud/aws.py.
"""

from __future__ import annotations

import os
from typing import Mapping, Protocol, Sequence

from ..config.models import Config, Environment
from ..errors import ConfigError
from ..secrets import Secret, redactor


class SecretSource(Protocol):
    def lookup(self, names: Sequence[str]) -> dict[str, str | None]:
        """Each name's value, or None where the source has no such secret."""

    def where(self, name: str) -> str:
        """Where `name` was looked for, for the "missing" message (never a value)."""


class EnvSecrets:
    """Secrets from process environment variables of the same name (Jenkins' withCredentials)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def lookup(self, names: Sequence[str]) -> dict[str, str | None]:
        return {name: self.environ.get(name) or None for name in names}

    def where(self, name: str) -> str:
        return "the environment"


class SsmSecrets:
    """One SSM parameter per secret, under a path prefix; looked up in batches of ten."""

    def __init__(self, prefix: str, region: str | None) -> None:
        self.prefix, self.region = prefix, region

    def lookup(self, names: Sequence[str]) -> dict[str, str | None]:
        from ..adapters.aws import ssm_parameters
        from ..plan.cloud.aws import ssm_parameter

        values = ssm_parameters(self.region, [ssm_parameter(self.prefix, n) for n in names])
        return {name: values.get(ssm_parameter(self.prefix, name)) or None for name in names}

    def where(self, name: str) -> str:
        from ..plan.cloud.aws import ssm_parameter

        return f"SSM Parameter Store (no parameter {ssm_parameter(self.prefix, name)}{_in(self.region)})"


class SecretsManagerSecrets:
    """One Secrets Manager secret whose JSON object maps secret names to values."""

    def __init__(self, secret_id: str, region: str | None) -> None:
        self.secret_id, self.region = secret_id, region
        self.exists = True

    def lookup(self, names: Sequence[str]) -> dict[str, str | None]:
        from ..adapters.aws import secret_string
        from ..plan.cloud.aws import json_secret_values

        text = secret_string(self.region, self.secret_id)
        self.exists = text is not None
        return json_secret_values(self.secret_id, text, names) if text is not None else dict.fromkeys(names)

    def where(self, name: str) -> str:
        if not self.exists:
            return f"Secrets Manager (there is no secret {self.secret_id!r}{_in(self.region)})"
        return f"Secrets Manager secret {self.secret_id!r}{_in(self.region)} (no such key)"


def _in(region: str | None) -> str:
    return f" in {region}" if region else ""


def source_for(spec: str, environ: Mapping[str, str] | None = None, *, region: str | None = None) -> SecretSource:
    """The source a `secrets` spec names; the model has already checked its form."""
    if spec == "env":
        return EnvSecrets(environ)
    if spec.startswith("ssm:"):
        return SsmSecrets(spec.removeprefix("ssm:"), region)
    if spec.startswith("secretsmanager:"):
        return SecretsManagerSecrets(spec.removeprefix("secretsmanager:"), region)
    raise ConfigError([f"secret source {spec!r} is not one of 'env', 'ssm:/path/prefix/', 'secretsmanager:SECRET_ID'"])


def environment_source(config: Config, environment: Environment) -> SecretSource:
    """The environment's source, its AWS lookups in the environment's region (plan/aws is
    imported only then: a local rollback's hook secrets come from the environment)."""
    if environment.secrets == "env":
        return EnvSecrets()
    from ..plan.cloud.aws import region_for

    return source_for(environment.secrets, region=region_for(config, environment))


def fetch_secrets(source: SecretSource, names: Sequence[str], *, context: str = "") -> dict[str, Secret]:
    """All named secrets as Secret values (registered with the redactor), or one ConfigError
    naming every missing one."""
    wanted = list(dict.fromkeys(names))
    values = source.lookup(wanted) if wanted else {}
    missing = [name for name in wanted if values.get(name) is None]
    if missing:
        where = f" for {context}" if context else ""
        raise ConfigError(
            [f"secret {name!r} is missing from {source.where(name)}{where}" for name in missing],
            hint="provide it in the environment's secret source; deploy.toml only names secrets",
        )
    secrets = {name: Secret(values[name]) for name in wanted}  # type: ignore[arg-type]
    for secret in secrets.values():
        redactor.add(secret)
    return secrets


def mask_secrets(source: SecretSource, names: Sequence[str]) -> list[str]:
    """Registers with the redactor every named secret the source has, for commands that only
    show output (`deployctl logs`): a missing one fails nothing, it is returned by name (the
    caller says it cannot be masked). The source's own failure (AWS unreachable) raises."""
    wanted = list(dict.fromkeys(names))
    values = source.lookup(wanted) if wanted else {}
    for name in wanted:
        if values.get(name):
            redactor.add(values[name])  # type: ignore[arg-type]
    return [name for name in wanted if not values.get(name)]
