"""`deployctl init`: find what describes the project (a compose file, else Dockerfiles), plan
a deploy.toml from it (plan/init_*.py) and check the result with deployctl's own loader.

The only I/O of init: reading the project's files, and asking whether a port is free.
Writing the file is the CLI's (it owns --force / --stdout).
"""

from __future__ import annotations

import os
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..plan.init.init_compose import COMPOSE_FILES, plan_from_compose
from ..plan.init.init_dockerfiles import DockerfileInfo, parse_dockerfile, plan_from_dockerfiles
from ..plan.init.init_model import InitPlan, deploy_name, to_data
from ..plan.init.init_render import render

SCAN_DEPTH = 2  # the project root, its directories and theirs
SKIP_DIRS = {"node_modules", "venv", "__pycache__", "site-packages", "dist", "build", "target"}
MAX_READ = 1_000_000


class DiskFiles:
    """plan.init_compose.ProjectFiles over a directory on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, path: str) -> Path:
        return (self.root / path) if not os.path.isabs(path) else Path(path)

    def kind(self, path: str) -> str | None:
        p = self._path(path)
        return "file" if p.is_file() else "dir" if p.is_dir() else None

    def list_files(self, path: str) -> list[str]:
        p = self._path(path)
        return sorted(c.name for c in p.iterdir() if c.is_file() and not c.name.startswith(".")) if p.is_dir() else []

    def read_text(self, path: str) -> str | None:
        p = self._path(path)
        try:
            if not p.is_file() or p.stat().st_size > MAX_READ:
                return None
            return p.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def find_compose(directory: Path) -> Path | None:
    for name in COMPOSE_FILES:
        if (directory / name).is_file():
            return directory / name
    return None


def scan_dockerfiles(directory: Path, depth: int = SCAN_DEPTH) -> dict[str, DockerfileInfo]:
    """Directory (relative, "." for the root) -> its parsed Dockerfile, up to `depth` levels
    down; hidden and dependency directories are skipped."""
    found: dict[str, DockerfileInfo] = {}
    for here, dirs, files in os.walk(directory):
        rel = Path(here).relative_to(directory)
        level = len(rel.parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS) if level < depth else []
        if "Dockerfile" in files:
            text = (Path(here) / "Dockerfile").read_text(encoding="utf-8", errors="replace")
            found[rel.as_posix() if level else "."] = parse_dockerfile(text)
    return found


@dataclass(frozen=True)
class InitResult:
    plan: InitPlan
    text: str
    source: Path | None  # the compose file, or None for Dockerfiles


def init_project(directory: Path, output: Path, *, compose: Path | None = None, app: str | None = None) -> InitResult:
    import yaml

    from ..config.load import parse_config

    directory = directory.resolve()
    output = output.resolve()
    compose = compose.resolve() if compose is not None else find_compose(directory)
    name = deploy_name(app or directory.name)
    try:
        if compose is not None:
            try:
                document = yaml.safe_load(compose.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise ConfigError([f"{compose}: no such file"]) from None
            except yaml.YAMLError as exc:
                raise ConfigError([f"{compose.name}: not valid YAML: {exc}"]) from None
            if app is None and isinstance(document, dict) and isinstance(document.get("name"), str):
                name = deploy_name(document["name"])
            base = Path(os.path.relpath(compose.parent, output.parent)).as_posix()
            plan = plan_from_compose(document, app=name, source=compose.name, base=base,
                                     files=DiskFiles(compose.parent), port_is_free=port_is_free)
        else:
            found = scan_dockerfiles(directory)
            rel = Path(os.path.relpath(directory, output.parent)).as_posix()
            found = {(Path(rel, d).as_posix() if d != "." else rel): info for d, info in found.items()}
            plan = plan_from_dockerfiles(found, app=name, port_is_free=port_is_free)
    except ValueError as exc:
        raise ConfigError([str(exc)], hint="deployctl init needs a docker-compose file or a Dockerfile "
                          f"({', '.join(COMPOSE_FILES)}; or --compose FILE)") from None
    try:
        text = render(plan)
    except ValueError as exc:  # a compose string no TOML can hold
        raise ConfigError([f"{compose.name if compose else 'Dockerfiles'}: {exc}"]) from None
    # The text must read back as exactly the data init meant to write: a compose string that
    # escaped its comment or string would otherwise add keys nobody wrote (security review).
    try:
        reads_back = tomllib.loads(text) == to_data(plan)
    except tomllib.TOMLDecodeError:
        reads_back = False
    if not reads_back:
        raise ConfigError(["deployctl init wrote a deploy.toml that reads back differently from what it meant"],
                          hint="please report this with the compose file; rerun with --stdout to see the text")
    try:
        parse_config(text, source=output.name)
    except ConfigError as exc:  # a bug in init, not in the project: say so
        raise ConfigError([*exc.problems, "deployctl init wrote a deploy.toml it cannot load itself"],
                          hint="please report this with the compose file; rerun with --stdout to see the text") from None
    return InitResult(plan=plan, text=text, source=compose)
