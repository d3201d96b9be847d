"""What `deployctl init` reads from Dockerfiles, and a plan for a project that has no compose
file: each directory with a Dockerfile is a service.

Pure: Dockerfile text in, facts out; the directory walk is services/init_project.py's.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from ..pipeline.dockerfile import logical_lines
from .init_model import DEFAULT_PROXY_PORT, InitPlan, Note, ServiceDraft, deploy_name, sort_notes

LIKELY_WEB_NAMES = ("frontend", "web", "ui", "www", "app", "site", "client")


@dataclass
class Stage:
    name: str | None
    base: str
    exposes: list[int] = field(default_factory=list)
    healthcheck: list[str] | None = None  # HEALTHCHECK CMD as argv; [] for HEALTHCHECK NONE
    copies: list[str] = field(default_factory=list)  # COPY/ADD sources from the context


@dataclass
class DockerfileInfo:
    stages: list[Stage]

    def stage(self, target: str | None = None) -> Stage | None:
        """The stage that ships: `target`, else the last one."""
        if not self.stages:
            return None
        if target is None:
            return self.stages[-1]
        return next((s for s in self.stages if s.name == target), None)

    def _chain(self, target: str | None) -> list[Stage]:
        chain: list[Stage] = []
        stage = self.stage(target)
        while stage is not None and stage not in chain:
            chain.append(stage)
            stage = next((s for s in self.stages if s.name and s.name == stage.base), None)
        return chain

    def base_image(self, target: str | None = None) -> str | None:
        """The external image the shipped stage starts from (through FROM <stage> chains)."""
        chain = self._chain(target)
        return chain[-1].base if chain else None

    def exposes(self, target: str | None = None) -> list[int]:
        for stage in self._chain(target):  # EXPOSE is inherited from the stage it builds on
            if stage.exposes:
                return stage.exposes
        return []

    def healthcheck(self, target: str | None = None) -> list[str] | None:
        for stage in self._chain(target):
            if stage.healthcheck is not None:
                return stage.healthcheck or None  # HEALTHCHECK NONE: none
        return None

    def copies(self, target: str | None = None) -> list[str]:
        return [src for stage in self._chain(target) for src in stage.copies]


def _argv(rest: str) -> list[str]:
    rest = rest.strip()
    if rest.startswith("["):
        try:
            import json

            value = json.loads(rest)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
        except ValueError:
            pass
    return ["sh", "-c", rest]


ARG_REF_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def parse_dockerfile(text: str, build_args: dict[str, str] | None = None) -> DockerfileInfo:
    """build_args: values given to the build (compose's build.args), over ARG defaults."""
    stages: list[Stage] = []
    args: dict[str, str] = {}
    for line in logical_lines(text):
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "ARG" and not stages:  # ARGs before the first FROM may name its image
            name, _, default = rest.strip().partition("=")
            args[name] = (build_args or {}).get(name, default.strip().strip('"'))
        elif instruction == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            if not words:
                continue
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            base = ARG_REF_RE.sub(lambda m: args.get(m.group(1) or m.group(2), m.group(0)), words[0])
            stages.append(Stage(name=name, base=base))
        elif not stages:
            continue
        elif instruction == "EXPOSE":
            for word in rest.split():
                port = word.split("/")[0]
                if port.isdigit() and 1 <= int(port) <= 65535:
                    stages[-1].exposes.append(int(port))
        elif instruction == "HEALTHCHECK":
            words = rest.split()
            while words and words[0].startswith("--"):
                words.pop(0)
            if words and words[0].upper() == "NONE":
                stages[-1].healthcheck = []
            elif words and words[0].upper() == "CMD":
                stages[-1].healthcheck = _argv(rest[rest.upper().index("CMD") + 3:])
        elif instruction in ("COPY", "ADD"):
            try:
                words = shlex.split(rest)
            except ValueError:
                words = rest.split()
            if any(w.startswith("--from") for w in words):
                continue
            words = [w for w in words if not w.startswith("--")]
            stages[-1].copies.extend(words[:-1])
    return DockerfileInfo(stages)


def plan_from_dockerfiles(found: dict[str, DockerfileInfo], *, app: str, port_is_free=lambda port: True) -> InitPlan:
    """found: directory (relative to deploy.toml's, "." for the root) -> its Dockerfile."""
    if not found:
        raise ValueError("no docker-compose file and no Dockerfile found")
    notes: list[Note] = []
    services: list[ServiceDraft] = []
    names_taken: set[str] = set()
    for directory in sorted(found):
        info = found[directory]
        name = deploy_name(app if directory == "." else directory.rstrip("/").rsplit("/", 1)[-1])
        while name in names_taken:
            name = deploy_name(f"{name}-2")
        names_taken.add(name)
        draft = ServiceDraft(name=name, context=directory, source=f"{directory}/Dockerfile".lstrip("./"))
        exposes = info.exposes()
        if exposes:
            draft.port, draft.port_source = exposes[0], f"EXPOSE {exposes[0]} in its Dockerfile"
        else:
            notes.append(Note(name, "no EXPOSE in its Dockerfile: port 8000 assumed; set "
                                    f"[services.{name}] port = <the port it listens on>"))
        apply_health(draft, None, info.healthcheck(), notes)
        services.append(draft)
    routed = _pick_routed(services, {d: found[d] for d in found})
    routed.routed = True
    if len(services) > 1:
        notes.append(Note(routed.name, "routed (receives the traffic): "
                          + ("the only service that EXPOSEs a port" if _exposing(services, found) == [routed]
                             else "a guess; set routed = true on the service users should reach")))
    notes.append(Note("environment", "no environment variables are known without a compose file: add "
                                     "[services.NAME.env] (and {{ secret.NAME }} for secrets) as the app needs"))
    proxy_port = DEFAULT_PROXY_PORT if port_is_free(DEFAULT_PROXY_PORT) else 0
    source = "deployctl's usual" if proxy_port else f"{DEFAULT_PROXY_PORT} is in use here"
    if not proxy_port:
        notes.append(Note("environment", f"port {DEFAULT_PROXY_PORT} is in use here: proxy_port = 0 (any free port; "
                                         "deploy prints it)"))

    return InitPlan(app=app, source="Dockerfiles", services=services, proxy_port=proxy_port,
                    proxy_port_source=source, routed_reason=_routed_reason(routed, services, found),
                    notes=sort_notes(notes, [s.name for s in services]))


def _routed_reason(routed: ServiceDraft, services: list[ServiceDraft], found: dict[str, DockerfileInfo]) -> str:
    if len(services) == 1:
        return "the only service"
    if _exposing(services, found) == [routed]:
        return "the only service that EXPOSEs a port"
    return "a guess"


def _exposing(services: list[ServiceDraft], found: dict[str, DockerfileInfo]) -> list[ServiceDraft]:
    return [s for s in services if found[s.context].exposes()]


def _pick_routed(services: list[ServiceDraft], found: dict[str, DockerfileInfo]) -> ServiceDraft:
    if len(services) == 1:
        return services[0]
    exposing = _exposing(services, found) or services
    if len(exposing) == 1:
        return exposing[0]
    for likely in LIKELY_WEB_NAMES:
        for s in exposing:
            if s.name == likely:
                return s
    return exposing[0]


def apply_health(draft: ServiceDraft, compose_health: dict | None, image_health: list[str] | None,
                 notes: list[Note]) -> None:
    """A service's health check: a compose healthcheck (a curl/wget of a URL gives the path;
    another command is run as it is), else the image's own HEALTHCHECK (type docker), else a
    TCP check: never an invented HTTP path."""
    from .init_compose_health import translate_healthcheck

    if compose_health is not None:
        translated = translate_healthcheck(compose_health)
        if translated is not None:
            draft.health, why = translated
            draft.health_comment = [why]
            return
    if image_health:
        draft.health = {"type": "docker"}
        draft.health_comment = ["its Dockerfile has a HEALTHCHECK: ready when Docker reports it healthy"]
        return
    draft.health = {"type": "tcp"}
    draft.health_comment = [
        "Nothing told deployctl an HTTP health path, so it waits until the port accepts",
        "connections. If the service has a URL that answers 200 once it is ready, use it:",
        '  type = "http"',
        '  path = "/your/health/path"',
    ]
    notes.append(Note(draft.name, f"no health path known: using a TCP check; set [services.{draft.name}.healthcheck] "
                                  'type = "http" and path = "/..." if it has one'))
