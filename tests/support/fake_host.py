"""A scripted fake host for the Connector protocol (adapters/connector.py): a small model of
one Docker engine, its files and its loopback, in memory, so that a whole deploy or
rollback runs in milliseconds (design.md, "One transaction, many sites"). It does not
replace tests/faults (the real engine, nginx, sshd); it makes one lifecycle rule cheap to
pin. Faults are injected per call and pattern, as tests/faults/fault_connector.py does.

Modelled: containers (create/run/start/stop/rm/kill/wait/update/inspect/ps/port/logs with
the exact --format strings plan/lifecycle/docker_commands.py sends), networks (an IP per attachment),
images present and pulled, the proxy (anchor + nginx containers; nginx's loaded
configuration; `nginx -t` refuses an upstream name that is no running container on the
anchor's network, as real nginx does with "host not found in upstream"; the staged swap's
`sh -c "test && mv && reload"`), files (bytes + mode; mkdir's exclusive test-and-set),
http_get: a container's IP answers its health path, 127.0.0.1:<published port> answers
through the configuration nginx *loaded*, stamped with X-Deployctl-Release.

`stream` and `interactive` (`deployctl exec`) answer as `run` does: a Fault scripts the command.

Not modelled: the anchor's own fallback nginx, restart policies and a restarting engine,
canary watchdogs, the proxy's access log (`docker logs` answers nothing: a test scripts the
lines the guard reads with a Fault), registries (every pull succeeds), real timing. An argv
it does not know fails the test with an AssertionError naming it (and is kept in `unknown`),
so a gap is never silent.
"""

from __future__ import annotations

import errno
import fnmatch
import ipaddress
import json
import re
import shlex
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from deployctl.adapters.connector import CommandResult, ConnectionLost, HttpResponse
from deployctl.plan.lifecycle import docker_commands as dc
from deployctl.plan.edge.maintenance import VERIFY_HEADER
from deployctl.plan.edge.maintenance import state_of as maintenance_state
from deployctl.plan.lifecycle import lock as lock_plan
from deployctl.plan.lifecycle.names import LABEL_RELEASE, LABEL_ROLE, LABEL_WORKER, Names
from deployctl.plan.edge.proxy_config import RELEASE_HEADER, live_release, standby_of, upstream_name
from deployctl.plan.lifecycle.switch_plan import NGINX_ROLE
from deployctl.plan.edge.tls_config import CERTIFICATE_HEADER, TLS_LISTEN_PORT, takes_proxy_protocol

OK = CommandResult(0, "", "")
LIST_FORMAT = dc.list_containers(Names("a", "e"))[5]  # the one `docker ps` format of release_states
STATUS_ROLE_FORMAT = dc.status_and_role("c")[4]
ADDRESSES = re.compile(r'^\{\{\.Name\}\}\|\{\{with index \.NetworkSettings\.Networks "([^"]+)"\}\}')
# Subcommands whose answer is always the same (for an existing container): no state to model.
FIXED = {"version": "27.3.1\n", "login": "", "wait": "0\n", "update": "", "logs": ""}
STATUS_LABEL = re.compile(r'^\{\{\.State\.Status\}\}\|\{\{index \.Config\.Labels "([^"]+)"\}\}$')
# `docker run` / `docker create` options that take a value (everything else before the image is a flag).
VALUED = {"--name", "--network", "--network-alias", "--restart", "--log-opt", "--label", "-e", "--env-file", "-v",
          "--publish", "--sysctl", "--stop-signal", "--entrypoint", "--user", "--pid", "--security-opt", "--cap-drop",
          "--cap-add", "--memory", "--cpus", "--pids-limit", "--tmpfs", "--mount"}


@dataclass
class Fault:
    """`call`: run | put_file | read_file | append_file | mkdir | remove_tree | http_get |
    tcp_check | connect. `pattern`: a regex searched in the call's text (the argv joined by
    spaces, the path, or "address:port/path"). `nth`: the first matching call that fails
    (1-based); `times`: how many in a row from there (0: every one after). `effect`: "fail"
    (rc 1; OSError for the other calls), an int (that rc), "lost" (ConnectionLost: the
    connection went), "raise" (a plain OSError), or a callable given the call's arguments
    whose return is the answer. `action`: called first when it fires (e.g. host.gone = True)."""

    call: str
    pattern: str
    nth: int = 1
    times: int = 1
    effect: str | int | Callable = "fail"
    action: Callable[[], None] | None = None
    seen: int = 0
    fired: int = 0

    def hit(self, call: str, text: str) -> bool:
        if call != self.call or not re.search(self.pattern, text):
            return False
        self.seen += 1
        due = self.seen >= self.nth and (self.times == 0 or self.seen < self.nth + self.times)
        self.fired += due
        return due


@dataclass
class Container:
    name: str
    image: str
    labels: dict[str, str]
    networks: dict[str, str]  # network -> IP
    status: str = "created"
    args: list[str] = field(default_factory=list)
    publish: str | None = None  # "8080:80" (the first --publish)
    published: list[str] = field(default_factory=list)  # every --publish ("8080:80", "8443:443")
    mounts: dict[str, str] = field(default_factory=dict)  # inside -> host directory
    loaded: bytes | None = None  # an nginx container's configuration, as it loaded it
    certificate: str | None = None  # the tls/live version it loaded (plan/edge/tls_config.py), if any
    started: str = "0001-01-01T00:00:00Z"
    exit_code: int = 0  # how it last exited (a crashing one: 1)
    restarts: int = 0  # how often a restart policy restarted it (the model restarts none)


