"""A scripted fake Swarm for the Connector protocol: tests/support/fake_host.py's FakeHost
(files, locks, faults by pattern, nginx in a container), extended with what a Swarm
manager answers (plan/swarm/services.py's argvs: `docker info`, nodes, services, tasks,
secrets, overlay networks) and one FakeHost per node for the global proxy's tasks. A Swarm
deploy or rollback (services/swarm/swarm_deploy.py) runs whole on it in milliseconds, so the
Swarm site's lifecycle rules are pinned the way tests/unit/test_lifecycle_rules.py pins a
host's; tests/faults/test_swarm_faults.py proves the same rows on the real 3-node Swarm.

One list of Faults scripts the manager and every node (`FakeSwarm.faults`, shared): a
node's calls are matched by the same patterns (a node's `run` of the staged swap, its
`http_get` of 127.0.0.1:PORT for the verify), counted across the nodes in call order.

Modelled: a service's tasks are running at once (`crashing_services`: a service whose name matches
fails its task at start; `starting`: one whose tasks never pass their health check); a
replicated job completes (`failing_jobs`: fails, exit 3); the global proxy runs one nginx container per node, which loads
the node's nginx.conf as it starts and on the swap's HUP; a node answers 127.0.0.1:PORT
through its nginx's *loaded* configuration (its `# live:` release, or its standby's while
the standby's flag file exists in the node's proxy directory) with the release stamp,
502 when that release has no running task, the app's 500 "No address associated with
hostname" while the node's DNS does not know one of that release's services yet
(`gossip`: Docker's DNS gossip delay per node; the route's wait_resolved waits for it). Not modelled: the proxy image's rolling update
(the image is replaced), placement, secrets' contents, service logs (empty), deployctl's
own http/tcp task checks (use `docker` health checks here).
"""

from __future__ import annotations

import errno
import json
import re
import time
from dataclasses import dataclass, field
from typing import Sequence

from deployctl.adapters.connector import CommandResult, HttpResponse
from deployctl.plan.edge.proxy_config import PROXY_MOUNT, RELEASE_HEADER, live_release, standby_of
from deployctl.plan.edge.maintenance import VERIFY_HEADER
from deployctl.plan.edge.maintenance import state_of as maintenance_state
from deployctl.plan.edge.tls_config import CERTIFICATE_HEADER
from deployctl.plan.lifecycle.names import LABEL_RELEASE
from deployctl.plan.swarm import services as sw
from tests.support.fake_host import OK, Container, FakeHost, Fault

__all__ = ["FakeSwarm", "Fault"]
UPSTREAM = re.compile(r"set \$deployctl_upstream tasks\.(\S+);")
STANDBY = re.compile(r"tasks\.(\S+):\d+")  # a Swarm configuration's standby address


@dataclass
class Service:
    name: str
    image: str
    labels: dict[str, str]
    replicas: int | None  # None: global
    job: bool = False
    tasks: int = 0  # how many tasks were made (ids)
    published: int | None = None
    ports: list[int] = field(default_factory=list)  # every published port (HTTP first, then HTTPS)
    source: str = ""  # the proxy's bind-mounted directory on each node
    args: list[str] = field(default_factory=list)


