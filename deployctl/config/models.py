"""The deploy.toml schema as pydantic models.

Every model forbids unknown keys: a typo must fail loudly, not deploy with a default.
Validators raise ValueError with a message that reads well after "<key path>: ".
Field docs live in docs/configuration.md; keep the two in step.

No `from __future__ import annotations` here: pydantic would then compile and evaluate
every field's annotation from its string when each model is built (about 140 of them, a
large share of the models' import time, which every command that reads deploy.toml pays).
"""

import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,29}\Z")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z"
)
# {{ backend.host }} / {{ backend.url }}: the release-scoped address of another service, so
# a new frontend always talks to the backend of its own release.
PLACEHOLDER_RE = re.compile(r"\{\{\s*([a-z][a-z0-9-]*)\.(host|url|port)\s*\}\}")
# {{ secret.NAME }}: a secret's value inside an env value. The value is looked up in the
# environment's secret source at deploy time and reaches the container through an env file
# (mode 0600) on the host, never through a command line, the history or deployctl's output.
SECRET_REF_RE = re.compile(r"\{\{\s*secret\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# Names that cannot be a service or an accessory: they would be read as a placeholder.
RESERVED_NAMES = frozenset({"secret", "proxy", "test"})
SECRETISH_RE = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIAL)", re.I)


def _name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError(
            f"{value!r} is not a valid name (lowercase letters, digits and '-', starting with a letter, at most 30)"
        )
    return value


def _env_var_name(value: str) -> str:
    if not ENV_NAME_RE.match(value):
        raise ValueError(f"{value!r} is not a valid environment variable name")
    return value


def split_host(value: str) -> tuple[str, int | None]:
    """'h', 'h:22', '[::1]:22' -> (host, port or None)."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
        return host, int(port) if port and port.isdigit() else None
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, int(port) if port.isdigit() else -1
    return value, None


def check_host(value: str) -> str:
    host, port = split_host(value)
    valid = bool(HOSTNAME_RE.match(host))
    if not valid:
        try:
            ipaddress.ip_address(host)
            valid = True
        except ValueError:
            valid = False
    if not valid or port == -1 or (port is not None and not 1 <= port <= 65535):
        raise ValueError(f"{value!r} is not a valid host (a hostname or IP address, optionally :port)")
    return value


def _url_path(value: str) -> str:
    if not value.startswith("/") or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not a URL path (it must start with '/')")
    return value


def _path_prefix(value: str) -> str:
    """A path nginx and a regex take as it is: letters, digits and `-._~/`, no `//`."""
    if not re.fullmatch(r"/[A-Za-z0-9._~/-]*", value) or "//" in value or "/../" in f"{value}/":
        raise ValueError(f"{value!r} is not a path prefix (a URL path of letters, digits and '-._~/', e.g. \"/api\")")
    return value.rstrip("/") or "/"


Name = Annotated[str, AfterValidator(_name)]
EnvVarName = Annotated[str, AfterValidator(_env_var_name)]
Host = Annotated[str, AfterValidator(check_host)]
UrlPath = Annotated[str, AfterValidator(_url_path)]
Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0, le=3600)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


HEALTH_TYPES = ("http", "tcp", "command", "docker", "running")


class HealthCheck(Strict):
    """How deployctl knows a new container is ready before traffic moves to it.

    http (default): GET `path` on the container's port answers 200. tcp: the port accepts a
    connection. command: `command` run in the container (docker exec) exits 0. docker: the
    image's own HEALTHCHECK reports healthy. running: the container is still running (no exit,
    no restart) `grace` seconds after it started, for a worker with no port. `type` defaults
    to "command" when a command is given, else "http" ("running" for a worker).
    """

    type: Literal["http", "tcp", "command", "docker", "running"] | None = None
    path: UrlPath = "/healthz"
    command: Annotated[list[str], Field(min_length=1)] | None = None
    interval: Annotated[float, Field(gt=0, le=10)] = 0.25
    timeout: Seconds = 30.0
    grace: Annotated[float, Field(ge=0, le=600)] = 3.0  # type = "running": seconds it must stay up

    @model_validator(mode="after")
    def _checks(self) -> "HealthCheck":
        if self.type not in (None, "command") and self.command is not None:
            raise ValueError(f"command is only used with type = \"command\" (type is {self.type!r})")
        if self.type == "command" and self.command is None:
            raise ValueError("type = \"command\" needs command, e.g. command = [\"pg_isready\"]")
        return self

    @property
    def kind(self) -> str:
        return self.type or ("command" if self.command is not None else "http")


class TestReports(Strict):
    """Where a service's `test.command` writes its reports, as paths inside the container."""

    junit: str | None = None
    coverage: str | None = None  # Cobertura XML


class ServiceTest(Strict):
    """Tests for a service without a test stage: `command` runs in the shipped image."""

    command: Annotated[list[str], Field(min_length=1)]
    env: dict[EnvVarName, str] = {}  # may use {{ secret.NAME }} and {{ test_database.host|port|user|password }}
    reports: TestReports = TestReports()
    timeout: Annotated[float, Field(gt=0, le=7200)] = 1800.0


MEMORY_RE = re.compile(r"^([0-9]{1,12})([bkmgBKMG]?)\Z")
MIN_MEMORY = 6 * 1024 * 1024  # the engine refuses a smaller memory limit
# Linux capabilities (capabilities(7)), as docker's --cap-drop names them.
CAPABILITIES = frozenset("""AUDIT_CONTROL AUDIT_READ AUDIT_WRITE BLOCK_SUSPEND BPF CHECKPOINT_RESTORE CHOWN
DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID IPC_LOCK IPC_OWNER KILL LEASE LINUX_IMMUTABLE MAC_ADMIN
MAC_OVERRIDE MKNOD NET_ADMIN NET_BIND_SERVICE NET_BROADCAST NET_RAW PERFMON SETFCAP SETGID SETPCAP SETUID
SYS_ADMIN SYS_BOOT SYS_CHROOT SYS_MODULE SYS_NICE SYS_PACCT SYS_PTRACE SYS_RAWIO SYS_RESOURCE SYS_TIME
SYS_TTY_CONFIG SYSLOG WAKE_ALARM ALL""".split())


def _memory(value: str) -> str:
    """docker's byte notation, the one both `docker create --memory` and `docker service
    create --limit-memory` read: digits and one of b, k, m, g."""
    match = MEMORY_RE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a memory size (a number with an optional b, k, m or g, e.g. \"512m\")")
    size = int(match.group(1)) * 1024 ** "bkmg".index((match.group(2) or "b").lower())
    if size < MIN_MEMORY:
        raise ValueError(f"{value!r} is below the engine's minimum memory limit of 6m")
    return value.lower()


def _capability(value: str) -> str:
    name = value.upper().removeprefix("CAP_")
    if name not in CAPABILITIES:
        raise ValueError(f"{value!r} is not a Linux capability (e.g. \"NET_RAW\", \"SYS_CHROOT\", or \"ALL\")")
    return name


