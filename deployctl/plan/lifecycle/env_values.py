"""Env values that carry secrets: `{{ secret.NAME }}` inside a service's or an accessory's
env value (e.g. `DATABASE_URI = "mysql://app:{{ secret.DB_PASSWORD }}@db/app"`).

Pure. The split matters because the two halves travel differently: plain values may be
shown (`config`, `--dry-run`, the release record) and go on the `docker run` line; values
that use a secret are kept as their *template* everywhere deployctl shows or records them,
and only their rendered form is written, into an env file of mode 0600 on the host that
`docker run --env-file` reads.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from ...config.models import SECRET_REF_RE
from ...secrets import Secret


class SecretValueError(ValueError):
    """A rendered value cannot be written to an env file (docker reads one line per variable)."""


def secret_refs(value: str) -> list[str]:
    """The secret names a value uses, in order, each once."""
    return list(dict.fromkeys(SECRET_REF_RE.findall(value)))


def refs_in(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(name for value in values for name in secret_refs(value)))


def uses_secret(value: str) -> bool:
    return SECRET_REF_RE.search(value) is not None


def split_env(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, templated): the variables without a secret, and those with one (unrendered)."""
    plain = {k: v for k, v in env.items() if not uses_secret(v)}
    templated = {k: v for k, v in env.items() if uses_secret(v)}
    return plain, templated


def render(value: str, secrets: Mapping[str, Secret]) -> str:
    """The value with every `{{ secret.NAME }}` replaced by the secret's value."""
    def replace(match) -> str:  # type: ignore[no-untyped-def]
        return secrets[match.group(1)].reveal()

    return SECRET_REF_RE.sub(replace, value)


def env_file(templated: Mapping[str, str], secrets: Mapping[str, Secret]) -> bytes:
    """The body of a docker env file (`KEY=value` per line, taken literally: no quotes,
    no expansion) for the templated variables, rendered."""
    lines = []
    for key in sorted(templated):
        value = render(templated[key], secrets)
        if "\n" in value or "\r" in value or "\0" in value:
            names = ", ".join(secret_refs(templated[key]))
            raise SecretValueError(f"{key}: the value of {names} has a line break, which an env file cannot "
                                   "carry; deliver it as a file (secrets = [...]) instead")
        lines.append(f"{key}={value}\n")
    return "".join(lines).encode()
