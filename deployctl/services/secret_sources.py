"""Where secret values come from: the `secrets` key of an environment.

Values are fetched all at once, before any host is touched, so that a missing secret fails
the command early (exit 3) and names every missing secret, not just the first.
"""

from __future__ import annotations

import os
from typing import Mapping, Protocol, Sequence

from ..errors import ConfigError
from ..secrets import Secret, redactor


class SecretSource(Protocol):
    description: str

    def lookup(self, names: Sequence[str]) -> dict[str, str | None]:
        """Each name's value, or None where the source has no such secret."""


class EnvSecrets:
    """Secrets from process environment variables of the same name (Jenkins' withCredentials)."""

    description = "the environment"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def lookup(self, names: Sequence[str]) -> dict[str, str | None]:
        return {name: self.environ.get(name) or None for name in names}


def source_for(spec: str, environ: Mapping[str, str] | None = None) -> SecretSource:
    if spec == "env":
        return EnvSecrets(environ)
    raise ConfigError(
        [f"secret source {spec!r} is not supported by this version of deployctl yet (only 'env')"],
        hint="set secrets = \"env\" for this environment and export the secrets as environment variables",
    )


def fetch_secrets(source: SecretSource, names: Sequence[str], *, context: str = "") -> dict[str, Secret]:
    """All named secrets as Secret values (registered with the redactor), or one ConfigError
    naming every missing one."""
    wanted = list(dict.fromkeys(names))
    values = source.lookup(wanted)
    missing = [name for name in wanted if values.get(name) is None]
    if missing:
        where = f" for {context}" if context else ""
        raise ConfigError(
            [f"secret {name!r} is missing from {source.description}{where}" for name in missing],
            hint="provide it in the environment's secret source; deploy.toml only names secrets",
        )
    secrets = {name: Secret(values[name]) for name in wanted}  # type: ignore[arg-type]
    for secret in secrets.values():
        redactor.add(secret)
    return secrets