def _mapping(publish: str) -> tuple[str, str, str]:
    """A `--publish` as Docker lists it: (host address, host port, container port)."""
    parts = publish.split(":")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else ("0.0.0.0", parts[0], parts[1])


def wrong_release(address: str, port: int, path: str) -> HttpResponse:
    """An answer through the proxy stamped with a release that is not the target."""
    return HttpResponse(200, b'{"release": "not-the-target"}', {RELEASE_HEADER.lower(): "not-the-target"})


# Docker's default address pools: 172.17-31.0.0/16 and 192.168.0.0/16 in /20s (31 networks).
DEFAULT_POOLS = [ipaddress.ip_network(f"172.{n}.0.0/16") for n in range(17, 32)] + list(
    ipaddress.ip_network("192.168.0.0/16").subnets(new_prefix=20))


class FakeHost:
    def __init__(self, host: str = "fake", *faults: Fault, images: Sequence[str] = ()) -> None:
        self.host = host
        self.faults = list(faults)
        self.images: set[str] = set(images)
        self.containers: dict[str, Container] = {}
        self.networks: set[str] = set()
        self.subnets: dict[str, str] = {}  # network -> its subnet (Docker's pools or --subnet)
        self.network_labels: dict[str, dict[str, str]] = {}
        self.volumes: dict[str, dict[str, str]] = {}  # named volume -> its labels
        self.files: dict[str, tuple[bytes, int]] = {}
        self.links: dict[str, str] = {}  # symlink path -> its target (the proxy's tls/live)
        self.dirs: set[str] = {"/"}
        self.crashing: list[str] = []  # regexes: a matching container exits as soon as it starts
        self.gone = False  # every call raises ConnectionLost (the host became unreachable)
        self.calls: list[tuple[str, str]] = []
        self.configs: list[str] = []
        self.unknown: list[str] = []
        self.terminal = ""  # what `interactive` runs showed
        self._ips = 1
        self._lock = threading.RLock()  # the deploy calls from worker threads (start chains, pulls)

    # -- the Connector protocol ----------------------------------------------------------------

    def connect(self) -> "FakeHost":
        self._enter("connect", self.host)
        return self

    def close(self) -> None:
        pass

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None,
            on_line=None) -> CommandResult:  # type: ignore[no-untyped-def]
        argv = list(argv)
        background = _background(argv)
        fault = self._enter("run", " ".join(argv))
        if argv[:3] == ["sh", "-c", lock_plan.RELEASE_SCRIPT] and fault is None:
            return self._release_lock(*argv[4:])
        if background is not None and fault is None:
            # The host's background work (plan/lifecycle/docker_commands.in_background), done at once
            # here: each command as the host would run it (faults apply), none stopping the next.
            for inner in background:
                self.run(inner)
            return OK
        if fault is not None:
            if callable(fault.effect):
                return fault.effect(argv)
            if isinstance(fault.effect, int):
                return CommandResult(fault.effect, "", f"injected: exit {fault.effect}")
            return CommandResult(1, "", f"injected failure: {' '.join(argv[:4])}")
        with self._lock:
            return self._run(argv)

    def _release_lock(self, op_dir: str, lock_dir: str, info: str, token: str) -> CommandResult:
        """plan/lifecycle/lock.release_command as the host's shell runs it, through this host's own
        file calls (their faults apply): op lock, token compared, lock removed, op lock removed."""
        if not self.mkdir(op_dir, mode=0o700, exclusive=True):
            return CommandResult(lock_plan.RELEASE_OP_BUSY, "", "")
        try:
            text = self.read_file(info)
            if text is not None and token in text.decode(errors="replace"):
                self.remove_tree(lock_dir)
                return OK
            return CommandResult(lock_plan.RELEASE_NOT_OURS, (text or b"").decode(errors="replace"), "")
        finally:
            self.remove_tree(op_dir)

    def stream(self, argv: Sequence[str], *, on_stdout, on_stderr) -> int:  # type: ignore[no-untyped-def]
        """As run (a Fault scripts a command's answer), its stdout and stderr handed on."""
        result = self.run(argv)
        if result.stdout:
            on_stdout(result.stdout.encode())
        if result.stderr:
            on_stderr(result.stderr.encode())
        return result.rc

    def interactive(self, argv: Sequence[str]) -> int:
        """As run; what a terminal would show is kept in `terminal` (no stdin is modelled)."""
        result = self.run(argv)
        self.terminal += result.stdout + result.stderr
        return result.rc

    def put_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        self._file_fault("put_file", path)
        with self._lock:
            self._parents(path)
            self.files[path] = (bytes(data), mode)
            if path.endswith(("/nginx.conf", "/nginx.conf.next")):
                self.configs.append(bytes(data).decode(errors="replace"))  # every proxy configuration written

    def read_file(self, path: str) -> bytes | None:
        self._file_fault("read_file", path)
        with self._lock:
            return self.files[path][0] if path in self.files else None

    def append_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._file_fault("append_file", path)
        with self._lock:
            self._parents(path)
            old, mode = self.files.get(path, (b"", mode))
            self.files[path] = (old + data, mode)

    def mkdir(self, path: str, *, mode: int = 0o755, exclusive: bool = False) -> bool:
        self._file_fault("mkdir", path)
        with self._lock:  # the lock's atomic test-and-set: one holder wins
            path = path.rstrip("/")
            if exclusive and path in self.dirs:
                return False
            self._parents(path)
            self.dirs.add(path)
            return True

    def remove_tree(self, path: str) -> None:
        self._file_fault("remove_tree", path)
        with self._lock:
            inside = lambda p: p == path or p.startswith(path.rstrip("/") + "/")  # noqa: E731
            self.dirs = {d for d in self.dirs if not inside(d)}
            self.files = {p: v for p, v in self.files.items() if not inside(p)}
            self.links = {p: v for p, v in self.links.items() if not inside(p)}

    def tcp_check(self, address: str, port: int, timeout: float = 2.0) -> None:
        self._file_fault("tcp_check", f"{address}:{port}")
        if self._by_ip(address) is None:
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"{address}:{port}: connection refused")

    def http_get(self, address: str, port: int, path: str, timeout: float = 2.0,
                 headers: dict | None = None) -> HttpResponse:
        scripted = self._scripted_http(address, port, path)
        if scripted is not None:
            return scripted
        shared = self._shared_route(address, port, path, headers or {})
        if shared is not None:
            return shared
        with self._lock:
            anchor = next((c for c in self.containers.values() if c.publish and c.status == "running"
                           and int(_mapping(c.publish)[1]) == port), None)
            if address == "127.0.0.1" and anchor is not None:  # several apps: one anchor per port
                return self._through_proxy(path, headers or {}, anchor.name)
            container = self._by_ip(address)
            if container is None:
                raise ConnectionRefusedError(errno.ECONNREFUSED, f"{address}:{port}: connection refused")
            release = container.labels.get(LABEL_RELEASE, "")
            return HttpResponse(200, json.dumps({"release": release}).encode(), {})

    def https_get(self, address: str, port: int, path: str, server_name: str, timeout: float = 2.0,
                  headers: dict | None = None) -> HttpResponse:
        """HTTPS as the host's listeners take it: the shared proxy's stream server routes by SNI
        (its *.sni-pp lines send the PROXY header, *.sni ones do not) to an app's own HTTPS port;
        an app's listener that takes the PROXY protocol closes a hello without it, and one that
        does not closes a hello after one. The certificate is not modelled beyond its stamp."""
        from deployctl.plan.edge import shared_proxy as sp

        self._file_fault("https_get", f"{address}:{port}{path}")
        proxied = False
        with self._lock:
            for container in self.containers.values():
                folder = container.mounts.get(sp.MOUNT)
                if (address != "127.0.0.1" or container.labels.get(sp.LABEL_SHARED) is None
                        or container.status != "running" or folder is None
                        or sp.port_of(self.text(f"{folder}/{sp.CONFIG_FILE}"), "tls_port") != port):
                    continue
                target = None
                for name in sorted(p for p in self.files if p.startswith(f"{folder}/{sp.ROUTES}/")
                                   and p.endswith((sp.SNI, sp.SNI_PROXIED))):
                    for regex, to in re.findall(r'^"~\*(.+)" 127\.0\.0\.1:(\d+);$', self.text(name) or "", re.M):
                        if target is None and re.match(regex, server_name, re.I):
                            target, proxied = int(to), name.endswith(sp.SNI_PROXIED)
                if target is None:
                    raise ConnectionResetError(errno.ECONNRESET, f"{server_name}: no route (handshake closed)")
                port = target
                break
            anchor = next((c for c in self.containers.values() if c.status == "running" and any(
                m[1] == str(port) and m[2] == str(TLS_LISTEN_PORT) and m[0] in ("0.0.0.0", address)
                for m in map(_mapping, c.published))), None)
            if anchor is None:
                raise ConnectionRefusedError(errno.ECONNREFUSED, f"{address}:{port}: connection refused")
            nginx = next((c for c in self.containers.values() if c.name.startswith(f"{anchor.name}-nginx-")
                          and c.status == "running" and c.certificate), None)
            if nginx is None:
                raise ConnectionResetError(errno.ECONNRESET, f"{address}:{port}: no certificate (handshake closed)")
            server = self.text(f"{next(iter(nginx.mounts.values()), '')}/tls/{nginx.certificate}/server.conf")
            if takes_proxy_protocol(server) != proxied:
                raise ConnectionResetError(errno.ECONNRESET, f"{address}:{port}: the PROXY header "
                                           f"{'missing' if not proxied else 'taken for a TLS hello'}")
            name = anchor.name
        return self._through_proxy(path, headers or {}, name)

    def _shared_route(self, address: str, port: int, path: str, headers: dict) -> HttpResponse | None:
        """A host's shared proxy (plan/edge/shared_proxy.py) on the host's network: its route files
        as they are on disk (a reload is not modelled), in name order, the first regex that
        matches `host + path` sends the request on to that app's proxy port; none: its 404."""
        from deployctl.plan.edge import shared_proxy as sp

        if address != "127.0.0.1":
            return None
        with self._lock:
            for container in self.containers.values():
                folder = container.mounts.get(sp.MOUNT)
                if (container.labels.get(sp.LABEL_SHARED) is None or container.status != "running" or folder is None
                        or sp.port_of(self.text(f"{folder}/{sp.CONFIG_FILE}")) != port):
                    continue
                if path == sp.HEALTH_PATH:
                    return HttpResponse(200, b"ok\n", {})
                host = next((v for k, v in headers.items() if k.lower() == "host"), address)
                rest = {k: v for k, v in headers.items() if k.lower() != "host"}
                for name in sorted(p for p in self.files if p.startswith(f"{folder}/{sp.ROUTES}/") and p.endswith(".map")):
                    for regex, target in re.findall(r'^"~(.+)" 127\.0\.0\.1:(\d+);$', self.text(name) or "", re.M):
                        if re.match(regex, f"{host}{path}"):
                            break
                    else:
                        continue
                    break
                else:
                    return HttpResponse(404, b"No app answers for this host name here\n",
                                        {sp.NO_ROUTE_HEADER.lower(): "1"})
                forwarded = (address, int(target), path, 2.0, rest)
                break
            else:
                return None
        return self.http_get(*forwarded)

    # -- what a test looks at -------------------------------------------------------------------

    def text(self, path: str) -> str | None:
        return self.files[path][0].decode() if path in self.files else None

    def serving(self) -> str | None:
        """The release the proxy answers from now (its stamp), None when it answers none."""
        with self._lock:
            port = self.proxy_port()
            if port is None:
                return None
            try:
                return self._through_proxy("/").headers.get(RELEASE_HEADER.lower())
            except OSError:
                return None

    def running(self, release: str) -> list[str]:
        return sorted(c.name for c in self.containers.values()
                      if c.labels.get(LABEL_RELEASE) == release and c.status == "running")

    def of_release(self, release: str) -> list[str]:
        return sorted(c.name for c in self.containers.values() if c.labels.get(LABEL_RELEASE) == release)

    def proxy_port(self) -> int | None:
        anchor = next((c for c in self.containers.values() if c.publish and c.status == "running"), None)
        return int(_mapping(anchor.publish)[1]) if anchor is not None else None

    # -- faults ----------------------------------------------------------------------------------

    def _enter(self, call: str, text: str) -> Fault | None:
        """Logs the call; the fault due for it (its action done first), if any."""
        with self._lock:
            self.calls.append((call, text))
            fault = next((f for f in self.faults if f.hit(call, text)), None)
        if fault is not None and fault.action is not None:
            fault.action()
        if self.gone:
            raise ConnectionLost(f"{self.host}: connection lost (the fake host is gone)")
        if fault is not None and fault.effect in ("lost", "raise"):
            raise self._error(fault, text)
        return fault

    def _scripted_http(self, address: str, port: int, path: str) -> HttpResponse | None:
        """The answer a Fault scripts for this http_get (raised when it is an error), if any."""
        fault = self._enter("http_get", f"{address}:{port}{path}")
        if fault is None:
            return None
        if callable(fault.effect):
            return fault.effect(address, port, path)
        raise self._error(fault, f"{address}:{port}")

    def _file_fault(self, call: str, text: str) -> None:
        fault = self._enter(call, text)
        if fault is not None:
            if callable(fault.effect):
                fault.effect(text)
            else:
                raise self._error(fault, text)

    def _error(self, fault: Fault, text: str) -> OSError:
        if fault.effect == "lost":
            return ConnectionLost(f"{self.host}: connection lost (injected) at {text}")
        return OSError(errno.EIO, f"injected: {fault.call} {text}")

    # -- the engine ------------------------------------------------------------------------------

    def _run(self, argv: list[str]) -> CommandResult:
        if argv == dc.NETWORK_IDS:
            return CommandResult(0, "".join(f"{n}\n" for n in sorted(self.networks)), "")
        if argv[:-1] == dc.network_gateways("")[:-1]:  # Docker's gateway: its subnet's first address
            subnet = self.subnets.get(argv[-1])
            if subnet is None:
                return CommandResult(1, "", f"Error: No such network: {argv[-1]}")
            return CommandResult(0, f"{next(ipaddress.ip_network(subnet).hosts())}|{subnet} \n", "")
        if argv[:5] == dc.network_subnets([]):
            return CommandResult(0, "".join(f"{self.subnets.get(n, '')} \n" for n in argv[5:]), "")
        if argv[:2] == ["sh", "-c"]:  # the staged swap: `test && mv && reload`, stopped at the first failure;
            result = OK              # `a ; b && c` (a move's cut): each `;` part runs whatever the one before gave
            for sequence in argv[2].split(" ; "):
                for part in sequence.split(" && "):
                    result = self._run(shlex.split(part))
                    if not result.ok:
                        break
            return result
        if argv[0] == "timeout":  # `timeout N command`: the model's commands never hang
            return self._run(argv[2:])
        if argv[:2] == ["ln", "-sfn"]:
            self.links[argv[3]] = argv[2]
            return OK
        if argv[:2] == ["mv", "-fT"]:
            if argv[2] not in self.links:
                return CommandResult(1, "", f"mv: cannot stat '{argv[2]}'")
            self.links[argv[3]] = self.links.pop(argv[2])
            return OK
        if argv[0] == "readlink":
            return CommandResult(0, self.links[argv[1]] + "\n", "") if argv[1] in self.links else CommandResult(1, "", "")
        if argv[0] == "find" and argv[-5:] == ["-exec", "rm", "-rf", "{}", "+"]:
            # plan/edge/tls_config.prune_versions: version directories but the kept ones
            folder, keep = argv[1], {argv[i + 2] for i, a in enumerate(argv) if a == "!"}
            pattern = argv[argv.index("-name") + 1]
            for path in [p for p in self.files if p.startswith(folder + "/")]:
                name = path[len(folder) + 1:].split("/")[0]
                if "/" in path[len(folder) + 1:] and fnmatch.fnmatch(name, pattern) and name not in keep:
                    del self.files[path]
            return OK
        if argv[:2] == ["mv", "-f"]:
            if argv[2] not in self.files:
                return CommandResult(1, "", f"mv: cannot stat '{argv[2]}'")
            self.files[argv[3]] = self.files.pop(argv[2])
            return OK
        if argv[:3] == ["rm", "-rf", "--"]:
            self.remove_tree(argv[3])
            return OK
        if argv[:2] == ["rm", "-f"]:
            for path in argv[2:]:
                self.files.pop(path, None)
            return OK
        if argv[0] == "find" and "-delete" in argv:  # clear_flags: the standby flags but one
            folder, pattern, keep = argv[1], argv[argv.index("-name") + 1], argv[argv.index("!") + 2]
            for path in [p for p in self.files if p.rpartition("/")[0] == folder]:
                name = path.rpartition("/")[2]
                if fnmatch.fnmatch(name, pattern) and name != keep:
                    del self.files[path]
            return OK
        if argv[0] == "find" and argv[-2:] == ["-type", "f"]:  # files of one folder by name (shared proxy routes)
            folder = argv[1].rstrip("/")
            patterns = [argv[i + 1] for i, word in enumerate(argv) if word == "-name"]  # one, or several -o'ed
            return CommandResult(0, "".join(f"{p}\n" for p in sorted(self.files) if p.rpartition("/")[0] == folder
                                            and any(fnmatch.fnmatch(p.rpartition("/")[2], pt) for pt in patterns)), "")
        if argv[:2] == ["test", "-d"]:
            path = argv[2].rstrip("/")
            there = path in self.dirs or any(p.startswith(path + "/") for p in self.files)
            return OK if there else CommandResult(1, "", "")
        if argv == dc.HOST_CLOCK:
            return CommandResult(0, f"{time.time():.9f}\n", "")
        if argv[0] == "docker" and argv[1] in FIXED and (argv[1] in ("version", "login")
                                                         or argv[-1] in self.containers):
            return CommandResult(0, FIXED[argv[1]], "")
        if argv[0] == "docker":
            handler = getattr(self, "_docker_" + argv[1].replace("-", "_"), None)
            if handler is not None:
                answer = handler(argv[2:])
                if answer is not None:
                    return answer
        self.unknown.append(" ".join(argv))
        raise AssertionError(f"FakeHost {self.host}: no model for argv {argv!r}")

    def _docker_pull(self, args: list[str]) -> CommandResult:
        self.images.add(args[-1])
        return CommandResult(0, args[-1] + "\n", "")

    def _docker_image(self, args: list[str]) -> CommandResult | None:
        if args[0] == "inspect":  # {{.Id}} (present?) or {{.Config.User}}: root ("")
            missing = [i for i in args[3:] if i not in self.images]
            if missing:
                return CommandResult(1, "", f"Error: No such image: {missing[0]}")
            return CommandResult(0, "".join("sha256:fake\n" if "Id" in args[2] else "\n" for _ in args[3:]), "")
        if args[0] == "rm":
            self.images -= set(args[1:])
            return OK
        return None

    def _docker_network(self, args: list[str]) -> CommandResult | None:
        verb, rest = args[0], args[1:]
        if verb == "inspect":  # {{.Id}} of one, or {{.Name}} of several: the found ones, exit 1 if any is missing
            names = rest[2:]
            missing = [n for n in names if n not in self.networks]
            out = "".join(f"{n}\n" for n in names if n in self.networks) if rest[1] == "{{.Name}}" else ""
            return CommandResult(1 if missing else 0, out, "".join(f"network {n} not found\n" for n in missing))
        if verb == "create":
            return self._network_create(rest)
        if verb == "ls":  # plan/lifecycle/docker_commands.release_networks: `name|release`, filtered by labels
            wanted = dict(v[len("label="):].split("=", 1) for k, v in zip(rest, rest[1:])
                          if k == "--filter" and v.startswith("label="))
            return CommandResult(0, "".join(f"{n}|{labels.get(LABEL_RELEASE, '')}\n"
                                            for n, labels in sorted(self.network_labels.items())
                                            if n in self.networks and all(labels.get(k) == v for k, v in wanted.items())), "")
        if verb == "rm":  # as docker: a network a container is still attached to stays
            used = {n for c in self.containers.values() for n in c.networks}
            failed = [f"network {n} not found" if n not in self.networks else f"network {n} has active endpoints"
                      for n in rest if n not in self.networks or n in used]
            self.networks -= set(rest) - used
            for gone in set(self.subnets) - self.networks:
                del self.subnets[gone]
            return CommandResult(1, "", "\n".join(failed)) if failed else OK
        if verb == "connect":
            network, name = rest[-2], rest[-1]
            if network not in self.networks or name not in self.containers:
                return CommandResult(1, "", f"No such network or container: {network} {name}")
            self.containers[name].networks[network] = self._ip()
            return OK
        return None

    def _network_create(self, rest: list[str]) -> CommandResult:
        """As Docker: an explicit --subnet must overlap no other network's; without one, the
        next /16 or /20 of its ~30 default pools, and an error once they are all used."""
        options = dict(zip(rest[:-1:2], rest[1:-1:2]))
        labels = dict(v.split("=", 1) for k, v in zip(rest, rest[1:]) if k == "--label")
        name, taken = rest[-1], [ipaddress.ip_network(s) for s in self.subnets.values()]
        if "--subnet" in options:
            subnet = ipaddress.ip_network(options["--subnet"])
            if any(subnet.overlaps(t) for t in taken):
                return CommandResult(1, "", "Error response from daemon: Pool overlaps with other one on this address space")
        else:
            subnet = next((p for p in DEFAULT_POOLS if not any(p.overlaps(t) for t in taken)), None)
            if subnet is None:
                return CommandResult(1, "", "Error response from daemon: could not find an available, non-overlapping "
                                            "IPv4 address pool among the defaults to assign to the network")
        self.networks.add(name)
        self.subnets[name], self.network_labels[name] = str(subnet), labels
        return OK

    def _docker_create(self, args: list[str], status: str = "created") -> CommandResult:
        options, image, rest = self._options(args)
        name = options["--name"][0]
        if name in self.containers:
            return CommandResult(125, "", f'Conflict. The container name "/{name}" is already in use')
        if image not in self.images:
            return CommandResult(125, "", f"Unable to find image '{image}' locally")
        network = options.get("--network", [""])[0]
        # `host` and `none` are the engine's own (a canary's watchdog runs with no network).
        if network and network not in ("host", "none") and not network.startswith("container:") \
                and network not in self.networks:
            return CommandResult(125, "", f"network {network} not found")
        labels = dict(label.split("=", 1) for label in options.get("--label", []))
        mounts = {v.split(":")[1]: v.split(":")[0] for v in options.get("-v", [])}
        container = Container(name, image, labels, {network: self._ip()} if network in self.networks else {},
                              args=rest, publish=options.get("--publish", [None])[0], mounts=mounts,
                              published=options.get("--publish", []))
        self.containers[name] = container
        if status == "running":
            self._start(container)
        return CommandResult(0, f"{name}-id\n", "")

    def _docker_run(self, args: list[str]) -> CommandResult:
        if args[0] == "--rm":  # a one-off `nginx -t` (the shared proxy's before a move): its file must exist
            options, image, rest = self._options(args[1:])
            config = self._host_path(Container("", image, {}, {}, mounts={
                v.split(":")[1]: v.split(":")[0] for v in options.get("-v", [])}), rest[-1])
            if image not in self.images or config not in self.files:
                return CommandResult(1, "", f'nginx: [emerg] open() "{rest[-1]}" failed (2: No such file or directory)')
            return OK
        return self._docker_create(args, status="running")  # every other `docker run` here is --detach

    def _docker_start(self, args: list[str]) -> CommandResult:
        attach = "--attach" in args
        names = [a for a in args if not a.startswith("--")]  # `--attach --interactive` (exec -i --new)
        missing = [n for n in names if n not in self.containers]
        for name in names:
            if name in self.containers:
                self._start(self.containers[name])
                if attach:  # a migration: runs to its end (its exit code: a Fault with an int effect)
                    self.containers[name].status = "exited"
        return CommandResult(1, "", f"Error: No such container: {missing[0]}") if missing else OK

    def _docker_rename(self, args: list[str]) -> CommandResult:
        old, new = args
        if old not in self.containers:
            return CommandResult(1, "", f"Error: No such container: {old}")
        if new in self.containers:
            return CommandResult(1, "", f'Error response from daemon: Conflict. The container name "/{new}" is '
                                        "already in use")
        container = self.containers.pop(old)
        container.name = new
        self.containers[new] = container
        return OK

    def _docker_stop(self, args: list[str]) -> CommandResult:  # and `kill --signal QUIT`: nginx quits
        return self._each(args[2:], lambda c: setattr(c, "status", "exited"))

    def _docker_kill(self, args: list[str]) -> CommandResult:
        """`--signal HUP` to nginx: its master reloads its own configuration (a file it
        refuses is never loaded); any other signal (QUIT) ends it, as a stop does."""
        if args[:2] == ["--signal", "HUP"]:
            container = self.containers.get(args[2])
            if container is None or container.status != "running":
                return CommandResult(1, "", f"Error response from daemon: container {args[2]} is not running")
            config = self._host_path(container, container.args[1])
            if self._nginx_test(container, config).ok:
                container.loaded = self.files[config][0]
                container.certificate = self._live_certificate(container)
            return OK  # as the engine: the signal was delivered, whatever nginx made of it
        return self._docker_stop(args)

    def _docker_rm(self, args: list[str]) -> CommandResult:
        return self._each([a for a in args if not a.startswith("--")], lambda c: self.containers.pop(c.name))

    def _docker_volume(self, args: list[str]) -> CommandResult | None:
        """Named volumes: create (labels kept; idempotent), ls (label filters, names), rm
        (as docker: one a container mounts stays)."""
        verb, rest = args[0], args[1:]
        if verb == "create":
            labels = dict(v.split("=", 1) for k, v in zip(rest, rest[1:]) if k == "--label")
            self.volumes.setdefault(rest[-1], labels)
            return CommandResult(0, rest[-1] + "\n", "")
        if verb == "ls" and rest[-2:] == ["--format", "{{.Name}}"]:
            wanted = [v[len("label="):].split("=", 1) for k, v in zip(rest, rest[1:])
                      if k == "--filter" and v.startswith("label=")]
            return CommandResult(0, "".join(f"{v}\n" for v, labels in sorted(self.volumes.items())
                                            if all(labels.get(k) == x for k, x in wanted)), "")
        if verb == "rm":
            used = {source for c in self.containers.values() for source in c.mounts.values()}
            failed = [f"Error: No such volume: {v}" if v not in self.volumes else f"Error: volume is in use - [{v}]"
                      for v in rest if v not in self.volumes or v in used]
            for v in rest:
                if v not in used:
                    self.volumes.pop(v, None)
            return CommandResult(1, "", "\n".join(failed)) if failed else OK
        return None

    def _docker_port(self, args: list[str]) -> CommandResult:
        anchor = self.containers.get(args[0])
        if anchor is None or anchor.publish is None or anchor.status != "running":
            return CommandResult(1, "", f"Error: No public port '{args[1]}' published for {args[0]}")
        inside = args[1].partition("/")[0] if len(args) > 1 else ""
        # The host port published for the container port asked (its first one when the
        # command names none, as a bare `docker port NAME` lists it first).
        mapped = next((m for m in map(_mapping, anchor.published) if m[2] == inside),
                      _mapping(anchor.publish) if not inside or not anchor.published else None)
        if mapped is None:
            return CommandResult(1, "", f"Error: No public port '{args[1]}' published for {args[0]}")
        return CommandResult(0, f"{mapped[0]}:{mapped[1]}\n", "")

    def _docker_container(self, args: list[str]) -> CommandResult | None:
        if args[:2] != ["inspect", "--format"]:
            return None
        fmt, names = args[2], args[3:]
        found = [self.containers[n] for n in names if n in self.containers]
        if fmt == dc.STATE_FORMAT:
            ips = {c.name: "".join(ip + " " for ip in c.networks.values()) if c.status == "running" else ""
                   for c in found}  # a stopped container has no address
            lines = [f"/{c.name}|{c.status}||{ips[c.name]}|{c.labels.get(LABEL_RELEASE, '')}|{c.started}|{c.image}"
                     f"|{c.exit_code}|{c.restarts}" for c in found]
        elif STATUS_LABEL.match(fmt):  # `status|<a label>` (the role; the scheduler's hash)
            label = STATUS_LABEL.match(fmt).group(1)  # type: ignore[union-attr]
            lines = [f"{c.status}|{c.labels.get(label, '')}" for c in found]
        elif ADDRESSES.match(fmt):
            network = ADDRESSES.match(fmt).group(1)  # type: ignore[union-attr]
            lines = [f"/{c.name}|{c.networks.get(network, '') if c.status == 'running' else ''}" for c in found]
        else:
            return None
        rc = 0 if len(found) == len(names) else 1  # docker prints the ones it found, exits 1
        return CommandResult(rc, "".join(line + "\n" for line in lines), "" if rc == 0 else "Error: No such object")

    def _docker_ps(self, args: list[str]) -> CommandResult | None:
        fmt = args[args.index("--format") + 1]
        filters = [args[i + 1] for i, a in enumerate(args) if a == "--filter"]
        wanted = [f.removeprefix("label=").split("=", 1) for f in filters if f.startswith("label=")]
        status = [f.removeprefix("status=") for f in filters if f.startswith("status=")]
        found = [c for c in self.containers.values() if all(c.labels.get(k) == v for k, v in wanted)
                 and (not status or c.status in status)]
        if fmt == "{{.Names}}":
            lines = [c.name for c in found]
        elif fmt == '{{.Names}}|{{.Label "io.deployctl.release"}}':
            lines = [f"{c.name}|{c.labels.get(LABEL_RELEASE, '')}" for c in found]
        elif fmt == LIST_FORMAT:
            lines = [f"{c.name}|{c.labels.get(LABEL_ROLE, '')}|{c.labels.get(LABEL_RELEASE, '')}|{c.status}"
                     f"|{c.labels.get(LABEL_WORKER, '')}" for c in found]
        elif fmt == dc.PROXY_LISTING_FORMAT:
            lines = [f"{c.name}|{c.status}|{c.labels.get(LABEL_ROLE, '')}|{c.image}|"
                     + (", ".join("{}:{}->{}/tcp".format(*_mapping(p)) for p in (c.published or [c.publish]))
                        if c.publish and c.status == "running" else "") for c in found]
        else:
            return None
        return CommandResult(0, "".join(line + "\n" for line in lines), "")

    def _docker_exec(self, args: list[str]) -> CommandResult | None:
        container, command = self.containers.get(args[0]), args[1:]
        if container is None or container.status != "running":
            return CommandResult(1, "", f"Error response from daemon: container {args[0]} is not running")
        if command[:3] == ["nginx", "-t", "-q"]:
            return self._nginx_test(container, self._host_path(container, command[4]))
        if command[:3] == ["nginx", "-s", "reload"]:
            config = self._host_path(container, command[4])
            tested = self._nginx_test(container, config)
            if tested.ok:  # a refused file never reaches the running workers
                container.loaded = self.files[config][0]
                container.certificate = self._live_certificate(container)
            return tested
        if command[:2] == ["test", "-s"] or command[:2] == ["sh", "-c"]:
            return OK  # nginx wrote its pid; the anchor's own nginx (not modelled) told to quit
        return None

    # -- the model's rules -------------------------------------------------------------------------

    def _start(self, container: Container) -> None:
        container.status = "running"
        container.started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if any(re.search(p, container.name) for p in self.crashing):
            container.status, container.exit_code = "exited", 1
        elif container.labels.get(LABEL_ROLE) == NGINX_ROLE:  # nginx, loading its configuration
            config = self._host_path(container, container.args[1])
            if not self._nginx_test(container, config).ok:
                container.status = "exited"
            else:
                container.loaded = self.files[config][0]
                container.certificate = self._live_certificate(container)

    def _live_certificate(self, nginx: Container) -> str | None:
        folder = next(iter(nginx.mounts.values()), "")
        return self.links.get(f"{folder}/tls/live")

    def _nginx_test(self, nginx: Container, path: str | None) -> CommandResult:
        """As nginx: the file exists, and every upstream named by a container name resolves on
        the anchor's network (Docker DNS answers for running containers only)."""
        if path is None or path not in self.files:
            return CommandResult(1, "", f"nginx: [emerg] open() \"{path}\" failed (2: No such file or directory)")
        anchor = self.containers.get(nginx.name.rsplit("-proxy-nginx-", 1)[0] + "-proxy")
        network = next(iter(anchor.networks), "") if anchor is not None else ""
        for host in re.findall(r"^\s*server (\S+):\d+;", self.files[path][0].decode(), re.M):
            target = self.containers.get(host)
            if not re.fullmatch(r"[\d.]+", host) and (
                    target is None or target.status != "running" or network not in target.networks):
                return CommandResult(1, "", f'nginx: [emerg] host not found in upstream "{host}" in {path}')
        return OK

    def _through_proxy(self, path: str, headers: dict | None = None, anchor: str | None = None) -> HttpResponse:
        """What the running nginx answers: from the configuration it loaded (the one on disk
        may differ after a refused swap), its standby while that flag file exists; 503 with
        Retry-After in maintenance mode, unless the request carries its token."""
        nginx = next((c for c in reversed(list(self.containers.values()))
                      if c.loaded is not None and c.status == "running"
                      and (anchor is None or c.name.startswith(f"{anchor}-nginx-"))), None)
        if nginx is None:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "127.0.0.1: nothing listens on the proxy port")
        down = maintenance_state(nginx.loaded)
        if down is not None and (headers or {}).get(VERIFY_HEADER) != down.token:
            return HttpResponse(503, b"maintenance", {"retry-after": str(down.retry_after)})
        release, standby = live_release(nginx.loaded), standby_of(nginx.loaded)
        folder = next(iter(nginx.mounts.values()), "")
        if standby is not None and f"{folder}/{standby.flag}" in self.files:
            release = standby.release
        if release is None:
            return HttpResponse(503, b"No release deployed yet\n", {})
        stamp = {RELEASE_HEADER.lower(): release}
        if nginx.certificate:
            stamp[CERTIFICATE_HEADER.lower()] = nginx.certificate
        block = re.search(rf"upstream {upstream_name(release)} {{\s*server (\S+):\d+;", nginx.loaded.decode())
        target = self._by_ip(block.group(1)) if block and re.fullmatch(r"[\d.]+", block.group(1)) else (
            self.containers.get(block.group(1)) if block else None)
        if target is None or target.status != "running":
            return HttpResponse(502, b"502 Bad Gateway", stamp)
        return HttpResponse(200, json.dumps({"release": release}).encode(), stamp)

    # -- small helpers -----------------------------------------------------------------------------

    def _options(self, args: list[str]) -> tuple[dict[str, list[str]], str, list[str]]:
        """`docker create/run` options, the image, and what follows it."""
        options: dict[str, list[str]] = {}
        i = 0
        while args[i].startswith("-"):
            if args[i] in VALUED:
                options.setdefault(args[i], []).append(args[i + 1])
                i += 2
            else:
                i += 1
        return options, args[i], args[i + 1:]

    def _each(self, names: list[str], do: Callable[[Container], object]) -> CommandResult:
        missing = [n for n in names if n not in self.containers]
        for name in names:
            if name in self.containers:
                do(self.containers[name])
        return CommandResult(1, "", f"Error: No such container: {missing[0]}") if missing else OK

    def _host_path(self, container: Container, inside: str) -> str | None:
        folder, _, name = inside.rpartition("/")
        return f"{container.mounts[folder]}/{name}" if folder in container.mounts else None

    def _by_ip(self, address: str) -> Container | None:
        return next((c for c in self.containers.values() if c.status == "running" and address in c.networks.values()),
                    None)

    def _ip(self) -> str:
        self._ips += 1
        return f"172.18.{self._ips // 250}.{self._ips % 250 + 2}"

    def _parents(self, path: str) -> None:
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.dirs.add("/" + "/".join(parts[:i]))