class Service(Strict):
    context: str
    dockerfile: str = "Dockerfile"
    target: str | None = None  # None: the Dockerfile's last stage ships
    test_target: str | None = None  # a stage that runs the suite (pytest) on top of `target`
    test: ServiceTest | None = None  # or: a command run in the shipped image
    build_args: dict[EnvVarName, str] = {}
    port: Port = 8000
    healthcheck: HealthCheck = HealthCheck()
    # The routed service's end-to-end check through the proxy after a switch: GET this path
    # must answer 200 naming the new release (our app's /version). Optional: without it the
    # switch is proven by the proxy's own release stamp on the health path.
    verify_path: UrlPath | None = None
    env: dict[EnvVarName, str] = {}
    secrets: list[EnvVarName] = []
    migrate: list[str] | None = None
    # A command (run like `migrate`, after it) printing the database schema's version, e.g.
    # the migration head; recorded with the release so rollbacks see a schema change.
    schema_version: list[str] | None = None
    routed: bool = False
    # How many tasks of this service a `swarm` environment runs (spread over the nodes by
    # Swarm); `deployctl scale` changes the live release's count without a new release.
    replicas: Annotated[int, Field(ge=1, le=1000)] = 2
    coverage_floor: Annotated[float, Field(ge=0, le=100)] = 0.0
    # Least privilege and resource limits of the service's containers (plan/cloud/hardening.py).
    no_new_privileges: bool = True  # opt out for an image whose process must gain privileges (setuid)
    cap_drop: list[Annotated[str, AfterValidator(_capability)]] = []
    read_only: bool = False
    memory: Annotated[str, AfterValidator(_memory)] | None = None
    cpus: Annotated[float, Field(gt=0, le=1024)] | None = None
    pids_limit: Annotated[int, Field(ge=1, le=4_194_304)] | None = None
    # Overrides the image's CMD (an argv list, never a shell string): the same image as
    # another service, run as a worker say (docs/jobs.md).
    command: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = None
    # A worker: no port, never routed; healthy when still running `healthcheck.grace` seconds
    # after it started (or by its `healthcheck.command`). Switched with its release.
    worker: bool = False
    # A worker that must never run twice at once (a queue consumer without its own locking):
    # the previous release's is stopped before the new one starts (docs/jobs.md).
    stop_first: bool = False

    @model_validator(mode="after")
    def _checks(self) -> "Service":
        if self.migrate is not None and not self.migrate:
            raise ValueError("migrate: give the command as a non-empty list, e.g. [\"python\", \"-m\", \"backend.migrate\"]")
        if self.schema_version is not None and not self.schema_version:
            raise ValueError("schema_version: give the command as a non-empty list, e.g. [\"alembic\", \"current\"]")
        if self.test is not None and self.test_target is not None:
            raise ValueError("give either test_target (a Dockerfile stage) or a [test] table, not both")
        dup = set(self.env) & set(self.secrets)
        if dup:
            raise ValueError(f"{sorted(dup)[0]!r} is both in env and in secrets; keep it in secrets only")
        if self.stop_first and not self.worker:
            raise ValueError("stop_first is for workers (worker = true): a service with a port is switched by the "
                             "proxy, beside its previous release")
        if self.worker:
            self._check_worker()
        return self

    def _check_worker(self) -> None:
        if self.routed:
            raise ValueError("a worker (worker = true) takes no traffic: it cannot be routed")
        if "port" in self.model_fields_set:
            raise ValueError("port: a worker (worker = true) has no port; remove the key")
        if self.verify_path is not None:
            raise ValueError("verify_path: a worker (worker = true) takes no requests; remove the key")
        if self.healthcheck.kind in ("http", "tcp") and self.healthcheck.type is not None:
            raise ValueError(f"healthcheck.type: a worker has no port to check with {self.healthcheck.type!r}; use "
                             "\"running\" (the default) or \"command\"")

    @property
    def health(self) -> HealthCheck:
        """The health check the switch waits for: a worker's default is `running`."""
        if self.worker and self.healthcheck.type is None and self.healthcheck.command is None:
            return self.healthcheck.model_copy(update={"type": "running"})
        return self.healthcheck


LETS_ENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")


def _tls_host_name(value: str) -> str:
    """A DNS name a certificate can be for: no IP address, no port, no scheme; `*.` only as
    the whole first label."""
    name = value[2:] if value.startswith("*.") else value
    if not HOSTNAME_RE.match(name) or "." not in name or name.replace(".", "").isdigit():
        raise ValueError(f"{value!r} is not a DNS name for a certificate (e.g. \"www.example.com\"; "
                         "no scheme, port or IP address)")
    return value


def _https_url(value: str) -> str:
    if not re.match(r"^https://[^/\s]+(/\S*)?\Z", value):
        raise ValueError(f"{value!r} is not an https:// URL of an ACME directory")
    return value


NGINX_SIZE_RE = re.compile(r"^[0-9]{1,6}[kKmMgG]?\Z")


def _nginx_size(value: str) -> str:
    if not NGINX_SIZE_RE.match(value):
        raise ValueError(f"{value!r} is not a size (a number with an optional k, m or g, e.g. \"10m\")")
    return value


class Proxy(Strict):
    """deployctl's proxy: by default the official nginx image (`image`) with a configuration
    deployctl renders and mounts. `context`: build the proxy image from the project instead;
    it is run with the same rendered configuration and may add its own snippets (the
    extension point in docs/proxy.md)."""

    context: str | None = None
    dockerfile: str = "Dockerfile"
    build_args: dict[EnvVarName, str] = {}
    image: Annotated[str, Field(min_length=1)] = "nginx:1.27-alpine"
    # Names an environment variable that, when set, replaces `image` (a stand-in where the
    # official image cannot be pulled), as accessories' image_env does.
    image_env: EnvVarName | None = None
    port: Port = 80  # where nginx listens inside its container
    healthcheck: UrlPath = "/nginx-health"  # answered by the proxy itself
    connect_timeout: Annotated[float, Field(gt=0, le=600)] = 5.0
    read_timeout: Annotated[float, Field(gt=0, le=3600)] = 60.0
    max_body_size: Annotated[str, AfterValidator(_nginx_size)] = "1m"
    # HTTPS (docs/tls.md). `hosts`: the names the app answers to (the certificate's names).
    hosts: list[Annotated[str, AfterValidator(_tls_host_name)]] = []
    tls: Literal["off", "acme", "files"] = "off"
    acme_email: str | None = None
    acme_directory: Annotated[str, AfterValidator(_https_url)] = LETS_ENCRYPT_DIRECTORY
    acme_ca_bundle: str | None = None  # a PEM file trusted for acme_directory's own TLS (a private ACME server)
    tls_certificate_secret: EnvVarName | None = None  # tls = "files": the PEM chain, leaf first
    tls_key_secret: EnvVarName | None = None  # tls = "files": its private key (PEM)
    hsts: bool = False
    # With an environment's shared_proxy: only requests under this path go to the app
    # (the path is passed on as it is); None: every path of its `hosts`.
    path_prefix: Annotated[str, AfterValidator(_path_prefix)] | None = None

    @model_validator(mode="after")
    def _tls_checks(self) -> "Proxy":
        if len(set(h.lower() for h in self.hosts)) != len(self.hosts):
            raise ValueError("hosts lists the same name twice")
        return self

    def tls_problem(self, mode: str, where: str) -> str | None:
        """What HTTPS in `mode` lacks or forbids among these keys (None: nothing); `where`
        names the setting that turned it on (`tls = "acme"`, or an environment's)."""
        if mode == "off":
            return None
        if not self.hosts:
            return (f'{where} needs proxy.hosts = ["name.example.com"]: the names the certificate is for '
                    "and the site answers to")
        if mode == "acme":
            if not self.acme_email or not EMAIL_RE.match(self.acme_email):
                return (f"proxy.acme_email: {where} needs an e-mail address for the CA's account (expiry "
                        f"notices), got {self.acme_email!r}")
            if any(h.startswith("*.") for h in self.hosts):
                return ("proxy.hosts: a wildcard name needs a DNS-01 challenge, which deployctl does not answer; "
                        'use tls = "files" for a wildcard certificate')
        else:
            for key in ("tls_certificate_secret", "tls_key_secret"):
                if getattr(self, key) is None:
                    return (f"proxy.{key}: {where} needs it (the name of a secret in the environment's secret "
                            "source holding the PEM)")
        return None

    def tls_unused(self) -> str | None:
        """A TLS key set where no environment turns HTTPS on: a typo or a forgotten `tls`."""
        for key in ("acme_email", "acme_ca_bundle", "tls_certificate_secret", "tls_key_secret"):
            if getattr(self, key) is not None:
                return f'proxy.{key} is set but no environment has HTTPS; set proxy.tls = "acme" or "files"'
        return 'proxy.hsts = true needs HTTPS: set proxy.tls = "acme" or "files"' if self.hsts else None


