"""The exact `docker` argv lists a `swarm` environment runs on its manager (and on each
node for the proxy), as data: tests compare the lists, services/swarm/swarm_site.py runs them.

A release's service is a Swarm service named like a container of the other targets
(`<app>-<env>-<service>-<release>`), so the new release starts beside the live one and a
service reaches another *of its own release* by that name on the app's overlay network,
or by its deploy.toml name (`http://backend:5001`, as compose services call each other) on
the release's own overlay network, where each service carries that name as an alias and
no other release's tasks are.
Everything is `--endpoint-mode dnsrr` and host-mode ports: Swarm's routing mesh and VIPs
are not used (they drop requests during updates, moby#30321, and need IPVS). The proxy is
a global service (one nginx per node) that resolves the live release's tasks by DNS.

Nothing secret is on an argv: a secret becomes a Docker secret created from stdin, and an
env value using `{{ secret.* }}` reaches the service spec from an env file (mode 0600) that
the docker CLI reads on the manager.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass, field

from ...config.models import Config, Environment
from ..lifecycle import docker_commands as dc
from ..lifecycle.containers import release_containers
from ..cloud.hardening import Hardening
from ..lifecycle.names import Names, StateLayout
from ..edge.proxy_config import CONFIG_PATH, PROXY_MOUNT
from ..edge.tls_config import TLS_LISTEN_PORT
from ..lifecycle.release_spec import HealthProbe, ReleaseSpec

SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"  # on every task's container
STOP_GRACE = "10s"  # as the other targets' `docker stop` timeout: in-flight requests finish
TASK_FORMAT = "{{.ID}}\t{{.Name}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}\t{{.Error}}"
NODE_FORMAT = ("{{.Description.Hostname}}\t{{.Status.Addr}}\t{{.Status.State}}\t{{.Spec.Availability}}\t"
               "{{if .ManagerStatus}}{{.ManagerStatus.Addr}}{{end}}")
SECRET_NAME_MAX = 64  # Docker's limit on a secret's name


@dataclass(frozen=True)
class SwarmService:
    """One service of a release as a Swarm service."""

    service: str
    name: str  # the Swarm service's name, also its DNS name on the overlay network
    image: str
    port: int
    replicas: int
    env: dict[str, str]
    health: HealthProbe
    routed: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    env_file: str = ""  # on the manager, mode 0600; the docker CLI reads it (no value on the argv)
    secrets: tuple[tuple[str, str], ...] = ()  # (Docker secret name, file name under /run/secrets)
    secret_env: dict[str, str] = field(default_factory=dict)  # templated; rendered only into env_file
    hardening: Hardening | None = None  # capabilities, read-only root and limits (plan/cloud/hardening.py)
    command: tuple[str, ...] = ()  # after the image: overrides its CMD (a worker's, say)


def within_name_limit(full: str, end: str) -> str:
    """A Docker secret or config name within Docker's 64 characters: `full` when it fits,
    else a hash of it and its readable `end`."""
    if len(full) <= SECRET_NAME_MAX:
        return full
    return f"{hashlib.sha256(full.encode()).hexdigest()[:12]}-{end}"[:SECRET_NAME_MAX]


def secret_name(names: Names, release: str, service: str, secret: str) -> str:
    """Release-scoped (a rollback finds its release's secrets unchanged) and within Docker's
    64 characters: a long one keeps its readable end and a hash of the whole."""
    return within_name_limit(f"{names.prefix}-{release}-{service}-{secret}", secret)


def release_services(config: Config, environment: Environment, env_name: str, spec: ReleaseSpec,
                     layout: StateLayout, replicas: dict[str, int] | None = None) -> list[SwarmService]:
    """The release's services from the same container specs the other targets run (env,
    placeholders resolved to this release's names, `<NAME>_FILE` per secret). `replicas`:
    counts that override deploy.toml's (a rollback runs what the release ran)."""
    names = Names(config.app, env_name)
    images = {s.service: s.image for s in spec.services}
    containers = release_containers(config, environment, env_name, spec.release, spec.revision, images, layout)
    health = {s.service: s.health for s in spec.services}
    out = []
    for c in containers:
        count = (replicas or {}).get(c.service, config.services[c.service].replicas)
        out.append(SwarmService(
            service=c.service, name=c.name, image=c.image, port=c.port, replicas=count, env=c.env,
            health=health[c.service], routed=c.routed, labels=c.labels, env_file=c.env_file,
            secrets=tuple((secret_name(names, spec.release, c.service, s), s) for s in c.secrets),
            secret_env=c.secret_env, hardening=c.hardening, command=c.command,
        ))
    return out


def _labels(flag: str, labels: dict[str, str]) -> list[str]:
    return [arg for k, v in sorted(labels.items()) for arg in (flag, f"{k}={v}")]


def _seconds(value: float) -> str:
    return f"{max(1, round(value * 1000))}ms"


def health_flags(probe: HealthProbe) -> list[str]:
    """`docker`: the image's own HEALTHCHECK (no flag). `command`: run in each task the way
    `docker exec` would, every `interval`; Swarm then keeps a task `starting` until it passes
    and replaces a task that fails it. `http`/`tcp`: deployctl checks every task itself
    before the switch (services/swarm/swarm_health.py), as on ssh hosts; the image's own
    HEALTHCHECK is switched off, so Swarm never stops a task on a check the config did not
    choose (and one that needs a curl the image lacks)."""
    if probe.kind in ("http", "tcp", "running"):  # running: a worker, ready when its tasks run
        return ["--no-healthcheck"]
    if probe.kind != "command":
        return []
    return ["--health-cmd", shlex.join(probe.command), "--health-interval", _seconds(max(probe.interval, 1.0)),
            "--health-timeout", _seconds(max(probe.interval, 2.0)), "--health-retries", "3",
            "--health-start-period", _seconds(probe.timeout)]


def create_network(network: str, labels: dict[str, str]) -> list[str]:
    """The app's overlay network: every release's services and the proxy on each node.
    Attachable, so a migration job and a quick `docker run` for a look can join it."""
    return ["docker", "network", "create", "--driver", "overlay", "--attachable", *_labels("--label", labels),
            network]


def create_release_network(names: Names, release: str) -> list[str]:
    """The release's own overlay network (names.release_network): its services' deploy.toml
    names resolve there to this release's tasks only. Removed with the release."""
    return ["docker", "network", "create", "--driver", "overlay", *_labels("--label", names.labels("network", release)),
            names.release_network(release)]


def remove_network(network: str) -> list[str]:
    return ["docker", "network", "rm", network]


def inspect_network(network: str) -> list[str]:
    return ["docker", "network", "inspect", "--format", "{{.Driver}}", network]


def create_secret(name: str, labels: dict[str, str]) -> list[str]:
    """The value comes on stdin."""
    return ["docker", "secret", "create", *_labels("--label", labels), name, "-"]


def list_secrets(names: Names, release: str | None = None) -> list[str]:
    filters = ["--filter", f"label=io.deployctl.app={names.app}", "--filter", f"label=io.deployctl.env={names.env}"]
    if release:
        filters += ["--filter", f"label=io.deployctl.release={release}"]
    return ["docker", "secret", "ls", *filters, "--format", "{{.Name}}"]


def remove_secrets(secrets: list[str]) -> list[str]:
    return ["docker", "secret", "rm", *secrets]


def create_config(name: str, labels: dict[str, str]) -> list[str]:
    """A Docker config (a file Swarm hands to the node running a task); content on stdin."""
    return ["docker", "config", "create", *_labels("--label", labels), name, "-"]


def list_configs(labels: dict[str, str]) -> list[str]:
    return ["docker", "config", "ls", *[a for k, v in sorted(labels.items()) for a in ("--filter", f"label={k}={v}")],
            "--format", "{{.Name}}"]


def remove_configs(configs: list[str]) -> list[str]:
    return ["docker", "config", "rm", *configs]


def _service_body(svc: SwarmService, network: str, labels: dict[str, str], release_network: str = "") -> list[str]:
    """`release_network`: also on the release's own network, as its deploy.toml name."""
    env = [arg for k, v in sorted(svc.env.items()) for arg in ("--env", f"{k}={v}")]
    env_file = ["--env-file", svc.env_file] if svc.env_file else []
    # A relative target is a file under /run/secrets (SECRETS_MOUNT), where <NAME>_FILE points.
    secrets = [arg for name, target in svc.secrets for arg in ("--secret", f"source={name},target={target}")]
    own = ([("--network", f"name={release_network},alias={svc.service}")]
           if release_network else [])
    return [
        "--network", network, *[arg for pair in own for arg in pair],
        *_labels("--label", labels), *_labels("--container-label", labels),
        *env, *env_file, *secrets, "--log-opt", "max-size=10m", "--no-resolve-image",
        *(svc.hardening.swarm_flags() if svc.hardening else []),
    ]


def create_service(svc: SwarmService, network: str, registry_auth: bool | str = False,
                   release_network: str = "") -> list[str]:
    """Created detached: the switch waits for every task itself (services/swarm/swarm_site.py).
    The image is pinned by digest, so the manager need not ask the registry (no resolve).
    `registry_auth`: the manager logged in to the registry; its credentials go to the nodes
    with the service (Swarm's own channel), so each node can pull."""
    return [
        *dc.with_registry_auth(registry_auth),
        "--name", svc.name, "--replicas", str(svc.replicas),
        "--endpoint-mode", "dnsrr", *_service_body(svc, network, svc.labels, release_network),
        "--restart-condition", "any", "--restart-delay", "1s", "--stop-grace-period", STOP_GRACE,
        "--update-order", "start-first", *health_flags(svc.health), svc.image, *svc.command,
    ]


def migration_job(svc: SwarmService, network: str, name: str, command: list[str] | tuple[str, ...],
                  labels: dict[str, str]) -> list[str]:
    """A one-off task of the new image with the service's env and secrets (a replicated
    job: it runs once, anywhere in the Swarm, and is not restarted when it fails), on the
    environment's network (the accessories, `{{ db.host }}`). Not on the release's own
    network: no task of the release runs yet for a name there to reach, and attaching the
    job's task to that network, new on its node, cost the job 0.7 s (median of 4, load 15)."""
    return ["docker", "service", "create", "--detach", "--name", name, "--mode", "replicated-job",
            "--restart-condition", "none", *_service_body(svc, network, labels), svc.image, *command]


JOB_WAIT = 30.0  # seconds one wait for a job answers within (run_job's own bound is the deploy's)
JOB_POLL = 0.2  # how often the manager asks Swarm meanwhile (as `docker service create --detach=false` does)
ENDED = ("Complete", "Failed", "Rejected")  # a job's task states it does not leave


def wait_job(name: str, seconds: float = JOB_WAIT) -> list[str]:
    """On the manager: until the job's task ended (its state one of ENDED), asked there every
    JOB_POLL s, at most `seconds`; prints its tasks as `service_tasks` does (exit 0 ended, 1 not
    within `seconds`, 2 `docker service ps` failed). One round trip for the whole wait, where
    a look from here every 0.5 s cost a round trip each and up to 0.5 s after the end (issue 26)."""
    tries = max(1, int(seconds / JOB_POLL))
    ended = "|".join(f'*"$t"{state}\\ *' for state in ENDED)
    script = ("t=$(printf '\\t'); i=0; while :; do out=$(\"$@\") || exit 2; "
              f"case \"$out\" in {ended}) printf '%s\\n' \"$out\"; exit 0;; esac; "
              f"i=$((i+1)); if [ $i -ge {tries} ]; then printf '%s\\n' \"$out\"; exit 1; fi; sleep {JOB_POLL:g}; done")
    return ["sh", "-c", script, "sh", *service_tasks([name])]


def scale(counts: dict[str, int]) -> list[str]:
    return ["docker", "service", "scale", "--detach", *[f"{name}={count}" for name, count in sorted(counts.items())]]


def remove_services(services: list[str]) -> list[str]:
    return ["docker", "service", "rm", *services]


def service_tasks(services: list[str]) -> list[str]:
    return ["docker", "service", "ps", "--no-trunc", "--format", TASK_FORMAT, *services]


def running_tasks(service: str) -> list[str]:
    """On the manager: the service's tasks meant to run (the format parse_tasks reads): where
    `exec` and `accessory exec` find a container, and an accessory its node."""
    return ["docker", "service", "ps", "--no-trunc", "--filter", "desired-state=running", "--format", TASK_FORMAT,
            service]


def service_logs(service: str, lines: int = 50, *, follow: bool = False, raw: bool = False) -> list[str]:
    """Every task's lines, each prefixed with its task and node (`deployctl logs`), or raw
    (a migration job's output)."""
    return ["docker", "service", "logs", *(["--raw"] if raw else []), "--tail", str(lines),
            *(["--follow"] if follow else []), service]


def list_services(names: Names) -> list[str]:
    """This environment's services with their replica counts (`running/wanted`) and role."""
    return ["docker", "service", "ls", *_env_filters(names), "--format", "{{.Name}}\t{{.Replicas}}"]


def _env_filters(names: Names) -> list[str]:
    return ["--filter", f"label=io.deployctl.app={names.app}", "--filter", f"label=io.deployctl.env={names.env}"]


def inspect_services(services: list[str]) -> list[str]:
    return ["docker", "service", "inspect", "--format",
            '{{.Spec.Name}}\t{{index .Spec.Labels "io.deployctl.release"}}\t'
            '{{index .Spec.Labels "io.deployctl.service"}}\t'
            "{{if .Spec.Mode.Replicated}}{{.Spec.Mode.Replicated.Replicas}}{{end}}", *services]


LISTING_FAILED = 2  # _inspect_listed's exit code when its listing (`docker service ls`, `docker node ls`) failed


def inspect_listed_services(names: Names) -> list[str]:
    """On the manager, in one round trip: this environment's services (list_services' label
    filters, their ids) inspected as inspect_services prints them; nothing when there are
    none (exit 0), exit LISTING_FAILED when the listing failed, else the inspect's own exit
    code. Where list_services then inspect_services cost two round trips, each 0.1-0.4 s on
    a loaded manager, on every deploy's and rollback's critical path (issue 26)."""
    return _inspect_listed(inspect_services([]), ["docker", "service", "ls", "-q", *_env_filters(names)])


def _inspect_listed(inspect: list[str], listing: list[str]) -> list[str]:
    """`listing` (ids, one a line) then `inspect` of them, in one command on the manager: exit
    0 with nothing when none, LISTING_FAILED when the listing failed, else the inspect's own."""
    script = f'ids=$("$@") || exit {LISTING_FAILED}; [ -n "$ids" ] || exit 0; exec {shlex.join(inspect)} $ids'
    return ["sh", "-c", script, "sh", *listing]


def list_nodes() -> list[str]:
    return ["docker", "node", "ls", "--format", "{{.ID}}"]


def inspect_nodes(ids: list[str]) -> list[str]:
    return ["docker", "node", "inspect", "--format", NODE_FORMAT, *ids]


def inspect_listed_nodes() -> list[str]:
    """On the manager, in one round trip: every node listed (list_nodes) and inspected as
    inspect_nodes prints them; nothing when there are none (exit 0), exit LISTING_FAILED when
    the listing failed, else the inspect's own. Where the two cost a round trip each on the
    nodes' prefetch, the switch's listing and every other look at the nodes (issue 26)."""
    return _inspect_listed(inspect_nodes([]), list_nodes())


def swarm_state() -> list[str]:
    """The node's Swarm state and, third, the engine's version: a Swarm command's first call
    on the manager says both (the `docker version` of a host's preflight was one more round
    trip before anything else)."""
    return ["docker", "info", "--format", "{{.Swarm.LocalNodeState}}\t{{.Swarm.ControlAvailable}}\t{{.ServerVersion}}"]


def server_version(stdout: str) -> str:
    """The engine's version from what `swarm_state` printed ("" when it printed none)."""
    parts = stdout.strip("\n").split("\t")
    return parts[2].strip() if len(parts) > 2 else ""


def manager_state(stdout: str) -> str:
    """What `swarm_state` printed, read: "manager" (active, in control), "unsettled" (active,
    but the control field empty: a manager under load once answered so for a moment, on a CI
    run, right after a worker's restart; asked again, it said true), else "no" (a worker
    says `active<TAB>false`, a node outside a Swarm `inactive`)."""
    state, _, control = stdout.strip("\n").partition("\t")
    control = control.split("\t", 1)[0]  # the version follows
    if state.strip() != "active":
        return "no"
    control = control.strip()
    return "manager" if control == "true" else "unsettled" if control == "" else "no"


def proxy_service(names: Names, image: str, proxy_dir: str, published: int, listen_port: int,
                  labels: dict[str, str], tls_port: int | None = None) -> list[str]:
    """nginx on every node (global), publishing the port on the node itself (host mode: no
    routing mesh), reading the configuration deployctl writes into each node's state dir.
    `tls_port`: HTTPS on (docs/tls.md), published too (443 inside, as on hosts)."""
    return [
        "docker", "service", "create", "--detach", "--name", names.proxy, "--mode", "global",
        "--endpoint-mode", "dnsrr", "--network", names.network,
        "--publish", publish(published, listen_port),
        *(["--publish", publish(tls_port, TLS_LISTEN_PORT)] if tls_port is not None else []),
        "--mount", f"type=bind,source={proxy_dir},target={PROXY_MOUNT},readonly",
        *_labels("--label", labels), *_labels("--container-label", labels),
        "--restart-condition", "any", "--restart-delay", "1s", "--log-opt", "max-size=10m", "--no-resolve-image",
        # Stopped gracefully (a new image rolled over the nodes, a node drained): nginx
        # finishes the requests it holds instead of cutting them (TERM is its fast exit).
        "--stop-signal", "QUIT",
        "--entrypoint", "nginx", image, "-c", CONFIG_PATH, "-g", "daemon off;",
    ]


def publish(published: int, target: int) -> str:
    return f"mode=host,target={target},published={published},protocol=tcp"


def proxy_published(names: Names) -> list[str]:
    """The node ports the proxy service publishes, one a line."""
    return ["docker", "service", "inspect", "--format",
            "{{range .Spec.EndpointSpec.Ports}}{{println .PublishedPort}}{{end}}", names.proxy]


def publish_proxy_port(names: Names, published: int, target: int) -> list[str]:
    """A port added to the existing proxy service (HTTPS turned on after its first deploy):
    its tasks are replaced as a new image's are (update_proxy_image), one node at a time."""
    return ["docker", "service", "update", "--detach=false", "--quiet", "--publish-add", publish(published, target),
            *_ROLLING, names.proxy]


def proxy_image(names: Names) -> list[str]:
    """The image the proxy service runs (as given: it is created with --no-resolve-image)."""
    return ["docker", "service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", names.proxy]


def update_proxy_image(names: Names, image: str) -> list[str]:
    """A new proxy image rolled over the nodes: one node at a time (a host-mode port cannot
    be held by two tasks, so each task stops before its replacement starts), nginx stopped
    gracefully (QUIT: it finishes what it holds), a pause between nodes, and back to the
    old image if a new task fails. Meanwhile the load balancer sends a node's refused
    connections to the other nodes. Waits (--detach=false) until every node runs it."""
    return ["docker", "service", "update", "--detach=false", "--quiet", "--image", image, "--no-resolve-image",
            *_ROLLING, names.proxy]


_ROLLING = ("--stop-signal", "QUIT", "--update-parallelism", "1", "--update-order", "stop-first",
            "--update-delay", "2s", "--update-failure-action", "rollback")


def proxy_container(names: Names) -> list[str]:
    """On one node: the running container of its proxy task."""
    return ["docker", "ps", "-q", "--filter", f"label={SWARM_SERVICE_LABEL}={names.proxy}",
            "--filter", "status=running"]


RESOLVE_WAIT = 10.0  # seconds a node's proxy waits for Docker's DNS to know a new release's tasks
RESOLVE_POLL = 0.2
NO_RESOLVER = 3  # the wait's exit code when the proxy image has no getent to ask with


def wait_resolved(container: str, hostnames: list[str], seconds: float = RESOLVE_WAIT) -> list[str]:
    """On one node, in its proxy task: until every name (`tasks.<service>` of a release)
    resolves there, at most `seconds` (exit 1 then; NO_RESOLVER without getent). Docker's
    DNS learns of tasks on other nodes by gossip: right after they start, a node can answer
    "no address" for a moment, and a request routed there (or a task there calling another
    service of its release by name) fails although the release is good (docs/swarm.md)."""
    tries = max(1, int(seconds / RESOLVE_POLL))
    script = (f"command -v getent >/dev/null 2>&1 || exit {NO_RESOLVER}; i=0; "
              "while :; do ok=1; for n in \"$@\"; do getent hosts \"$n\" >/dev/null 2>&1 || ok=0; done; "
              f"[ $ok = 1 ] && exit 0; i=$((i+1)); [ $i -ge {tries} ] && exit 1; sleep {RESOLVE_POLL}; done")
    return ["docker", "exec", container, "sh", "-c", script, "sh", *hostnames]


STAGED_REFUSED = 4  # wait_resolved_and_test's exit code when `nginx -t` refuses the staged file
TESTED = "staged file tested"  # what wait_resolved_and_test prints once `nginx -t` passed


def wait_resolved_and_test(container: str, hostnames: list[str], staged: str,
                           seconds: float = RESOLVE_WAIT) -> list[str]:
    """`wait_resolved`, then in the same `docker exec` `nginx -t` of the staged file
    (`staged`, its path in the task): the route's test, before any node swaps, without an
    exec of its own in the swap (0.4-1 s under load, issue 26). Exit codes as
    `wait_resolved`'s (the DNS wait's outcome) once the test passed, which it says on stdout
    (TESTED); STAGED_REFUSED when nginx refuses the file (its stderr says why)."""
    tries = max(1, int(seconds / RESOLVE_POLL))
    script = (f"r=0; if command -v getent >/dev/null 2>&1; then i=0; "
              "while :; do ok=1; for n in \"$@\"; do getent hosts \"$n\" >/dev/null 2>&1 || ok=0; done; "
              f"[ $ok = 1 ] && break; i=$((i+1)); [ $i -ge {tries} ] && {{ r=1; break; }}; sleep {RESOLVE_POLL}; "
              f"done; else r={NO_RESOLVER}; fi; "
              f"nginx -t -q -c {shlex.quote(staged)} || exit {STAGED_REFUSED}; echo {shlex.quote(TESTED)}; exit $r")
    return ["docker", "exec", container, "sh", "-c", script, "sh", *hostnames]


# -- what the manager answers ------------------------------------------------------------------

@dataclass(frozen=True)
class Task:
    id: str
    name: str  # service.slot
    node: str
    desired: str  # Running | Shutdown | Complete ...
    state: str  # "Running 5 seconds ago", "Starting 1 second ago", "Failed ..."
    error: str = ""

    @property
    def running(self) -> bool:
        """With a health check, Swarm reports a task running only once it passed."""
        return self.state.startswith("Running")

    @property
    def complete(self) -> bool:
        return self.state.startswith("Complete")

    @property
    def failed(self) -> bool:
        return self.state.startswith(("Failed", "Rejected"))

    @property
    def service(self) -> str:
        return self.name.rsplit(".", 1)[0]


def parse_tasks(text: str) -> list[Task]:
    tasks = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 5:
            continue
        name = parts[1].lstrip("\\_ ").strip()
        tasks.append(Task(parts[0].strip(), name, parts[2].strip(), parts[3].strip(), parts[4].strip(),
                          parts[5].strip() if len(parts) > 5 else ""))
    return tasks


def ready(tasks: list[Task], wanted: dict[str, int]) -> dict[str, tuple[int, int]]:
    """service -> (running, wanted) for each service not yet at its count of running tasks
    (desired running); empty when all are."""
    out = {}
    for service, count in wanted.items():
        running = sum(1 for t in tasks if t.service == service and t.desired == "Running" and t.running)
        if running < count:
            out[service] = (running, count)
    return out


@dataclass(frozen=True)
class Node:
    hostname: str
    address: str
    state: str  # ready | down | unknown
    availability: str  # active | pause | drain

    @property
    def serving(self) -> bool:
        return self.state == "ready" and self.availability == "active"


def parse_nodes(text: str) -> list[Node]:
    """A manager's own Status.Addr can read 0.0.0.0: its ManagerStatus.Addr (ip:2377) names it."""
    nodes = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 4:
            continue
        address = parts[1].strip()
        manager = parts[4].strip() if len(parts) > 4 else ""
        if address in ("", "0.0.0.0") and manager:
            address = manager.rsplit(":", 1)[0]
        nodes.append(Node(parts[0].strip(), address, parts[2].strip(), parts[3].strip()))
    return nodes