def failing_access_log(host: "FakeHost", lock_info: str, requests: int = 30) -> Callable:
    """A Fault effect for the guard's `docker logs --timestamps --since T`: `requests` lines
    after T, each a 500 answered by the release whose deploy holds the lock (lock_info)."""
    from deployctl.plan.lifecycle.lock import LockRecord

    def effect(argv):  # type: ignore[no-untyped-def]
        since = float(argv[argv.index("--since") + 1])
        tried = LockRecord.parse(host.read_file(lock_info)).release
        lines = []
        for i in range(1, requests + 1):
            at = since + 0.001 + i * 1e-5  # past the millisecond --since was rounded to
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1e9):09d}Z"
            lines.append(f'{stamp} 10.0.0.1 [-] "GET / HTTP/1.1" 500 5 rt=0.002 upstream=172.18.0.9:8000 '
                         f"ustatus=500 urt=0.002 release={tried}")
        return CommandResult(0, "\n".join(lines) + "\n", "")
    return effect


def _background(argv: list[str]) -> list[list[str]] | None:
    """The commands of an `in_background` argv, None for any other."""
    prefix = "trap '' HUP; ("
    if argv[:2] != ["sh", "-c"] or len(argv) != 3 or not argv[2].startswith(prefix) \
            or not argv[2].endswith(dc.BACKGROUND_TAIL):
        return None
    body = argv[2][len(prefix):-len(dc.BACKGROUND_TAIL)]
    return [shlex.split(part) for part in body.split("; ")]