class Registry(Strict):
    provider: Literal["basic", "ecr"] = "basic"
    server: str
    namespace: str = ""
    username: str | None = None
    # The *name* of the secret holding the password, looked up in the secret source.
    password_secret: EnvVarName = "DEPLOYCTL_REGISTRY_PASSWORD"
    region: str | None = None

    @model_validator(mode="after")
    def _checks(self) -> "Registry":
        if self.provider == "ecr" and not self.region:
            raise ValueError("an ECR registry needs region")
        if any(c.isspace() or c == "/" for c in self.server) or not self.server:
            raise ValueError(f"server {self.server!r} is not a registry address (host[:port], no scheme)")
        return self


class DatabaseForTests(Strict):
    """The MariaDB/MySQL server `deployctl test` points the suites at (TEST_DATABASE_*).
    A test server only: the suites create and drop their own throwaway databases on it."""

    host: str = "127.0.0.1"  # from a test container, loopback means the docker bridge gateway
    port: Port = 3306
    user: str | None = None  # None: the suite's own default
    password_secret: EnvVarName = "TEST_DATABASE_PASSWORD"


USER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\Z")


@dataclass(frozen=True)
class JumpHost:
    """`ssh.proxy_jump` parsed. Defaults follow OpenSSH's ProxyJump, not the hosts': port 22
    (ssh.port is the hosts' port, which a bastion rarely shares) and the environment's
    ssh.user (one deploy key and user on both hops is the common case; `ops@bastion` names
    another)."""

    host: str
    port: int
    user: str
    instance_id: str | None = None  # the EC2 instance, for the bastion an infra stack made

    @property
    def where(self) -> str:
        """host or host:port, as errors and `hosts trust` name it."""
        return self.host if self.port == 22 else f"{self.host}:{self.port}"


def parse_jump(value: str, default_user: str) -> JumpHost:
    """`[user@]host[:port]` -> JumpHost; ValueError (a message for "<key>: ...") otherwise."""
    expected = "expected [user@]host[:port], e.g. \"deploy@bastion.example.com:22\""
    user, at, rest = value.rpartition("@")
    if at and not USER_RE.match(user):
        raise ValueError(f"{value!r}: {user!r} is not a user name ({expected})")
    try:
        check_host(rest)
    except ValueError:
        raise ValueError(f"{value!r} is not a jump host ({expected})") from None
    host, port = split_host(rest)
    return JumpHost(host, port or 22, user if at else default_user)


def _proxy_jump(value: str) -> str:
    parse_jump(value, "deploy")  # the user only matters once it is used
    return value


class SSH(Strict):
    user: str = "deploy"
    port: Port = 22
    key_file: str | None = None
    # None: the environment's own file that `deployctl hosts trust` writes
    # (services/hosts.py: known_hosts_path), never the user's interactive ~/.ssh/known_hosts.
    known_hosts: str | None = None
    connect_timeout: Seconds = 10.0
    # "[user@]host[:port]": every connection goes through this SSH jump host (JumpHost).
    # Its key is checked against the same known_hosts file as the hosts'.
    proxy_jump: Annotated[str, AfterValidator(_proxy_jump)] | None = None

    def jump(self) -> "JumpHost | None":
        """The parsed jump host, or None."""
        return None if self.proxy_jump is None else parse_jump(self.proxy_jump, self.user)


HTTP_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE", "POST", "PATCH")
# These change state on every call: mirrored, each one is done twice (by the live release and by
# the new one, often on the same database). Only ever mirrored when shadow_methods names them.
NON_IDEMPOTENT = ("POST", "PATCH")


def _shadow_methods(value: list[str]) -> list[str]:
    methods = []
    for method in value:
        if method in ("*", "ALL", "all", "any", "ANY"):
            raise ValueError(f"{method!r}: name each method to mirror (a mirrored {' or '.join(NON_IDEMPOTENT)} "
                             "is done twice, so it is only mirrored when listed by name), e.g. [\"GET\", \"HEAD\"]")
        if method.upper() not in HTTP_METHODS:
            raise ValueError(f"{method!r} is not an HTTP method nginx can mirror (expected some of "
                             f"{', '.join(HTTP_METHODS)})")
        if method.upper() not in methods:
            methods.append(method.upper())
    return methods


class Rollout(Strict):
    parallel: Annotated[int, Field(ge=1, le=256)] | None = None  # None: all hosts at once
    batch: Annotated[int, Field(ge=1, le=256)] | None = None
    pause: Annotated[float, Field(ge=0, le=3600)] = 0.0
    max_failures: Annotated[int, Field(ge=0)] = 0
    on_failure: Literal["revert", "halt"] = "revert"
    drain: Annotated[float, Field(ge=0, le=600)] = 3.0
    keep: Annotated[int, Field(ge=2, le=100)] = 5
    # Seconds the previous release's containers keep running (out of the proxy) after a switch,
    # so a rollback inside the window is a proxy switch only. 0: stopped after the drain.
    warm_window: Annotated[float, Field(ge=0, le=86400)] = 600.0
    # Release safety (docs/release-safety.md). The guard: for guard_window seconds after every
    # switch deployctl reads the proxy's access log and switches back by itself when the new
    # release's error rate (5xx and upstream failures) crosses guard_max_error_rate, once at
    # least guard_min_requests were seen. 0: off.
    guard_window: Annotated[float, Field(ge=0, le=3600)] = 30.0
    guard_max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.05
    guard_min_requests: Annotated[int, Field(ge=1, le=1_000_000)] = 20
    # The canary: this percentage of requests goes to the new release for canary_window
    # seconds; it is promoted when its error rate and p95 stay within these margins of the
    # live release's over the same window, else aborted (back to 0%). 0: no canary.
    canary: Annotated[int, Field(ge=0, le=99)] = 0
    canary_window: Annotated[float, Field(ge=1, le=86400)] = 60.0
    canary_max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.02
    canary_max_p95_ms: Annotated[float, Field(ge=0, le=600_000)] = 500.0
    canary_min_requests: Annotated[int, Field(ge=1, le=1_000_000)] = 20
    # Per route (plan/judging/routes.py): aborted as soon as, on one route, the canary's share of 5xx
    # or of 4xx answers exceeds the live release's by more than this, once both answered
    # canary_route_min_requests requests on it. 1: off.
    canary_route_max_shift: Annotated[float, Field(ge=0, le=1)] = 0.2
    canary_route_min_requests: Annotated[int, Field(ge=1, le=1_000_000)] = 20
    # The shadow window (docs/release-safety.md): after the new release's health check and
    # before the switch, the proxy mirrors live requests of shadow_methods to it for
    # shadow_window seconds (or until shadow_min_requests were mirrored); its answers are
    # thrown away and judged against the live release's answers to the same requests. 0: off.
    shadow_window: Annotated[float, Field(ge=0, le=3600)] = 0.0
    shadow_min_requests: Annotated[int, Field(ge=1, le=1_000_000)] = 50
    shadow_methods: Annotated[list[str], Field(min_length=1), AfterValidator(_shadow_methods)] = ["GET", "HEAD"]
    shadow_max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.02
    # Per route, as canary_route_*: the copies' 5xx or 4xx share on one route vs the live answers'.
    shadow_route_max_shift: Annotated[float, Field(ge=0, le=1)] = 0.2
    shadow_route_min_requests: Annotated[int, Field(ge=1, le=1_000_000)] = 20
    # Stopped when the mirrored p95 is over this many times the live release's (and at least
    # SHADOW_P95_FLOOR_MS slower: below that, a ratio of two small numbers is noise).
    shadow_max_p95_ratio: Annotated[float, Field(ge=1, le=1000)] = 2.0
    # How long a copy may take: nginx finishes a user's request only with its copy, so on a
    # keep-alive connection the user's next request waits for a slow copy (bench/shadow_proxy.py).
    # A copy past it is an upstream failure in the verdict (a hanging release is stopped).
    shadow_timeout: Annotated[float, Field(ge=0.05, le=60)] = 1.0
    # Routes the shadow window and the canary judge apart: the busiest this many, the rest pooled
    # as `other` (a scanner's random URLs cannot grow the board, the verdict or the history).
    max_routes: Annotated[int, Field(ge=1, le=10_000)] = 100
    # Before a deploy's migrations: back up this accessory (a database the environment lists)
    # and record the backup's id in the release, so `rollback --restore-data` can restore it.
    backup_before_migrate: bool = False
    backup_accessory: str | None = None  # which one; None: the environment's only one with a dump


