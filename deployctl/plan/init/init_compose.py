"""A docker-compose file as a deploy.toml plan (`deployctl init`).

Pure: the parsed compose document in, an InitPlan (drafts + notes) out. What it may read of
the project (Dockerfiles, a mounted nginx config, whether a bind mount is a file) comes
through a `ProjectFiles` view, so tests pass a dict.

The rules, in short (docs/init.md has them for users):
- a service with a build context is a service; a database image (mysql, postgres, redis…),
  or any image without a build, is an accessory; an image-only reverse proxy (nginx,
  traefik, caddy, haproxy), or one built only from config files, is replaced by deployctl's
  own proxy, and the service it proxied to is routed;
- every ${VAR} in an env value becomes {{ secret.VAR }} (defaults are not copied); literal
  values of secret-looking keys are not copied either; .env files are never read;
- no HTTP health path is ever invented: compose's healthcheck, the image's HEALTHCHECK, or TCP.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from typing import Any, Callable, Protocol

from ...config.credentials import credential_shape
from .init_compose_health import health_argv
from .init_dockerfiles import DockerfileInfo, apply_health, parse_dockerfile
from .init_model import DEFAULT_PROXY_PORT, AccessoryDraft, InitPlan, Note, ServiceDraft, deploy_name, is_env_name, looks_secret, secret_ref, sort_notes, to_secret_refs, with_defaults
from .init_ports import container_ports, published_ports

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml")

DATABASE_PORTS = {
    "mysql": 3306, "mariadb": 3306, "percona": 3306, "postgres": 5432, "postgresql": 5432, "postgis": 5432,
    "mongo": 27017, "mongodb": 27017, "redis": 6379, "valkey": 6379, "memcached": 11211, "rabbitmq": 5672,
    "elasticsearch": 9200, "opensearch": 9200, "cassandra": 9042, "couchdb": 5984, "neo4j": 7687,
}
# Readiness commands the official images support, suggested (never applied) for accessories.
HEALTH_HINTS = {
    "mysql": '["mysqladmin", "ping", "-h", "127.0.0.1", "--silent"]',
    "mariadb": '["healthcheck.sh", "--connect", "--innodb_initialized"]',
    "postgres": '["pg_isready", "-U", "postgres"]',
    "redis": '["redis-cli", "ping"]',
}
PROXY_IMAGES = ("nginx", "traefik", "caddy", "haproxy", "envoy")
CONFIG_SUFFIXES = (".conf", ".template", ".cfg", ".toml", ".yml", ".yaml", ".json", "caddyfile")
PROXY_TARGET_RE = re.compile(r"(?:proxy_pass\s+https?://|server\s+)([A-Za-z0-9_.-]+)(?::\d+)?\s*[;/]")


# A file in a service's build context -> the command printing its migration head.
SCHEMA_VERSION_COMMANDS = (("alembic.ini", '["alembic", "current"]'),
                           ("manage.py", '["python", "manage.py", "showmigrations", "--plan"]'))


class ProjectFiles(Protocol):
    """The project as seen from the compose file's directory (relative posix paths)."""

    def kind(self, path: str) -> str | None: ...  # "file", "dir" or None
    def list_files(self, path: str) -> list[str]: ...  # names of the files directly in a dir
    def read_text(self, path: str) -> str | None: ...


class NoFiles:
    def kind(self, path: str) -> str | None:
        return None

    def list_files(self, path: str) -> list[str]:
        return []

    def read_text(self, path: str) -> str | None:
        return None


def image_base(image: str | None) -> str:
    """'docker.io/library/mysql:5.7' -> 'mysql'; 'bitnami/postgresql@sha256:…' -> 'postgresql'."""
    if not image:
        return ""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[0].lower()


def database_port(image: str | None) -> int | None:
    base = image_base(image)
    for key, port in DATABASE_PORTS.items():
        if base == key or base.startswith(key + "-"):
            return port
    return None


def is_proxy_image(image: str | None) -> bool:
    return any(image_base(image).startswith(p) for p in PROXY_IMAGES)


