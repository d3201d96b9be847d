"""Reading deploy.toml: file -> TOML -> secret-value check -> pydantic models."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .credentials import credential_shape
from .models import PLACEHOLDER_RE, SECRET_REF_RE, SECRETISH_RE, Config, Environment
from .problems import format_errors, key_path, suggest

DEFAULT_FILE = "deploy.toml"


@dataclass(frozen=True)
class LoadedConfig:
    """The validated config and where it came from (relative paths resolve against `root`)."""

    path: Path
    config: Config

    @property
    def root(self) -> Path:
        return self.path.parent

    def environment(self, name: str) -> Environment:
        envs = self.config.environments
        if name not in envs:
            raise ConfigError(
                [f"{self.path.name}: no environment {name!r} (defined: {', '.join(envs)}){suggest(name, envs)}"]
            )
        return envs[name]


def load_config(path: str | Path = DEFAULT_FILE) -> LoadedConfig:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            [f"{path}: no such file"],
            hint="run deployctl from the project root or pass --config PATH",
        ) from None
    except (IsADirectoryError, PermissionError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    return LoadedConfig(path.resolve(), parse_config(raw, source=path.name))


def parse_config(raw: bytes | str, *, source: str = DEFAULT_FILE) -> Config:
    from pydantic import ValidationError

    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError([f"{source}: not UTF-8 text (byte {exc.start})"]) from None
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: {_toml_message(exc)}"]) from None

    secret_problems = find_secret_values(data)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        reported = {path for path, _ in secret_problems}
        lines = [f"{source}: {p}: {m}" for p, m in secret_problems]
        lines += format_errors(Config, exc.errors(include_url=False), skip=reported, source=source)
        raise ConfigError(lines) from None
    if secret_problems:
        raise ConfigError([f"{source}: {p}: {m}" for p, m in secret_problems])
    return config


_TOML_POS = re.compile(r"^(.*?)\s*\(at line (\d+), column (\d+)\)\Z")


def _toml_message(exc: tomllib.TOMLDecodeError) -> str:
    match = _TOML_POS.match(str(exc))
    if match:
        return f"line {match[2]}, column {match[3]}: TOML syntax error: {match[1]}"
    return f"TOML syntax error: {exc}"


SECRET_VALUE_HELP = "secret values never belong in deploy.toml"


def find_secret_values(data: Any) -> list[tuple[str, str]]:
    """Spots where a secret *value* was written into the file instead of a secret *name*.

    Checked on the raw TOML so that it works even when the rest of the document is invalid.
    """
    problems: list[tuple[str, str]] = []
    if not isinstance(data, dict):
        return problems
    registry = data.get("registry")
    if isinstance(registry, dict) and "password" in registry:
        problems.append((
            "registry.password",
            f"{SECRET_VALUE_HELP}; remove it and set the secret named by registry.password_secret "
            "(default DEPLOYCTL_REGISTRY_PASSWORD) in the secret source",
        ))
    for table in ("services", "accessories"):  # both mount their secrets as files
        entries = data.get(table)
        if not isinstance(entries, dict):
            continue
        for name, entry in entries.items():
            if not isinstance(entry, dict):
                continue
            if isinstance(entry.get("secrets"), dict):
                problems.append((
                    key_path([table, name, "secrets"]),
                    f"{SECRET_VALUE_HELP}; list the names only, e.g. secrets = [\"DATABASE_PASSWORD\"], "
                    "and provide the values from the environment's secret source",
                ))
            problems += _secretish_env([table, name, "env"], entry.get("env"), f"{table}.{name}.secrets")
    environments = data.get("environments")
    if isinstance(environments, dict):
        for name, env in environments.items():
            if isinstance(env, dict):
                problems += _secretish_env(["environments", name, "env"], env.get("env"), "a service's secrets")
    reported = {path for path, _ in problems}
    problems += [p for p in _credential_values(data) if p[0] not in reported]
    return problems


def _credential_values(data: dict[str, Any]) -> list[tuple[str, str]]:
    tables: list[tuple[list[Any], Any]] = []
    for table in ("services", "accessories"):
        entries = data.get(table)
        for name, entry in (entries.items() if isinstance(entries, dict) else ()):
            if isinstance(entry, dict):
                tables.append(([table, name, "env"], entry.get("env")))
                tables.append(([table, name, "build_args"], entry.get("build_args")))
                test = entry.get("test")
                if isinstance(test, dict):
                    tables.append(([table, name, "test", "env"], test.get("env")))
    proxy = data.get("proxy")
    if isinstance(proxy, dict):
        tables.append((["proxy", "build_args"], proxy.get("build_args")))
    environments = data.get("environments")
    for name, env in (environments.items() if isinstance(environments, dict) else ()):
        if isinstance(env, dict):
            tables.append((["environments", name, "env"], env.get("env")))
    hooks = data.get("hooks")
    for name, hook in (hooks.items() if isinstance(hooks, dict) else ()):
        command = hook.get("command") if isinstance(hook, dict) else hook
        if isinstance(command, list):  # a hook's argv is printed by --dry-run and the step's detail
            tables.append((["hooks", name, "command"], dict(enumerate(command))))
    found = []
    for loc, table in tables:
        for key, value in (table.items() if isinstance(table, dict) else ()):
            what = credential_shape(value) if isinstance(value, str) else None
            if what is None:
                continue
            if loc[0] == "hooks":
                fix = (f"list NAME in hooks.{loc[1]}.secrets (its value from the environment's secret source) "
                       "and read it from the hook's environment, e.g. [\"sh\", \"-c\", \"curl ... \\\"$NAME\\\"\"]")
            elif loc[-1] == "build_args":
                fix = ("a build arg stays in the image's history for anyone who pulls it: pass the value at run time "
                       "through env as {{ secret.NAME }} (or use a BuildKit secret mount) and set NAME in the "
                       "secret source")
            elif what.startswith("a URL"):
                fix = ("write the password part as {{ secret.NAME }} (e.g. \"mysql://user:{{ secret.DB_PASSWORD }}@db/app\") "
                       "and set NAME in the secret source")
            else:
                fix = "write the value as {{ secret.NAME }} and set NAME in the environment's secret source"
            found.append((key_path([*loc, key]), f"looks like {what}; {SECRET_VALUE_HELP}: {fix}"))
    return found


def _secretish_env(loc: list[Any], env: Any, where: str) -> list[tuple[str, str]]:
    if not isinstance(env, dict):
        return []
    found = []
    for key, value in env.items():
        # *_FILE variables hold a path to a mounted secret, not the secret itself.
        if not isinstance(key, str) or key.upper().endswith("_FILE") or not SECRETISH_RE.search(key):
            continue
        # A value that takes its secret from {{ secret.NAME }} holds no secret itself.
        if isinstance(value, str) and value and not PLACEHOLDER_RE.fullmatch(value.strip()) \
                and not SECRET_REF_RE.search(value):
            found.append((
                key_path([*loc, key]),
                f"looks like a secret value; {SECRET_VALUE_HELP}: list {key!r} under {where} and "
                "supply it from the secret source, or write the value as {{ secret.NAME }}",
            ))
    return found