SECRET_SOURCE_RE = re.compile(r"^(env|ssm:/.*|secretsmanager:.+)\Z")
# us-east-1, eu-west-3, us-gov-west-1, ap-southeast-2: catches "eu-west1" before any AWS call.
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}\Z")
ADDRESS_RE = re.compile(r"^(private_ip|public_ip|tag:.+)\Z")
RDS_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,62}\Z")


def _region(value: str) -> str:
    if not REGION_RE.match(value):
        raise ValueError(f"{value!r} is not an AWS region (e.g. 'eu-west-1')")
    return value


def _address(value: str) -> str:
    if not ADDRESS_RE.match(value):
        raise ValueError(f"{value!r} is not an address choice (expected 'private_ip', 'public_ip' or 'tag:NAME')")
    return value


def _rds_instance(value: str) -> str:
    if not RDS_ID_RE.match(value) or value.endswith("-") or "--" in value:
        raise ValueError(f"{value!r} is not an RDS DB instance identifier (letters, digits and single '-', "
                         "starting with a letter, at most 63)")
    return value


Region = Annotated[str, AfterValidator(_region)]


class Discover(Strict):
    """The environment's hosts are the *running* EC2 instances carrying every one of `tags`."""

    region: Region | None = None  # None: the environment's aws_region (plan/cloud/aws.py: region_for)
    tags: Annotated[dict[Annotated[str, Field(min_length=1, max_length=128)], str], Field(min_length=1)]
    address: Annotated[str, AfterValidator(_address)] = "private_ip"


class Database(Strict):
    """An RDS instance whose endpoint is looked up at deploy time and handed to every service
    as plain env, so deploy.toml never hard-codes an address that changes on restore."""

    rds_instance: Annotated[str, AfterValidator(_rds_instance)]
    host_env: EnvVarName = "DATABASE_HOST"
    port_env: EnvVarName = "DATABASE_PORT"

    @model_validator(mode="after")
    def _checks(self) -> "Database":
        if self.host_env == self.port_env:
            raise ValueError(f"host_env and port_env are both {self.host_env!r}; give them different names")
        return self


VOLUME_RE = re.compile(r"^([a-z0-9][a-z0-9_.-]{0,62}):(/[^:\s]*)\Z")


def _volume(value: str) -> str:
    if not VOLUME_RE.match(value):
        raise ValueError(f"{value!r} is not a volume (expected 'NAME:/path/in/container', NAME in lowercase "
                         "letters, digits, '_', '.', '-')")
    return value


class AccessoryHealthCheck(Strict):
    """`command` runs in the accessory with `docker exec` until it exits 0; without one the
    accessory counts as up once its container runs."""

    command: Annotated[list[str], Field(min_length=1)] | None = None
    interval: Annotated[float, Field(gt=0, le=10)] = 1.0
    timeout: Seconds = 120.0


FILE_MOUNT_RE = re.compile(r"^([^:]+):(/[^:]*)\Z")
# Swarm's placement constraints (`docker service create --constraint`): attribute, == or !=, value.
PLACEMENT_RE = re.compile(r"^(node\.(id|hostname|role|platform\.os|platform\.arch|labels\.[A-Za-z0-9_.-]+)"
                          r"|engine\.labels\.[A-Za-z0-9_.-]+)\s*(==|!=)\s*[^\s,]+\Z")


def _placement(value: str) -> str:
    if not PLACEMENT_RE.match(value):
        raise ValueError(f"{value!r} is not a Swarm placement constraint (expected e.g. 'node.hostname==db-1', "
                         "'node.labels.disk==ssd' or 'node.role!=manager')")
    return value


def _file_mount(value: str) -> str:
    match = FILE_MOUNT_RE.match(value)
    if not match or match.group(2).endswith("/"):
        raise ValueError(f"{value!r} is not a file mount (expected 'local/path:/path/in/container')")
    local, inside = match.groups()
    # The local file is read from the project and uploaded to the hosts; an absolute path
    # would let a deploy.toml ship any file of the deploying machine (an SSH key). A relative
    # one with '..' or a symlink is resolved and confined when the file is read
    # (services/data/accessories.read_files), as only then is deploy.toml's folder known.
    if local.startswith(("/", "~")):
        raise ValueError(f"{value!r}: the local path {local!r} must be relative to deploy.toml's folder and inside "
                         "it (e.g. 'db/init.sql:/docker-entrypoint-initdb.d/init.sql')")
    # The container path also names where the file lands on the host, under the accessory's
    # files/ folder: `..` would write outside the state directory (~deploy/.ssh/authorized_keys).
    if any(part in ("", ".", "..") for part in inside.split("/")[1:]):
        raise ValueError(f"{value!r}: the container path {inside!r} must be an absolute path without '.', '..' "
                         "or empty parts (e.g. '/etc/mysql/conf.d/my.cnf')")
    return value


def _backup_schedule(value: str) -> str:
    """A cron expression (five fields, as crontab(5)) or one of its @macros, run by the
    environment's scheduler as the job `backup-NAME` (docs/backups.md)."""
    from .cron import MACROS, CronError, parse_schedule  # imported here: this module loads on every command

    try:
        parse_schedule(value)
    except CronError as exc:
        raise ValueError(f"{value!r} is not a cron schedule (five fields such as \"30 3 * * *\", or one of "
                         f"{', '.join(MACROS)}): {exc}") from None
    return value.strip()


