"""Database and release settings, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

CONNECT_TIMEOUT_SECONDS = 3
READ_TIMEOUT_SECONDS = 5
WRITE_TIMEOUT_SECONDS = 5


class SettingsError(Exception):
    """The environment does not describe a usable configuration."""


@dataclass(frozen=True)
class DatabaseSettings:
    host: str
    port: int
    name: str
    user: str
    # Kept out of repr so a logged settings object never shows the password.
    password: str = field(repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "DatabaseSettings":
        env = os.environ if env is None else env
        raw_port = env.get("DATABASE_PORT", "3306")
        try:
            port = int(raw_port)
        except ValueError:
            raise SettingsError(f"DATABASE_PORT must be an integer, got {raw_port!r}") from None
        if not 0 < port < 65536:
            raise SettingsError(f"DATABASE_PORT must be between 1 and 65535, got {port}")
        return cls(
            host=env.get("DATABASE_HOST", "127.0.0.1"),
            port=port,
            name=env.get("DATABASE_NAME", "userdir"),
            user=env.get("DATABASE_USER", "userdir"),
            password=_read_password(env),
        )


def _read_password(env: Mapping[str, str]) -> str:
    # A mounted file is preferred: unlike an env var it does not show up in
    # `docker inspect` or in /proc/<pid>/environ of every child process.
    path = env.get("DATABASE_PASSWORD_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().rstrip("\r\n")
        except OSError as exc:
            raise SettingsError(f"cannot read DATABASE_PASSWORD_FILE {path}: {exc.strerror}") from None
    return env.get("DATABASE_PASSWORD", "")


@dataclass(frozen=True)
class ReleaseInfo:
    release: str
    revision: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "ReleaseInfo":
        env = os.environ if env is None else env
        return cls(
            release=env.get("DEPLOYCTL_RELEASE") or "unknown",
            revision=env.get("DEPLOYCTL_REVISION") or "unknown",
        )

    def as_dict(self) -> dict[str, str]:
        return {"release": self.release, "revision": self.revision}