class FakeNode(FakeHost):
    """One node of the Swarm as deployctl reaches it over SSH: its files (the proxy's
    directory), its proxy task's nginx container, its loopback on the published port."""

    def __init__(self, swarm: "FakeSwarm", hostname: str, address: str) -> None:
        super().__init__(address)
        self.swarm, self.hostname = swarm, hostname
        self.faults = swarm.faults  # one script for the whole Swarm
        self._lock = swarm._lock

    def http_get(self, address: str, port: int, path: str, timeout: float = 2.0,
                 headers: dict | None = None) -> HttpResponse:
        scripted = self._scripted_http(address, port, path)
        if scripted is not None:
            return scripted
        with self._lock:
            proxy = self.swarm.services.get(self.swarm.names.proxy)
            nginx = self.proxy_task()
            if address != "127.0.0.1" or proxy is None or proxy.published != port or nginx is None:
                raise ConnectionRefusedError(errno.ECONNREFUSED, f"{address}:{port}: connection refused")
            down = maintenance_state(nginx.loaded)  # as a host's proxy (tests/support/fake_host.py)
            if down is not None and (headers or {}).get(VERIFY_HEADER) != down.token:
                return HttpResponse(503, b"maintenance", {"retry-after": str(down.retry_after)})
            release, text = live_release(nginx.loaded), (nginx.loaded or b"").decode()
            if release is None:
                return HttpResponse(503, b"No release deployed yet\n", {})
            upstream = UPSTREAM.search(text)
            standby = standby_of(nginx.loaded)
            if standby is not None and f"{nginx.mounts[PROXY_MOUNT]}/{standby.flag}" in self.files:
                # nginx stats the loaded configuration's standby flag per request (no reload)
                release, upstream = standby.release, STANDBY.fullmatch(standby.address)
            stamp = {RELEASE_HEADER.lower(): release}
            if nginx.certificate:  # the HTTPS snippet's header, on every answer (plan/edge/tls_config.py)
                stamp[CERTIFICATE_HEADER.lower()] = nginx.certificate
            if upstream is None or self.swarm.running(upstream.group(1)) == 0:
                return HttpResponse(502, b"502 Bad Gateway", stamp)
            if self.unresolved(s.name for s in self.swarm.services.values() if s.labels.get(LABEL_RELEASE) == release):
                # the app's own error: a task here calling another service of its release by name
                return HttpResponse(500, b"No address associated with hostname", stamp)
            body = {"release": release, "frontend": {"release": release}, "backend": {"release": release}}
            return HttpResponse(200, json.dumps(body).encode(), stamp)

    def unresolved(self, services) -> list[str]:  # type: ignore[no-untyped-def]
        """The services whose tasks this node's DNS does not know yet (FakeSwarm.gossip)."""
        delay = self.swarm.gossip.get(self.hostname, 0.0)
        now = time.monotonic()
        return [name for name in services if self.swarm.created.get(name, -1e18) + delay > now]

    def proxy_task(self) -> Container | None:
        """The global proxy's running task on this node (not a canary's watchdog beside it)."""
        return next((c for c in self.containers.values() if c.status == "running"
                     and c.labels.get(sw.SWARM_SERVICE_LABEL) == self.swarm.names.proxy), None)

    def serving(self) -> str | None:  # type: ignore[override]
        """The release this node's proxy answers from now (its loaded configuration)."""
        nginx = self.proxy_task()
        return live_release(nginx.loaded) if nginx is not None else None

    def _docker_ps(self, args: list[str]) -> CommandResult | None:
        if "-q" in args:  # plan/swarm/services.proxy_container: the running proxy task's container
            wanted = [f.removeprefix("label=").split("=", 1) for f in args if f.startswith("label=")]
            found = [c.name for c in self.containers.values() if c.status == "running"
                     and all(c.labels.get(k) == v for k, v in wanted)]
            return CommandResult(0, "".join(f"{name}\n" for name in found), "")
        return super()._docker_ps(args)

    def _docker_exec(self, args: list[str]) -> CommandResult | None:
        if len(args) > 4 and args[1:3] == ["sh", "-c"] and args[3].startswith("r=0; if command -v getent"):
            # plan/swarm/services.wait_resolved_and_test: the wait above, then `nginx -t` of the staged file
            waited = self._docker_exec([args[0], "sh", "-c", "command -v getent" + args[3].split("getent", 1)[1],
                                        *args[4:]])
            staged = re.search(r"nginx -t -q -c (\S+) \|\|", args[3]).group(1)  # type: ignore[union-attr]
            tested = self._docker_exec([args[0], "nginx", "-t", "-q", "-c", staged])
            if tested is None or not tested.ok:
                return CommandResult(sw.STAGED_REFUSED, "", tested.stderr if tested is not None else "no nginx")
            return CommandResult(waited.rc if waited is not None else 0, sw.TESTED + "\n", "")
        if len(args) > 4 and args[1:3] == ["sh", "-c"] and args[3].startswith("command -v getent"):
            # plan/swarm/services.wait_resolved: its loop, in virtual time, up to its bound
            bound = int(re.search(r"-ge (\d+) \]", args[3]).group(1)) * sw.RESOLVE_POLL  # type: ignore[union-attr]
            services = [name.removeprefix("tasks.") for name in args[5:]]
            started = time.monotonic()
            while self.unresolved(services):
                if time.monotonic() - started >= bound:
                    return CommandResult(1, "", "")
                time.sleep(sw.RESOLVE_POLL)
            return OK
        # The proxy task started now: `docker exec C sh -c "nginx -t -q -c F && nginx -s reload -c F"`.
        if len(args) == 4 and args[1:3] == ["sh", "-c"] and args[3].startswith("nginx -t"):
            result = OK
            for part in args[3].split(" && "):
                result = self._docker_exec([args[0], *part.split()])  # type: ignore[assignment]
                if not result.ok:
                    break
            return result
        return super()._docker_exec(args)

    def start_proxy(self, service: Service) -> None:
        """The global proxy's task on this node: nginx loading the node's nginx.conf."""
        name = f"{service.name}.{self.hostname}"
        nginx = Container(name, service.image, {sw.SWARM_SERVICE_LABEL: service.name}, {}, args=list(service.args),
                          mounts={PROXY_MOUNT: service.source})
        # The task replaced (a watchdog joined to the old one's process namespace dies with it).
        self.containers = {name: nginx}
        self.images.add(service.image)  # pulled for its task (a canary's watchdog runs it too)
        path = f"{service.source}/nginx.conf"
        if path in self.files:
            nginx.status, nginx.loaded = "running", self.files[path][0]
            nginx.certificate = self._live_certificate(nginx)