class AccessoryBackup(Strict):
    """[accessories.NAME.backup] (docs/backups.md). MariaDB/MySQL and PostgreSQL images are
    dumped with their own tools; any other image needs `command` (prints the dump on stdout,
    run in the accessory's container) and, to be restorable, `restore_command` (reads it on
    stdin)."""

    command: list[Annotated[str, Field(min_length=1)]] | None = None
    restore_command: list[Annotated[str, Field(min_length=1)]] | None = None
    schedule: Annotated[str, AfterValidator(_backup_schedule)] | None = None  # the job backup-NAME (docs/backups.md)
    keep: Annotated[int, Field(ge=1, le=10000)] | None = None  # None: every backup is kept
    to: Annotated[str, Field(min_length=1)] | None = None  # s3://bucket/prefix or a folder; default .deployctl/backups

    @model_validator(mode="after")
    def _checks(self) -> "AccessoryBackup":
        if self.command is not None and not self.command:
            raise ValueError("command: give the dump command as a non-empty list, e.g. [\"redis-cli\", \"--rdb\", \"-\"]")
        if self.restore_command is not None and not self.restore_command:
            raise ValueError("restore_command: give the command as a non-empty list")
        if self.schedule and self.to and self.to.startswith("s3://"):
            raise ValueError(f"schedule: a scheduled backup is written on the host that runs the scheduler (its state "
                             f"directory), never to S3: uploading from there would need AWS credentials kept on "
                             f"the host, which deployctl never puts there; to = {self.to!r} is for `deployctl "
                             "accessory backup`. Drop the schedule and run that command from your CI's scheduler, "
                             "or drop `to` (docs/backups.md, \"Scheduled backups\")")
        return self


class Accessory(Strict):
    """A long-lived container beside the app (a database, a cache), Kamal's "accessory":
    started when absent, never recreated by a deploy, its data in named volumes."""

    image: Annotated[str, Field(min_length=1)] | None = None
    build: str | None = None  # a build context in the project: the image is built (and pushed) with the services
    dockerfile: str = "Dockerfile"
    files: list[Annotated[str, AfterValidator(_file_mount)]] = []  # uploaded to the host, mounted read-only
    # Names an environment variable that, when set, replaces `image`: where the official
    # image cannot be pulled, a stand-in is passed without editing deploy.toml.
    image_env: EnvVarName | None = None
    port: Port | None = None  # where it listens on the app network, for {{ NAME.port }}
    volumes: list[Annotated[str, AfterValidator(_volume)]] = []
    env: dict[EnvVarName, str] = {}
    secrets: list[EnvVarName] = []
    command: list[str] | None = None  # arguments after the image (the image's CMD when unset)
    healthcheck: AccessoryHealthCheck = AccessoryHealthCheck()
    # swarm: where its one task may run (placement constraints); needed with volumes, which
    # live on one node. Other targets run it on every host and ignore this.
    placement: list[Annotated[str, AfterValidator(_placement)]] = []
    backup: AccessoryBackup | None = None  # `deployctl accessory backup` (docs/backups.md)

    @model_validator(mode="after")
    def _checks(self) -> "Accessory":
        if (self.image is None) == (self.build is None):
            raise ValueError("give either image or build (a build context in the project)")
        dup = set(self.env) & set(self.secrets)
        if dup:
            raise ValueError(f"{sorted(dup)[0]!r} is both in env and in secrets; keep it in secrets only")
        paths = [v.split(":", 1)[1] for v in self.volumes] + [f.split(":", 1)[1] for f in self.files]
        if len(set(paths)) != len(paths):
            raise ValueError("volumes and files mount two things at the same path")
        return self


# -- infra: the AWS network, hosts and database `deployctl infra` creates (docs/infra.md) ------

SSH_PUBLIC_KEY_RE = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com"
                               r"|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\n]*)?\Z")
AMI_RE = re.compile(r"^(ami-[0-9a-f]{8,17}|/[A-Za-z0-9_./-]+)\Z")
INSTANCE_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+\Z")
DB_USER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,15}\Z")
DB_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}\Z")
STACK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}\Z")
# An SSM public parameter naming the latest Amazon Linux 2023 AMI of the region.
DEFAULT_AMI = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