class _Compose:
    def __init__(self, compose: dict[str, Any], *, app: str, source: str, base: str, files: ProjectFiles,
                 port_is_free: Callable[[int], bool]) -> None:
        self.services: dict[str, dict[str, Any]] = {
            name: (spec if isinstance(spec, dict) else {}) for name, spec in (compose.get("services") or {}).items()}
        self.top_volumes = compose.get("volumes") or {}
        self.app, self.source, self.base, self.files = app, source, base, files
        self.port_is_free = port_is_free
        self.notes: list[Note] = []
        self.names = self._names()
        self.dockerfiles = {name: self._dockerfile(spec) for name, spec in self.services.items()}

    # -- names, paths, files ---------------------------------------------------------------
    def _names(self) -> dict[str, str]:
        names: dict[str, str] = {}
        for raw in sorted(self.services):
            name = deploy_name(raw)
            while name in names.values():
                name = deploy_name(f"{name}-2")
            names[raw] = name
            if name != raw:
                self.note(name, f"compose service {raw!r} is named {name!r} here (deploy.toml names are "
                                f"lowercase with '-'); the others now reach it as {name!r}: update values that name {raw!r}")
        return names

    def note(self, subject: str, message: str) -> None:
        self.notes.append(Note(subject, message))

    def suggest_schema_version(self, name: str, context: str) -> None:
        """A migration tool in the build context: say how its head can be recorded with each
        release (docs/backups.md), as a note: init cannot know that the image runs it."""
        found = set(self.files.list_files(posixpath.normpath(context)))
        for marker, command in SCHEMA_VERSION_COMMANDS:
            if marker in found:
                self.note(name, f"{marker} found: add schema_version = {command} (and migrate) to [services.{name}] "
                                "so that each release records its schema and a rollback across a migration is "
                                "refused (docs/backups.md)")
                return

    def out_path(self, path: str) -> str:
        """A path relative to the compose file, as a path relative to deploy.toml."""
        if posixpath.isabs(path):
            return path
        return posixpath.normpath(posixpath.join(self.base, path))

    @staticmethod
    def build_of(spec: dict[str, Any]) -> dict[str, Any] | None:
        build = spec.get("build")
        if isinstance(build, str):
            return {"context": build}
        if isinstance(build, dict):
            return {"context": ".", **build}
        return None

    def _dockerfile(self, spec: dict[str, Any]) -> DockerfileInfo | None:
        build = self.build_of(spec)
        if build is None:
            return None
        context = posixpath.normpath(str(build["context"]))
        text = self.files.read_text(posixpath.normpath(posixpath.join(context, str(build.get("dockerfile") or "Dockerfile"))))
        args = build.get("args") or {}
        if isinstance(args, list):
            args = dict(str(a).split("=", 1) for a in args if "=" in str(a))
        given = {str(k): with_defaults(str(v))[0] for k, v in args.items() if v is not None}
        return parse_dockerfile(text, given) if text is not None else None

    def base_image(self, raw: str) -> str | None:
        spec, info = self.services[raw], self.dockerfiles[raw]
        if info is not None:
            return info.base_image((self.build_of(spec) or {}).get("target"))
        image = spec.get("image")
        return with_defaults(str(image))[0] if image else None

    # -- classification ---------------------------------------------------------------------
    def is_proxy(self, raw: str) -> bool:
        spec = self.services[raw]
        build = self.build_of(spec)
        if build is None:
            return is_proxy_image(self.base_image(raw))
        info = self.dockerfiles[raw]
        if info is None or not is_proxy_image(self.base_image(raw)):
            return False
        # Built FROM nginx but only to add its configuration: a proxy. With content (a
        # built single-page app, static files), it is a service of its own.
        copies = info.copies(build.get("target"))
        return all(src.lower().endswith(CONFIG_SUFFIXES) or posixpath.basename(src).lower() == "caddyfile"
                   for src in copies)

    def is_accessory(self, raw: str) -> bool:
        return self.build_of(self.services[raw]) is None or database_port(self.base_image(raw)) is not None

    def depends_on(self, raw: str) -> list[str]:
        spec = self.services[raw]
        deps = spec.get("depends_on") or []
        names = list(deps) if isinstance(deps, (list, dict)) else []
        for link in spec.get("links") or []:
            names.append(str(link).split(":", 1)[0])
        return [n for n in names if n in self.services]

    # -- environment ------------------------------------------------------------------------
    def env(self, raw: str) -> dict[str, str]:
        spec, name = self.services[raw], self.names[raw]
        if spec.get("env_file"):
            self.note(name, f"env_file {spec['env_file']!r} was not read (deployctl never copies .env files): put "
                            "its variables in env, or in the secret source as {{ secret.NAME }}")
        environment = spec.get("environment") or {}
        pairs: list[tuple[str, Any]] = []
        if isinstance(environment, dict):
            pairs = list(environment.items())
        elif isinstance(environment, list):
            for item in environment:
                key, sep, value = str(item).partition("=")
                pairs.append((key, value if sep else None))
        env: dict[str, str] = {}
        for key, value in sorted(pairs):
            key = str(key)
            if not is_env_name(key):
                self.note(name, f"environment {key!r} is not a valid variable name: left out")
                continue
            if value is None:  # compose passes it through from its own environment
                env[key] = secret_ref(key)
                self.note(name, f"{key} has no value in compose (taken from the shell there): {{{{ secret.{key} }}}}")
                continue
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            done = to_secret_refs(text)
            for var, default in done.defaults:
                # The note is a comment in deploy.toml: a default that is a password stays out of it too.
                shown = "" if looks_secret(var) or looks_secret(key) or credential_shape(default) else f" ({default!r})"
                self.note(name, f"{key}: the default of ${{{var}}}{shown} was not copied: set {var} in "
                                "the secret source")
            if not done.variables and looks_secret(key) and text:
                env[key] = secret_ref(key)
                self.note(name, f"{key} has a literal value in compose; it was not copied: set {key} in the "
                                "secret source")
                continue
            shape = credential_shape(done.value)
            if shape is not None:  # deploy.toml would refuse it (config/credentials.py), and rightly
                env[key] = secret_ref(key)
                self.note(name, f"{key} looks like {shape} in compose; it was not copied: set the whole value "
                                f"as {key} in the secret source")
                continue
            env[key] = done.value
        return env

    def secrets(self, raw: str) -> list[str]:
        names = []
        for item in self.services[raw].get("secrets") or []:
            secret = item.get("source") if isinstance(item, dict) else str(item)
            if secret and is_env_name(secret):
                names.append(secret)
            elif secret:
                self.note(self.names[raw], f"compose secret {secret!r} is not a variable name; left out: add it "
                                           "to secrets under a name of letters, digits and '_'")
        if names:
            self.note(self.names[raw], f"secrets {', '.join(names)} are mounted at /run/secrets/NAME as in compose; "
                                       "their values come from the secret source, not compose's files")
        return sorted(names)

    # -- services ---------------------------------------------------------------------------
    def service(self, raw: str) -> ServiceDraft:
        spec, name = self.services[raw], self.names[raw]
        build = self.build_of(spec) or {}
        context = str(build.get("context") or ".")
        draft = ServiceDraft(name=name, context=self.out_path(context),
                             source=f"compose service {raw!r} (build {context})")
        if "://" in context or context.startswith("git@"):
            self.note(name, f"its build context is a URL ({context}); deployctl builds local contexts: "
                            "check out the code and set context")
        if build.get("dockerfile"):
            draft.dockerfile = str(build["dockerfile"])
        if build.get("target"):
            draft.target = str(build["target"])
        draft.build_args = self.build_args(name, build.get("args"))
        info = self.dockerfiles[raw]
        ports = container_ports(spec)
        exposes = info.exposes(draft.target) if info else []
        if ports:
            draft.port, draft.port_source = ports[0], f"compose: {ports[0]} in ports/expose"
        elif exposes:
            draft.port, draft.port_source = exposes[0], f"EXPOSE {exposes[0]} in its Dockerfile"
        else:
            self.note(name, "no port in compose or its Dockerfile: 8000 assumed; set "
                            f"[services.{name}] port = <the port it listens on>")
        self.suggest_schema_version(name, context)
        draft.env = self.env(raw)
        draft.secrets = self.secrets(raw)
        health = spec.get("healthcheck") if isinstance(spec.get("healthcheck"), dict) else None
        apply_health(draft, health, info.healthcheck(draft.target) if info else None, self.notes)
        for key in ("command", "entrypoint"):
            if spec.get(key):
                self.note(name, f"compose's {key} is not carried over: deployctl runs the image's own; "
                                "bake it into the Dockerfile")
        if spec.get("volumes"):
            self.note(name, "its volumes are not carried over (a service's code and data come from its image; "
                            "keep data in an accessory or a managed store)")
        return draft

    def build_args(self, name: str, args: Any) -> dict[str, str]:
        pairs = list(args.items()) if isinstance(args, dict) else [
            tuple(str(a).split("=", 1)) if "=" in str(a) else (str(a), None) for a in (args or [])]
        out: dict[str, str] = {}
        for key, value in sorted(pairs, key=lambda kv: str(kv[0])):
            if value is None:
                self.note(name, f"build arg {key} takes its value from the shell in compose: pass it with "
                                f"`deployctl build --build-arg {key}=...`")
                continue
            if not is_env_name(str(key)):
                self.note(name, f"build arg {str(key)!r} is not a valid variable name: left out")
                continue
            resolved, unresolved = with_defaults(str(value))
            if unresolved:
                self.note(name, f"build arg {key} uses ${{{unresolved[0]}}} without a default: left out; pass it "
                                f"with `deployctl build --build-arg {key}=...`")
                continue
            shape = credential_shape(resolved)
            if shape is not None:
                self.note(name, f"build arg {key} looks like {shape}: left out (a build arg stays in the image's "
                                "history); pass the value at run time through the secret source")
                continue
            out[str(key)] = resolved
        return out

    # -- accessories ------------------------------------------------------------------------
    def accessory(self, raw: str) -> AccessoryDraft:
        spec, name = self.services[raw], self.names[raw]
        build = self.build_of(spec)
        draft = AccessoryDraft(name=name, source=f"compose service {raw!r}")
        if build is not None:
            draft.build = self.out_path(str(build.get("context") or "."))
            draft.dockerfile = str(build.get("dockerfile") or "Dockerfile")
            draft.source += f" (build {build.get('context')})"
        else:
            image, unresolved = with_defaults(str(spec.get("image") or ""))
            draft.image = image or None
            draft.source += f" (image {spec.get('image')})"
            if unresolved:
                self.note(name, f"its image uses ${{{unresolved[0]}}} without a default: check image")
            if database_port(image) is None:
                self.note(name, f"image {image} without a build is an accessory (deployctl builds and releases "
                                "only services with a build context); remove it if it is a development tool")
        if draft.image is None and draft.build is None:
            draft.image = "REPLACE-ME"
            self.note(name, "no image and no build: set image")
        ports = container_ports(spec)
        draft.port = ports[0] if ports else database_port(self.base_image(raw))
        draft.env = self.env(raw)
        draft.secrets = self.secrets(raw)
        self.mounts(raw, draft)
        command = spec.get("command")
        if isinstance(command, str):
            draft.command = shlex.split(command)
        elif isinstance(command, list) and command:
            draft.command = [str(c) for c in command]
        if spec.get("healthcheck"):
            draft.health_command = health_argv(spec["healthcheck"])
        if draft.health_command is None:
            hint = HEALTH_HINTS.get(image_base(self.base_image(raw)), "[...]")
            self.note(name, "no health check: deployctl counts it up once its container runs, so the services may "
                            f"start before it accepts connections; add [accessories.{name}.healthcheck] command = {hint}")
        return draft

    def mounts(self, raw: str, draft: AccessoryDraft) -> None:
        for entry in self.services[raw].get("volumes") or []:
            source, target = _mount(entry)
            if not target or not target.startswith("/"):
                continue
            if source is None:
                self.note(draft.name, f"anonymous volume at {target}: given the name 'data' so it outlives the container")
                draft.volumes.append(f"data:{target}")
            elif not source.startswith((".", "/", "~")):  # a named volume
                top = self.top_volumes.get(source) if isinstance(self.top_volumes, dict) else None
                if isinstance(top, dict) and top.get("external"):
                    self.note(draft.name, f"volume {source} is external in compose; deployctl creates its own "
                                          f"({self.app}-local-{draft.name}-{_volume_key(source)}): copy the data over if you need it")
                draft.volumes.append(f"{_volume_key(source)}:{target}")
            else:
                self.bind(draft, posixpath.normpath(source), target)

    def bind(self, draft: AccessoryDraft, source: str, target: str) -> None:
        kind = self.files.kind(source)
        if kind == "dir":
            names = self.files.list_files(source)
            draft.files.extend(f"{self.out_path(posixpath.join(source, n))}:{posixpath.join(target, n)}" for n in names)
            self.note(draft.name, f"directory {source} is mounted at {target}: its {len(names)} files are listed "
                                  "in files (uploaded with each deploy)")
        else:
            if kind is None:
                self.note(draft.name, f"bind mount {source} was not found; kept in files as written")
            draft.files.append(f"{self.out_path(source)}:{target}")

    # -- routing ----------------------------------------------------------------------------
    def proxied_to(self, proxy: str, services: list[str]) -> list[str]:
        """Where a proxy sends traffic: proxy_pass/upstream hosts in its config files, then
        its depends_on/links; only names that are app services count."""
        texts = []
        for entry in self.services[proxy].get("volumes") or []:
            source, _ = _mount(entry)
            if source and source.startswith((".", "/")) and self.files.kind(posixpath.normpath(source)) == "file":
                texts.append(self.files.read_text(posixpath.normpath(source)) or "")
        build = self.build_of(self.services[proxy])
        info = self.dockerfiles[proxy]
        if build is not None and info is not None:
            for src in info.copies(build.get("target")):
                texts.append(self.files.read_text(posixpath.normpath(posixpath.join(str(build["context"]), src))) or "")
        hosts = [h for text in texts for h in PROXY_TARGET_RE.findall(text)]
        from_config = sorted({h for h in hosts if h in services})
        if from_config:
            return from_config
        return sorted({d for d in self.depends_on(proxy) if d in services})

    def pick_routed(self, services: list[str], proxies: list[str]) -> tuple[str, str]:
        for proxy in proxies:
            targets = self.proxied_to(proxy, services)
            if len(targets) == 1:
                return targets[0], f"compose's proxy {proxy!r} sent its traffic to it"
        publishing = [s for s in services if published_ports(self.services[s])]
        if len(publishing) == 1:
            return publishing[0], "the only service that publishes a port in compose"
        candidates = publishing or services
        depended = {d for s in services for d in self.depends_on(s)}
        tops = [s for s in candidates if s not in depended]
        pick = (tops or candidates)[0]
        if len(services) == 1:
            return pick, "the only service"
        self.note(self.names[pick], "routed on a guess (" + ("no service publishes a port" if not publishing else
                                    "several publish ports") + "): set routed = true on the one users should reach")
        return pick, "a guess: " + ("publishes a port and " if pick in publishing else "") + "no other service depends on it"

    def proxy_port(self, routed: str, proxies: list[str]) -> tuple[int, str]:
        for raw in [*proxies, routed]:
            for port in published_ports(self.services[raw]):
                if self.port_is_free(port):
                    return port, f"compose published it on {port}"
                self.note("environment", f"port {port} (published by compose's {raw!r}) is in use here: "
                                         f"proxy_port = {DEFAULT_PROXY_PORT} instead")
                return DEFAULT_PROXY_PORT, f"compose used {port}, which is in use here"
        return DEFAULT_PROXY_PORT, "nothing was published in compose: deployctl's usual"

    # -- the plan ---------------------------------------------------------------------------
    def plan(self) -> InitPlan:
        ordered = sorted(self.services)
        proxies = [raw for raw in ordered if self.is_proxy(raw)]
        accessories = [raw for raw in ordered if raw not in proxies and self.is_accessory(raw)]
        services = [raw for raw in ordered if raw not in proxies and raw not in accessories]
        if not services:
            raise ValueError(f"{self.source}: no service with a build context (deployctl builds and releases "
                             "the services it deploys); add `build:` to the app's services")
        routed, why = self.pick_routed(services, proxies)
        drafts = [self.service(raw) for raw in services]
        next(d for d in drafts if d.name == self.names[routed]).routed = True
        acc_drafts = [self.accessory(raw) for raw in accessories]
        for raw in proxies:
            self.note(self.names[raw], f"compose's reverse proxy {raw!r} is replaced by deployctl's own "
                                       f"(nginx, zero-downtime switches); it now routes to {self.names[routed]}")
        port, port_why = self.proxy_port(routed, proxies)
        plan = InitPlan(app=self.app, source=self.source, services=drafts, accessories=acc_drafts,
                        proxy_port=port, proxy_port_source=port_why,
                        replaced_proxy=[self.names[p] for p in proxies], routed_reason=why,
                        notes=sort_notes(self.notes, [d.name for d in drafts] + [a.name for a in acc_drafts]))
        return plan


def _mount(entry: Any) -> tuple[str | None, str | None]:
    """(source, target) of a compose volume entry, short or long syntax."""
    if isinstance(entry, dict):
        return (str(entry["source"]) if entry.get("source") else None), (str(entry.get("target") or "") or None)
    parts = str(entry).split(":")
    if len(parts) == 1:
        return None, parts[0]
    return with_defaults(parts[0])[0], parts[1]


def _volume_key(name: str) -> str:
    key = re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-_.") or "data"
    return key[:63]


def plan_from_compose(compose: dict[str, Any], *, app: str, source: str = "docker-compose.yml", base: str = ".",
                      files: ProjectFiles | None = None,
                      port_is_free: Callable[[int], bool] = lambda port: True) -> InitPlan:
    """compose: the parsed compose document. base: the compose file's directory as seen from
    deploy.toml's. Raises ValueError when there is nothing deployctl can build."""
    if not isinstance(compose, dict) or not isinstance(compose.get("services"), dict) or not compose["services"]:
        raise ValueError(f"{source}: no services")
    return _Compose(compose, app=app, source=source, base=base, files=files or NoFiles(),
                    port_is_free=port_is_free).plan()
