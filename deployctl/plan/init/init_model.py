"""What `deployctl init` decided about a project, before it is written as deploy.toml.

Pure. The compose and Dockerfile planners (init_compose.py, init_dockerfiles.py) fill these
drafts; init_render.py writes them as commented TOML; `to_data` gives the same content as
plain data (what tomllib must read back from the rendered text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ...config.models import ENV_NAME_RE, NAME_RE, RESERVED_NAMES, SECRETISH_RE

DEFAULT_PROXY_PORT = 8080


@dataclass
class Note:
    """Something init could not infer, or decided on a guess: shown in the report."""

    subject: str  # a service or accessory name, "environment", "compose"…
    message: str


@dataclass
class ServiceDraft:
    name: str
    context: str
    source: str  # where it came from, for the comment above its table
    dockerfile: str = "Dockerfile"
    target: str | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    port: int = 8000
    port_source: str = "deployctl's default: nothing named a port"
    health: dict[str, Any] = field(default_factory=lambda: {"type": "tcp"})
    health_comment: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    routed: bool = False


@dataclass
class AccessoryDraft:
    name: str
    source: str
    image: str | None = None
    build: str | None = None
    dockerfile: str = "Dockerfile"
    port: int | None = None
    volumes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    command: list[str] | None = None
    health_command: list[str] | None = None


@dataclass
class InitPlan:
    app: str
    source: str  # "docker-compose.yml", or "Dockerfiles"
    services: list[ServiceDraft]
    accessories: list[AccessoryDraft] = field(default_factory=list)
    proxy_port: int = DEFAULT_PROXY_PORT
    proxy_port_source: str = ""
    replaced_proxy: list[str] = field(default_factory=list)  # compose services deployctl's proxy replaces
    routed_reason: str = ""
    notes: list[Note] = field(default_factory=list)

    @property
    def secret_names(self) -> list[str]:
        """Every secret the file reads ({{ secret.NAME }} and secrets lists), sorted."""
        names: set[str] = set()
        for draft in [*self.services, *self.accessories]:
            names.update(draft.secrets)
            for value in draft.env.values():
                names.update(SECRET_REF.findall(value))
        return sorted(names)


SECRET_REF = re.compile(r"\{\{ secret\.([A-Za-z_][A-Za-z0-9_]*) \}\}")


def secret_ref(name: str) -> str:
    return "{{ secret.%s }}" % name


# $$ | ${VAR} ${VAR:-d} ${VAR-d} ${VAR:?e} ${VAR?e} ${VAR:+x} ${VAR+x} | $VAR (compose's syntax)
INTERPOLATION_RE = re.compile(
    r"\$(?:(?P<dollar>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(frozen=True)
class Interpolated:
    value: str
    variables: tuple[str, ...]  # in order of appearance, each once
    defaults: tuple[tuple[str, str], ...]  # (VAR, default) pairs that were NOT copied


def to_secret_refs(value: str) -> Interpolated:
    """Every compose interpolation becomes {{ secret.VAR }}: the value is read from the secret
    source at deploy time, never copied here. `$$` is compose's literal `$`. Defaults
    (`${VAR:-default}`) and messages (`${VAR:?msg}`) are dropped and reported."""
    names: list[str] = []
    defaults: list[tuple[str, str]] = []

    def replace(match: re.Match[str]) -> str:
        if match.group("dollar"):
            return "$"
        name = match.group("braced") or match.group("plain")
        if name not in names:
            names.append(name)
        op, arg = match.group("op"), match.group("arg")
        if op and op.endswith("-") and arg:
            defaults.append((name, arg))
        return secret_ref(name)

    return Interpolated(INTERPOLATION_RE.sub(replace, value), tuple(names), tuple(defaults))


def with_defaults(value: str) -> tuple[str, list[str]]:
    """For values that are not env (ports, image names, build args): each interpolation is
    replaced by its default; the variables without one are returned as unresolved."""
    unresolved: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group("dollar"):
            return "$"
        name = match.group("braced") or match.group("plain")
        op, arg = match.group("op"), match.group("arg")
        if op and op.endswith("-"):
            return arg or ""
        unresolved.append(name)
        return ""

    return INTERPOLATION_RE.sub(replace, value), unresolved


def deploy_name(raw: str) -> str:
    """A compose service / directory name as a deploy.toml name (lowercase, '-', ≤ 30)."""
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if not name or not name[0].isalpha():
        name = f"svc-{name}".rstrip("-")
    name = name[:30].rstrip("-")
    if name in RESERVED_NAMES:
        name = f"{name}-app"
    assert NAME_RE.match(name), name
    return name


def is_env_name(name: str) -> bool:
    return bool(ENV_NAME_RE.match(name))


def looks_secret(key: str) -> bool:
    return bool(SECRETISH_RE.search(key)) and not key.upper().endswith("_FILE")


def to_data(plan: InitPlan) -> dict[str, Any]:
    """The deploy.toml the plan describes, as the data tomllib reads from the rendered text."""
    services: dict[str, Any] = {}
    for s in plan.services:
        entry: dict[str, Any] = {"context": s.context}
        if s.dockerfile != "Dockerfile":
            entry["dockerfile"] = s.dockerfile
        if s.target:
            entry["target"] = s.target
        entry["port"] = s.port
        if s.routed:
            entry["routed"] = True
        if s.secrets:
            entry["secrets"] = list(s.secrets)
        if s.build_args:
            entry["build_args"] = dict(s.build_args)
        if s.env:
            entry["env"] = dict(s.env)
        entry["healthcheck"] = dict(s.health)
        services[s.name] = entry
    accessories: dict[str, Any] = {}
    for a in plan.accessories:
        acc: dict[str, Any] = {}
        if a.image is not None:
            acc["image"] = a.image
        if a.build is not None:
            acc["build"] = a.build
            if a.dockerfile != "Dockerfile":
                acc["dockerfile"] = a.dockerfile
        if a.port is not None:
            acc["port"] = a.port
        for key in ("volumes", "files", "secrets"):
            if getattr(a, key):
                acc[key] = list(getattr(a, key))
        if a.command is not None:
            acc["command"] = list(a.command)
        if a.env:
            acc["env"] = dict(a.env)
        if a.health_command is not None:
            acc["healthcheck"] = {"command": list(a.health_command)}
        accessories[a.name] = acc
    local: dict[str, Any] = {"target": "local", "proxy_port": plan.proxy_port, "secrets": "env"}
    if plan.accessories:
        local["accessories"] = [a.name for a in plan.accessories]
    data: dict[str, Any] = {"app": plan.app, "services": services}
    if accessories:
        data["accessories"] = accessories
    data["environments"] = {"local": local}
    return data


def sort_notes(notes: list[Note], order: list[str]) -> list[Note]:
    """Services' and accessories' notes in the file's order, then the rest (stable)."""
    rank = {name: i for i, name in enumerate(order)}
    return sorted(notes, key=lambda n: rank.get(n.subject, len(rank)))