def _cidr(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR block (e.g. '203.0.113.0/24', host bits zero)") from None


def _vpc_cidr(value: str) -> str:
    network = _cidr(value)
    if network.version != 4 or not 16 <= network.prefixlen <= 26:
        raise ValueError(f"{value!r}: a VPC needs an IPv4 block from /16 to /26 (it is cut into four subnets)")
    return value


def _admin_cidr(value: str) -> str:
    network = _cidr(value)
    if network.prefixlen == 0:
        raise ValueError(f"{value!r} would open SSH to the whole internet; give your office's or VPN's block "
                         "(e.g. '203.0.113.0/24')")
    return value


def _ssh_public_key(value: str) -> str:
    if "PRIVATE KEY" in value:
        raise ValueError("this is a private key; give the public key (the .pub file's line)")
    if not SSH_PUBLIC_KEY_RE.match(value.strip()):
        raise ValueError("not an OpenSSH public key (expected one line like 'ssh-ed25519 AAAA... comment')")
    return value.strip()


def _matching(pattern: re.Pattern[str], what: str):  # type: ignore[no-untyped-def]
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not {what}")
        return value
    return check


class InfraHosts(Strict):
    """The app hosts: an Auto Scaling group (min, max, desired) or a fixed `count`."""

    count: Annotated[int, Field(ge=1, le=100)] | None = None
    min: Annotated[int, Field(ge=0, le=100)] | None = None
    max: Annotated[int, Field(ge=1, le=100)] | None = None
    desired: Annotated[int, Field(ge=0, le=100)] | None = None

    @model_validator(mode="after")
    def _checks(self) -> "InfraHosts":
        sized = [k for k in ("min", "max", "desired") if getattr(self, k) is not None]
        if self.count is not None and sized:
            raise ValueError(f"give either count or min/max/desired, not both (found count and {sized[0]})")
        low, high, want = self.size
        if not low <= want <= high:
            raise ValueError(f"need min <= desired <= max (got min {low}, desired {want}, max {high})")
        return self

    @property
    def size(self) -> tuple[int, int, int]:
        """(min, max, desired); a fixed count is all three. Unset: 1 host, at most 2 (or the others' bounds)."""
        if self.count is not None:
            return self.count, self.count, self.count
        want = self.desired if self.desired is not None else (self.min if self.min else 1)
        low = self.min if self.min is not None else min(1, want)
        high = self.max if self.max is not None else max(want, low, 2)
        return low, high, want


ACM_ARN_RE = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+\Z")
HOSTED_ZONE_RE = re.compile(r"^Z[A-Z0-9]{1,32}\Z")


class InfraLoadBalancer(Strict):
    """An Application Load Balancer in front of the hosts' proxy: HTTPS with an ACM
    certificate (an existing one by ARN, or one for `[proxy] hosts` that CloudFormation
    requests and validates by DNS in a Route 53 zone), HTTP redirected to HTTPS."""

    port: Port = 80  # the HTTP listener, open to the world: redirects to HTTPS
    https_port: Port = 443  # the HTTPS listener, open to the world
    certificate_arn: Annotated[str, AfterValidator(_matching(ACM_ARN_RE, "an ACM certificate ARN "
                                                             "('arn:aws:acm:REGION:ACCOUNT:certificate/ID')"))] | None = None
    hosted_zone_id: Annotated[str, AfterValidator(_matching(HOSTED_ZONE_RE, "a Route 53 hosted zone id "
                                                            "('Z' and letters/digits, e.g. 'Z0123456789ABCDEFGHIJ')"))] | None = None
    # No certificate yet (no domain): an HTTP listener that forwards, and no HTTPS. Explicit,
    # because the security rules otherwise refuse a load balancer without HTTPS.
    plain_http: bool = False

    @model_validator(mode="after")
    def _checks(self) -> "InfraLoadBalancer":
        if self.certificate_arn is not None and self.hosted_zone_id is not None:
            raise ValueError("give either certificate_arn (an existing certificate) or hosted_zone_id (a new one "
                             "for [proxy] hosts, validated by DNS in that zone), not both")
        if self.plain_http and (self.certificate_arn is not None or self.hosted_zone_id is not None):
            raise ValueError("plain_http = true means no HTTPS listener: remove it, or remove certificate_arn/"
                             "hosted_zone_id")
        if self.port == self.https_port:
            raise ValueError(f"port and https_port are both {self.port}: the HTTP and HTTPS listeners need two ports")
        return self


class InfraDatabase(Strict):
    """An RDS instance in private subnets, reachable only from the app hosts' security group.
    Its master password is generated by `infra apply` into the environment's secret source."""

    engine: Literal["mysql", "mariadb"] = "mariadb"
    engine_version: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    instance_class: Annotated[str, AfterValidator(_matching(re.compile(r"^db\.[a-z0-9]+\.[a-z0-9]+\Z"),
                                                            "an RDS instance class (e.g. 'db.t3.micro')"))] = "db.t3.micro"
    storage: Annotated[int, Field(ge=20, le=65536)] = 20  # GiB
    multi_az: bool = False
    username: Annotated[str, AfterValidator(_matching(DB_USER_RE, "a database user name (a letter, then "
                                                      "letters, digits or '_', at most 16)"))] = "admin"
    name: Annotated[str, AfterValidator(_matching(DB_NAME_RE, "a database name (a letter, then letters, "
                                                  "digits or '_')"))] | None = None
    port: Port = 3306
    deletion_protection: bool = True
    backup_retention_days: Annotated[int, Field(ge=0, le=35)] = 7
    password_secret: EnvVarName = "DATABASE_PASSWORD"  # the name the environment's secret source finds it under
    host_env: EnvVarName = "DATABASE_HOST"
    port_env: EnvVarName = "DATABASE_PORT"

    @model_validator(mode="after")
    def _checks(self) -> "InfraDatabase":
        if self.host_env == self.port_env:
            raise ValueError(f"host_env and port_env are both {self.host_env!r}; give them different names")
        return self


class Infra(Strict):
    """`[environments.<env>.infra]`: what `deployctl infra` creates in AWS for the environment
    (VPC, subnets, an Auto Scaling group of hosts, an optional ALB, an optional RDS database),
    and what the environment then deploys onto without more configuration."""

    region: Region | None = None  # None: the environment's aws_region (plan/cloud/aws.py: region_for)
    stack_name: Annotated[str, AfterValidator(_matching(STACK_NAME_RE, "a CloudFormation stack name"))] | None = None
    vpc_cidr: Annotated[str, AfterValidator(_vpc_cidr)] = "10.0.0.0/16"
    hosts: InfraHosts = InfraHosts()
    instance_type: Annotated[str, AfterValidator(_matching(INSTANCE_TYPE_RE, "an EC2 instance type (e.g. 't3.small')"))] = "t3.small"
    ami: Annotated[str, AfterValidator(_matching(AMI_RE, "an AMI id ('ami-...') or an SSM parameter path naming one ('/aws/service/...')"))] = DEFAULT_AMI
    admin_cidr: Annotated[str, AfterValidator(_admin_cidr)]  # who may SSH in; never 0.0.0.0/0
    ssh_public_key: Annotated[str, AfterValidator(_ssh_public_key)] | None = None
    ssh_public_key_file: Annotated[str, Field(min_length=1)] | None = None  # a .pub file, relative to deploy.toml
    proxy_open_to: Literal["load_balancer", "world"] | None = None  # None: the load balancer if any, else the world
    load_balancer: InfraLoadBalancer | None = None
    database: InfraDatabase | None = None
    # The hosts sit in private subnets with no public IP: deployctl reaches them at their
    # private address, through the bastion (below) unless ssh.proxy_jump names another.
    address: Literal["private_ip"] = "private_ip"
    # A small instance in a public subnet, SSH from admin_cidr only, that ssh.proxy_jump uses by
    # default. false: no bastion, SSH to the hosts from admin_cidr (a VPN or Direct Connect).
    bastion: bool = True
    bastion_instance_type: Annotated[str, AfterValidator(_matching(INSTANCE_TYPE_RE, "an EC2 instance type (e.g. 't3.nano')"))] = "t3.nano"
    # The AMI's root device, whose volume the launch template encrypts: /dev/xvda on Amazon
    # Linux (the default AMI), /dev/sda1 on Ubuntu and Debian images. A wrong name would add
    # a second (encrypted) volume and leave the root volume as the AMI has it.
    root_device: Annotated[str, AfterValidator(_matching(re.compile(r"^/dev/[a-z0-9]+\Z"), "a device name like '/dev/xvda'"))] = "/dev/xvda"
    root_volume_gib: Annotated[int, Field(ge=8, le=16384)] = 30  # images and kept releases live there

    @model_validator(mode="before")
    @classmethod
    def _public_address(cls, data):  # type: ignore[no-untyped-def]
        if isinstance(data, dict) and data.get("address") == "public_ip":
            raise ValueError('address = "public_ip": the hosts infra makes are in private subnets with no public IP; '
                             "remove the key (deployctl reaches them at their private address through the bastion, "
                             "docs/infra.md)")
        return data

    @model_validator(mode="after")
    def _checks(self) -> "Infra":
        if (self.ssh_public_key is None) == (self.ssh_public_key_file is None):
            raise ValueError("give either ssh_public_key or ssh_public_key_file (the deploy key's public half)")
        if self.ssh_public_key_file is not None and not self.ssh_public_key_file.endswith(".pub"):
            raise ValueError(f"ssh_public_key_file {self.ssh_public_key_file!r} should name a public key (.pub)")
        if self.proxy_open_to == "load_balancer" and self.load_balancer is None:
            raise ValueError('proxy_open_to = "load_balancer" needs a [load_balancer] table')
        return self

    @property
    def proxy_ingress(self) -> str:
        return self.proxy_open_to or ("load_balancer" if self.load_balancer is not None else "world")


def _secret_source(value: str) -> str:
    if not SECRET_SOURCE_RE.match(value):
        raise ValueError(
            f"{value!r} is not a secret source (expected 'env', 'ssm:/path/prefix/' or 'secretsmanager:SECRET_ID')"
        )
    return value


DEFAULT_SUBNET_POOL = "10.213.0.0/16"
SUBNET_PREFIX = 26  # one release network: 62 addresses


def _subnet_pool(value: str) -> str:
    """`release_subnet_pool`: "" (Docker's own pools) or a private IPv4 CIDR that holds at
    least one release network (plan/lifecycle/subnets.py)."""
    if value == "":
        return value
    try:
        pool = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IPv4 network in CIDR form like {DEFAULT_SUBNET_POOL!r} ({exc})") from None
    if not isinstance(pool, ipaddress.IPv4Network) or not pool.is_private:
        raise ValueError(f"{value!r}: expected a private IPv4 range (RFC 1918), e.g. {DEFAULT_SUBNET_POOL!r}")
    if pool.prefixlen > SUBNET_PREFIX:
        raise ValueError(f"{value!r} is smaller than one release network (a /{SUBNET_PREFIX}): use /{SUBNET_PREFIX} "
                         "or larger (a smaller prefix number)")
    return value


class Environment(Strict):
    target: Literal["local", "ssh", "swarm"]
    hosts: list[Host] = []
    # swarm: the Swarm manager deployctl drives, reached over SSH with the `ssh` settings
    # (and the same pinned known_hosts); the nodes are found with `docker node ls` there.
    manager: Host | None = None
    ssh: SSH = SSH()
    rollout: Rollout = Rollout()
    secrets: Annotated[str, AfterValidator(_secret_source)] = "env"
    env: dict[EnvVarName, str] = {}
    proxy_port: Annotated[int, Field(ge=0, le=65535)] | None = None  # 0: any free port
    proxy_tls_port: Port = 443  # HTTPS, where [proxy] tls is on (proxy_port stays the HTTP one)
    tls: Literal["off", "acme", "files"] | None = None  # None: [proxy] tls (e.g. "off" for a local environment)
    # Several apps on one host (docs/proxy.md, "Several apps on one host"): the host's shared
    # proxy of this name publishes shared_proxy_port and routes [proxy] hosts to this app's own proxy.
    shared_proxy: Name | None = None
    shared_proxy_port: Port = 80
    # With tls on: the port the shared proxy passes HTTPS through on, by SNI, to this app's
    # own proxy_tls_port (which then needs another port).
    shared_proxy_tls_port: Port = 443
    state_dir: str = "/var/lib/deployctl"
    # Hosts (local, ssh): each release network takes a /26 of this private range instead of
    # one of Docker's ~30 default pools ("" = Docker's pools); plan/lifecycle/subnets.py.
    release_subnet_pool: Annotated[str, AfterValidator(_subnet_pool)] = DEFAULT_SUBNET_POOL
    aws_region: Region | None = None  # AWS lookups of this environment (secrets, discover, database)
    discover: Discover | None = None  # instead of hosts: EC2 instances found by their tags
    database: Database | None = None
    accessories: list[Name] = []  # names from [accessories]: booted (when absent) before each deploy
    infra: Infra | None = None  # what `deployctl infra` creates; hosts and database then come from it
    # `deployctl drill` refuses a production environment without --i-mean-it: this says which
    # one is (unset: the name does, `production` or `prod`; plan/judging/drill.is_production).
    production: bool | None = None

    @model_validator(mode="after")
    def _checks(self) -> "Environment":
        if self.hosts and self.discover is not None:
            raise ValueError("give either hosts or discover, not both")
        if self.target == "ssh" and not self.hosts and self.discover is None and self.infra is None:
            raise ValueError("an ssh environment needs at least one entry in hosts, a discover table or an infra table")
        if self.target == "swarm":
            self._swarm_checks()
        elif self.manager is not None:
            raise ValueError(f'manager is only used with target = "swarm" (target is {self.target!r})')
        if self.target == "local" and (self.hosts or self.discover is not None):
            raise ValueError("a local environment deploys to this machine's engine; remove "
                             + ("hosts" if self.hosts else "discover"))
        if self.database is not None:
            for key in (self.database.host_env, self.database.port_env):
                if key in self.env:
                    raise ValueError(f"env.{key} is also set from database.rds_instance; remove one of them")
        if len(set(self.hosts)) != len(self.hosts):
            raise ValueError("hosts lists the same host twice")
        if len(set(self.accessories)) != len(self.accessories):
            raise ValueError("accessories lists the same accessory twice")
        return self

    def _swarm_checks(self) -> None:
        if self.manager is None:
            raise ValueError('a swarm environment needs manager = "HOST" (a Swarm manager reached over SSH)')
        for key, given in (("hosts", self.hosts), ("discover", self.discover), ("infra", self.infra)):
            if given:
                raise ValueError(f"a swarm environment finds its nodes through the manager; remove {key}")

    @model_validator(mode="after")
    def _infra_checks(self) -> "Environment":
        database = self.infra.database if self.infra is not None else None
        if self.infra is not None and self.target != "ssh":
            raise ValueError('infra: the hosts it creates are reached over SSH; set target = "ssh"')
        if database is None:
            return self
        if self.database is not None:
            raise ValueError("give either database (an existing RDS instance) or infra.database, not both")
        if self.secrets == "env":
            raise ValueError('infra.database: `infra apply` stores the generated password in the secret source, '
                             'so secrets must be "ssm:/path/" or "secretsmanager:ID" (it is "env")')
        for key in (database.host_env, database.port_env):
            if key in self.env:
                raise ValueError(f"env.{key} is also set from infra.database; remove one of them")
        return self


def _hook_form(value: object) -> object:
    """A hook is `name = ["argv", ...]` or a table `{ command = [...], secrets, timeout }`;
    never a shell string (it would be split by guesswork, and quoting is where secrets leak)."""
    if isinstance(value, str):
        raise ValueError("a hook is an argv list, never a shell string: write [\"prog\", \"arg\"], "
                         "or [\"sh\", \"-c\", \"...\"] when a shell is really wanted")
    if isinstance(value, list):
        return {"command": value}
    return value


class Hook(Strict):
    """A command run on the machine running deployctl (docs/hooks.md)."""

    command: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    secrets: list[EnvVarName] = []  # only these secrets reach its environment
    timeout: Annotated[float, Field(gt=0, le=3600)] = 60.0


HookEntry = Annotated[Hook, BeforeValidator(_hook_form)]


class Hooks(Strict):
    """[hooks]: when each runs is plan/operate/hooks.py's WHERE (and docs/hooks.md)."""

    pre_build: HookEntry | None = None
    pre_deploy: HookEntry | None = None
    pre_migrate: HookEntry | None = None
    post_deploy: HookEntry | None = None
    post_rollback: HookEntry | None = None
    on_revert: HookEntry | None = None

    @model_validator(mode="after")
    def _checks(self) -> "Hooks":
        if self.pre_build is not None and self.pre_build.secrets:
            raise ValueError("pre_build.secrets: a build has no environment to fetch secrets from; "
                             "give the secrets to the deploy hooks instead")
        return self


def _schedule(value: str) -> str:
    from .cron import CronError, parse_cron  # imported here: this module loads on every command

    try:
        parse_cron(value)
    except CronError as exc:
        raise ValueError(str(exc)) from None
    return value


class Job(Strict):
    """[jobs.NAME]: `command` in a one-off container of `service`'s live image, with its env,
    secrets and networks, on `schedule` (cron, UTC), never twice at once (docs/jobs.md)."""

    service: Name
    command: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    schedule: Annotated[str, AfterValidator(_schedule)]


class Scheduler(Strict):
    """[scheduler]: the container that runs the jobs' schedules on an environment's first
    host. Its image needs `sh` and the `docker` CLI (busybox's date, sleep, flock)."""

    image: str = "docker:27-cli"
    # Names an environment variable that, when set, replaces `image` (as accessories'
    # image_env): where docker:27-cli cannot be pulled, a stand-in without editing deploy.toml.
    image_env: EnvVarName | None = None


class Config(Strict):
    app: Name
    registry: Registry | None = None
    services: Annotated[dict[Name, Service], Field(min_length=1)]
    proxy: Proxy = Proxy()
    test_database: DatabaseForTests = DatabaseForTests()
    accessories: dict[Name, Accessory] = {}
    environments: Annotated[dict[Name, Environment], Field(min_length=1)]
    hooks: Hooks = Hooks()
    jobs: dict[Name, Job] = {}
    scheduler: Scheduler = Scheduler()

    @model_validator(mode="after")
    def _checks(self) -> "Config":
        routed = [n for n, s in self.services.items() if s.routed]
        if len(routed) != 1:
            raise ValueError(
                f"exactly one service must have routed = true (the one nginx sends traffic to); found {len(routed)}"
            )
        self._check_accessories()
        for name, job in self.jobs.items():
            if job.service not in self.services:
                raise ValueError(f"jobs.{name}.service: no service {job.service!r} (services: {', '.join(self.services)})")
        for name, accessory in self.accessories.items():
            if accessory.backup is not None and accessory.backup.schedule and f"backup-{name}" in self.jobs:
                raise ValueError(f"jobs.backup-{name}: that name is the job of accessories.{name}.backup.schedule; "
                                 "give this job another name")
        envs = [(f"services.{n}.env", s.env) for n, s in self.services.items()]
        envs += [(f"environments.{n}.env", e.env) for n, e in self.environments.items()]
        envs += [(f"accessories.{n}.env", a.env) for n, a in self.accessories.items()]
        for where, env in envs:
            for key, value in env.items():
                for ref, part in PLACEHOLDER_RE.findall(value):
                    self._check_placeholder(f"{where}.{key}", ref, part)
        self._check_tls()
        self._check_shared_proxy()
        if any(e.target == "ssh" for e in self.environments.values()) and self.registry is None:
            raise ValueError("an ssh environment pulls images from a registry: add a [registry] table")
        if any(e.target == "swarm" for e in self.environments.values()):
            if self.registry is None:
                raise ValueError("a swarm environment's nodes pull images from a registry: add a [registry] table")
            self._check_swarm_accessories()
            self._check_swarm_services()
        return self

    def tls_for(self, env_name: str) -> str:
        """The HTTPS mode of an environment: its own `tls`, else [proxy] tls."""
        return self.environments[env_name].tls or self.proxy.tls

    def _check_tls(self) -> None:
        modes = {name: self.tls_for(name) for name in self.environments}
        if self.proxy.tls != "off" and not self.environments:
            modes[""] = self.proxy.tls
        if all(mode == "off" for mode in modes.values()):
            if self.proxy.tls == "off" and (unused := self.proxy.tls_unused()):
                raise ValueError(unused)
            return
        for name, mode in modes.items():
            own = name and self.environments[name].tls
            where = f'environments.{name}.tls = "{mode}"' if own else f'proxy.tls = "{mode}"'
            if problem := self.proxy.tls_problem(mode, where):
                raise ValueError(problem)
            environment = self.environments.get(name)
            if mode != "off" and environment is not None:
                http = environment.proxy_port if environment.proxy_port is not None else self.proxy.port
                if http == environment.proxy_tls_port:
                    raise ValueError(f"environments.{name}.proxy_tls_port: {environment.proxy_tls_port} is also its "
                                     "proxy_port (HTTP); HTTPS needs a port of its own")

    def _check_shared_proxy(self) -> None:
        if self.proxy.path_prefix is not None and not any(e.shared_proxy for e in self.environments.values()):
            raise ValueError("proxy.path_prefix only applies through a shared proxy: set shared_proxy in the "
                             "environments that use it, or remove path_prefix")
        for name, environment in self.environments.items():
            if environment.shared_proxy is None:
                continue
            if not self.proxy.hosts:
                raise ValueError(f"environments.{name}.shared_proxy needs proxy.hosts = [\"name.example.com\"]: the "
                                 "host names the shared proxy routes to this app")
            http = environment.proxy_port if environment.proxy_port is not None else self.proxy.port
            if http == environment.shared_proxy_port:
                raise ValueError(f"environments.{name}.proxy_port: {http} is also its shared_proxy_port; the app's own "
                                 "proxy needs another port (0: any free one)")
            if self.tls_for(name) == "off":
                continue
            if environment.shared_proxy_tls_port == environment.shared_proxy_port:
                raise ValueError(f"environments.{name}.shared_proxy_tls_port: {environment.shared_proxy_tls_port} is "
                                 "also its shared_proxy_port; HTTPS needs a port of its own")
            if environment.proxy_tls_port in (environment.shared_proxy_tls_port, environment.shared_proxy_port):
                raise ValueError(f"environments.{name}.proxy_tls_port: {environment.proxy_tls_port} is also a port "
                                 f"of its shared proxy (shared_proxy_port {environment.shared_proxy_port}, "
                                 f"shared_proxy_tls_port {environment.shared_proxy_tls_port}); the app's own proxy "
                                 "needs another HTTPS port (e.g. 8443), which the shared proxy passes HTTPS on to")

    def _check_swarm_services(self) -> None:
        """`docker service create` has no --security-opt: a service that asks for
        no_new_privileges explicitly cannot have it on a Swarm, and is refused rather than
        deployed without it. (Left at its default, it applies to hosts only: docs/swarm.md.)"""
        swarm = sorted(n for n, e in self.environments.items() if e.target == "swarm")
        for name, service in self.services.items():
            if "no_new_privileges" in service.model_fields_set and service.no_new_privileges:
                raise ValueError(f"services.{name}.no_new_privileges: a Swarm service cannot be given "
                                 f"no-new-privileges (docker service create has no --security-opt), and "
                                 f"environments.{swarm[0]} is a swarm environment; remove the key (it then "
                                 "applies on ssh and local environments only)")

    def _check_swarm_accessories(self) -> None:
        """An accessory's data is in named volumes, which live on the node its task ran on:
        Swarm must not move it elsewhere. (Its `files` become Docker configs, which Swarm
        hands to whichever node runs it.)"""
        used = {a for e in self.environments.values() if e.target == "swarm" for a in e.accessories}
        for name in sorted(used):
            accessory = self.accessories[name]
            if accessory.volumes and not accessory.placement:
                raise ValueError(f"accessories.{name}.placement: on a swarm environment an accessory with volumes "
                                 "must be pinned to a node (its data stays on that node), e.g. "
                                 'placement = ["node.hostname==db-1"]')

    def _check_accessories(self) -> None:
        for name in self.services:
            if name in RESERVED_NAMES:
                raise ValueError(f"services.{name}: {name!r} is a reserved name; choose another")
        for name in self.accessories:
            if name in self.services or name in RESERVED_NAMES:
                raise ValueError(f"accessories.{name}: the name is taken by "
                                 f"{'a service' if name in self.services else 'the proxy' if name == 'proxy' else 'deployctl'}; "
                                 "choose another")
        for env_name, env in self.environments.items():
            for name in env.accessories:
                if name not in self.accessories:
                    defined = ", ".join(self.accessories) or "none"
                    raise ValueError(f"environments.{env_name}.accessories: no accessory {name!r} "
                                     f"(defined: {defined})")

    def _check_placeholder(self, where: str, ref: str, part: str) -> None:
        """{{ NAME.host|port|url }} names a service (of the same release) or an accessory."""
        if ref in self.services:
            if self.services[ref].worker:
                raise ValueError(f"{where}: {ref!r} is a worker (worker = true): it has no address to reach")
            if where.startswith("accessories."):
                raise ValueError(f"{where}: an accessory is not part of a release, so it cannot name the "
                                 f"service {ref!r}")
            return
        if ref in self.accessories:
            if part == "port" and self.accessories[ref].port is None:
                raise ValueError(f"{where}: {{{{ {ref}.port }}}} needs accessories.{ref}.port")
            return
        if not self.accessories:
            raise ValueError(f"{where}: {{{{ {ref}... }}}} names no service (services: {', '.join(self.services)})")
        raise ValueError(f"{where}: {{{{ {ref}... }}}} names no service or accessory "
                         f"(services: {', '.join(self.services)}; accessories: {', '.join(self.accessories)})")

    @property
    def routed_service(self) -> str:
        return next(n for n, s in self.services.items() if s.routed)