class FakeSwarm(FakeHost):
    """The manager (also node 1's files are not the manager's: each node is its own FakeNode,
    reached with `node(address)`, as swarm_site reaches nodes by their `docker node ls` address)."""

    def __init__(self, names, *faults: Fault, nodes: int = 3) -> None:  # type: ignore[no-untyped-def]
        super().__init__("manager", *faults)
        self.names = names
        self.services: dict[str, Service] = {}
        self.secrets: dict[str, dict[str, str]] = {}
        self.crashing_services: list[str] = []  # regexes: their tasks fail at start
        self.starting: list[str] = []  # regexes: their tasks never pass their health check
        self.failing_jobs: list[str] = []  # regexes: a replicated job whose task fails (exit 3)
        self.nodes = {f"10.9.0.{i}": FakeNode(self, f"node{i}", f"10.9.0.{i}") for i in range(1, nodes + 1)}
        # Docker's DNS gossip: node hostname -> seconds after a service's creation before that
        # node resolves its tasks (its proxy and its tasks calling it by name); 0 elsewhere.
        self.gossip: dict[str, float] = {}
        self.created: dict[str, float] = {}  # service -> time.monotonic() at its creation

    def node(self, address: str) -> FakeNode:
        return self.nodes[address]

    # -- what a test looks at -------------------------------------------------------------------

    def running(self, service: str) -> int:
        svc = self.services.get(service)
        if svc is None or svc.job or self._never_ready(service):
            return 0
        return svc.replicas if svc.replicas is not None else len(self.nodes)

    def of_release(self, release: str) -> list[str]:  # type: ignore[override]
        return sorted(n for n, s in self.services.items() if s.labels.get(LABEL_RELEASE) == release)

    def serving_nodes(self) -> set[str | None]:
        return {n.serving() for n in self.nodes.values()}

    # -- the manager's engine -------------------------------------------------------------------

    def _run(self, argv: list[str]) -> CommandResult:
        if argv == sw.swarm_state():
            return CommandResult(0, "active\ttrue\n", "")
        if argv[:2] == ["docker", "node"]:
            return self._node_cli(argv[2:])
        if argv[:2] == ["docker", "secret"]:
            return self._secret_cli(argv[2:])
        if argv[:2] == ["docker", "service"]:
            return self._service_cli(argv[2:])
        if argv[:2] == ["sh", "-c"] and argv == sw.wait_job(argv[-1]):  # the job ends at once here
            return self._service_cli(argv[6:])
        if argv == sw.inspect_listed_nodes():  # the listing, then the inspect of what it listed
            ids = self._node_cli(sw.list_nodes()[2:]).stdout.split()
            return self._node_cli(sw.inspect_nodes(ids)[2:]) if ids else OK
        if argv == sw.inspect_listed_services(self.names):  # the listing, then the inspect of what it listed
            listed = self._service_cli(argv[6:])
            if not listed.ok:
                return CommandResult(sw.LISTING_FAILED, "", listed.stderr)
            names = [line.split("\t")[0] for line in listed.stdout.splitlines() if line.strip()]
            return self._service_cli(sw.inspect_services(names)[2:]) if names else OK
        return super()._run(argv)

    def _node_cli(self, args: list[str]) -> CommandResult:
        if args == sw.list_nodes()[2:]:
            return CommandResult(0, "".join(f"{n.hostname}\n" for n in self.nodes.values()), "")
        if args[:3] == ["inspect", "--format", sw.NODE_FORMAT]:
            by_id = {n.hostname: n for n in self.nodes.values()}
            return CommandResult(0, "".join(f"{by_id[i].hostname}\t{by_id[i].host}\tready\tactive\t\n"
                                            for i in args[3:]), "")
        return self._unknown(["docker", "node", *args])

    def _secret_cli(self, args: list[str]) -> CommandResult:
        labels = dict(v.split("=", 1) for k, v in zip(args, args[1:]) if k == "--label")
        if args[0] == "create":
            self.secrets[args[-2]] = labels
            return CommandResult(0, f"{args[-2]}\n", "")
        if args[0] == "ls":
            wanted = [v[len("label="):].split("=", 1) for k, v in zip(args, args[1:]) if k == "--filter"]
            return CommandResult(0, "".join(f"{n}\n" for n, ls in sorted(self.secrets.items())
                                            if all(ls.get(k) == v for k, v in wanted)), "")
        if args[0] == "rm":
            for name in args[1:]:
                self.secrets.pop(name, None)
            return OK
        return self._unknown(["docker", "secret", *args])

    def _service_cli(self, args: list[str]) -> CommandResult:
        verb, rest = args[0], args[1:]
        if verb == "create":
            return self._service_create(rest)
        if verb == "ls":
            wanted = [v[len("label="):].split("=", 1) for k, v in zip(rest, rest[1:]) if k == "--filter"]
            lines = [f"{n}\t{self.running(n)}/{s.replicas if s.replicas is not None else len(self.nodes)}"
                     for n, s in self.services.items() if all(s.labels.get(k) == v for k, v in wanted)]
            return CommandResult(0, "".join(line + "\n" for line in lines), "")
        if verb == "inspect":
            fmt, names = rest[1], rest[2:]
            found = [self.services[n] for n in names if n in self.services]
            if fmt == sw.proxy_image(self.names)[4]:
                lines = [s.image for s in found]
            elif fmt == sw.proxy_published(self.names)[4]:
                lines = [str(p) for s in found for p in s.ports]
            elif fmt == sw.inspect_services([])[4]:
                lines = [f"{s.name}\t{s.labels.get(LABEL_RELEASE, '')}\t{s.labels.get('io.deployctl.service', '')}\t"
                         + ("" if s.replicas is None else str(s.replicas)) for s in found]
            else:
                return self._unknown(["docker", "service", *args])
            rc = 0 if len(found) == len(names) else 1
            return CommandResult(rc, "".join(line + "\n" for line in lines), "" if rc == 0 else "no such service")
        if verb == "ps":
            return CommandResult(0, "".join(self._tasks(n) for n in rest[3:] if n in self.services), "")
        if verb == "scale":
            for pair in rest[1:]:
                name, count = pair.split("=")
                if name not in self.services:
                    return CommandResult(1, "", f"service {name} not found")
                self.services[name].replicas = int(count)
            return OK
        if verb == "rm":
            missing = [n for n in rest if n not in self.services]
            for name in rest:
                self.services.pop(name, None)
            return CommandResult(1, "", f"service {missing[0]} not found") if missing else OK
        if verb == "update" and "--image" in rest:
            self.services[rest[-1]].image = rest[rest.index("--image") + 1]
            return OK
        if verb == "update" and "--publish-add" in rest:  # its tasks replaced, loading the live file
            svc = self.services[rest[-1]]
            svc.ports.append(int(re.search(r"published=(\d+)", rest[rest.index("--publish-add") + 1]).group(1)))
            for node in self.nodes.values():
                node.start_proxy(svc)
            return OK
        if verb == "logs":
            return OK
        return self._unknown(["docker", "service", *args])

    def _service_create(self, rest: list[str]) -> CommandResult:
        values = {"--name", "--replicas", "--mode", "--endpoint-mode", "--network", "--label", "--container-label",
                  "--env", "--env-file", "--secret", "--log-opt", "--restart-condition", "--restart-delay",
                  "--stop-grace-period", "--update-order", "--publish", "--mount", "--stop-signal", "--entrypoint",
                  "--health-cmd", "--health-interval", "--health-timeout", "--health-retries",
                  "--health-start-period", "--config"}
        options: dict[str, list[str]] = {}
        i = 0
        while rest[i].startswith("-"):
            if rest[i] in values:
                options.setdefault(rest[i], []).append(rest[i + 1])
                i += 2
            elif rest[i] == "--with-registry-auth" or not rest[i].startswith("--") or "=" in rest[i] \
                    or rest[i] in ("--detach", "--no-resolve-image", "--no-healthcheck", "--read-only", "--init"):
                i += 1
            else:
                return self._unknown(["docker", "service", "create", *rest])
        name, image, command = options["--name"][0], rest[i], rest[i + 1:]
        if name in self.services:
            return CommandResult(1, "", f"Error response from daemon: rpc error: name conflicts with an existing "
                                        f"object: service {name} already exists")
        mode = options.get("--mode", ["replicated"])[0]
        labels = dict(v.split("=", 1) for v in options.get("--label", []))
        svc = Service(name, image, labels, None if mode == "global" else int(options.get("--replicas", ["1"])[0]),
                      job=mode == "replicated-job", args=command)
        svc.ports = [int(re.search(r"published=(\d+)", p).group(1)) for p in options.get("--publish", [])]  # type: ignore[union-attr]
        publish = next(iter(options.get("--publish", [])), "")
        if publish:
            svc.published = svc.ports[0]
            svc.source = re.search(r"source=([^,]+)", options["--mount"][0]).group(1)  # type: ignore[union-attr]
        self.services[name] = svc
        self.created[name] = time.monotonic()
        if mode == "global":
            for node in self.nodes.values():
                node.start_proxy(svc)
        return CommandResult(0, f"{name}-id\n", "")

    def _never_ready(self, name: str) -> bool:
        return any(re.search(p, name) for p in self.crashing_services + self.starting)

    def _tasks(self, name: str) -> str:
        svc = self.services[name]
        count = svc.replicas if svc.replicas is not None else len(self.nodes)
        nodes = list(self.nodes.values())
        lines = []
        for slot in range(1, (1 if svc.job else count) + 1):
            node = nodes[(slot - 1) % len(nodes)].hostname
            if svc.job and any(re.search(p, name) for p in self.failing_jobs):
                desired, state, error = "Shutdown", "Failed 1 second ago", "task: non-zero exit (3)"
            elif svc.job:
                desired, state, error = "Complete", "Complete 1 second ago", ""
            elif any(re.search(p, name) for p in self.crashing_services):
                desired, state, error = "Shutdown", "Failed 1 second ago", "task: non-zero exit (1)"
            elif any(re.search(p, name) for p in self.starting):
                desired, state, error = "Running", "Starting 1 second ago", ""
            else:
                desired, state, error = "Running", "Running 1 second ago", ""
            lines.append(f"{name}-task{slot}\t{name}.{slot}\t{node}\t{desired}\t{state}\t{error}\n")
        return "".join(lines)

    def _unknown(self, argv: Sequence[str]) -> CommandResult:
        self.unknown.append(" ".join(argv))
        raise AssertionError(f"FakeSwarm: no model for argv {list(argv)!r}")
