"""A fleet of EC2-like hosts on this machine, and a load balancer in front of them.

Each host is a container of the `host` stand-in (docs/TEAM-CONTRACT.md) running its own
sshd and its own dockerd, started with the flags /work/shared/testenv.md verified
("Several EC2 hosts on one machine"); its inner engine keeps its images in a named volume
at /var/lib/docker, so it uses overlay2. Hosts sit on a Docker network of their own with
fixed addresses, so a host stopped and started again keeps its address (and its pinned
host key).

Images reach the hosts the real way: through a registry. The session's registry listens on
every address; the hosts reach it at this network's gateway (GATEWAY:PORT, which their
dockerd trusts with --insecure-registry), while this machine's engine pushes to
127.0.0.1:PORT (trusted by default) — the same registry, so a digest pushed one way is
pulled the other. Image references given to deployctl use the hosts' name (`registry`),
so this machine's engine never needs to trust the gateway address.

The load balancer stands in for an ALB: nginx (the stand-in image) on the same network,
published on 127.0.0.1, with every host's proxy port as upstream. It does not retry a
failed request on another host (`proxy_next_upstream off`), so any request a host drops
reaches the client and counts; with `retry_refused` it does, for a refused connection (the
move to a host's shared proxy, host by host, relies on it as on an ALB's retry).
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tests.support.net import free_port, http_status, ssh_banner, wait_until

LABEL = "io.deployctl.test.fleet"  # value: the fleet id; on every container, volume and network
PID_LABEL = "io.deployctl.test.fleet.pid"  # the pytest process that made it (stale-fleet clean-up)
HOST_RUN_FLAGS = [  # testenv.md: what lets a container run its own dockerd here (--privileged does not)
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
]
READY_TIMEOUT = 90.0


def docker(*args: str, check: bool = True, timeout: float = 300) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:4])}...: {done.stderr.strip()}")
    return done.stdout.strip()


@dataclass
class FleetHost:
    name: str  # the container's name
    address: str  # its fixed address on the fleet network
    volume: str  # the inner engine's /var/lib/docker

    def exec(self, *argv: str, check: bool = True) -> str:
        return docker("exec", self.name, *argv, check=check)


@dataclass
class LoadBalancer:
    container: str
    port: int  # on 127.0.0.1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        docker("rm", "-f", self.container, check=False)


@dataclass
class Fleet:
    id: str
    network: str
    gateway: str
    hosts: list[FleetHost]
    key_file: str
    known_hosts_file: str
    registry: str  # GATEWAY:PORT: how the hosts (and registry.server in deploy.toml) name it
    local_registry: str  # 127.0.0.1:PORT: how this machine's engine pushes to it
    nginx_image: str
    workdir: Path
    _balancers: list[LoadBalancer] = field(default_factory=list, repr=False)
    # Every app's proxy port on these hosts, handed out once (fleet and Swarm apps alike: a
    # Swarm's nodes are this fleet's hosts, and its proxies publish in host mode), so that no
    # two tests on one fleet share a port, a load balancer's name or an iptables rule's port,
    # even when one's teardown failed. Below 9000: some tests add 1000 for the HTTPS port.
    _proxy_ports: Iterator[int] = field(default_factory=lambda: iter(range(8101, 9000)), repr=False)

    # -- images ------------------------------------------------------------------------------

    def publish(self, image: str, repository: str, tag: str) -> str:
        """Pushes `image` to the registry as repository:tag; returns the reference the hosts
        pull (`GATEWAY:PORT/repository@sha256:...`)."""
        local = f"{self.local_registry}/{repository}:{tag}"
        docker("tag", image, local)
        docker("push", local)
        digests = json.loads(docker("image", "inspect", "--format", "{{json .RepoDigests}}", local))
        digest = next(d for d in digests if d.startswith(f"{self.local_registry}/{repository}@")).split("@")[1]
        docker("rmi", local, check=False)
        return f"{self.registry}/{repository}@{digest}"

    # -- hosts -------------------------------------------------------------------------------

    def addresses(self, count: int | None = None) -> list[str]:
        return [h.address for h in self.hosts[:count]]

    def proxy_port(self) -> int:
        """A proxy port no other app on this fleet had (8101-8999)."""
        return next(self._proxy_ports)

    def stop_host(self, host: FleetHost) -> None:
        docker("stop", "--time", "5", host.name)

    def start_host(self, host: FleetHost) -> None:
        docker("start", host.name)
        _wait_ready(host)

    def remove_app(self, app: str) -> None:
        """What a test's app left on every host: containers, network, state. The hosts side
        by side, as remove_fleet does: each inner engine removes its own containers (a
        test's teardown took up to 31 s host after host)."""
        script = (f"docker ps -aq --filter label=io.deployctl.app={app} | xargs -r docker rm -f >/dev/null; "
                  f"docker network ls -q --filter name={app}- | xargs -r docker network rm >/dev/null; "
                  f"rm -rf /var/lib/deployctl/{app}")
        with ThreadPoolExecutor(max_workers=len(self.hosts) or 1) as pool:
            list(pool.map(lambda host: host.exec("sh", "-c", script, check=False), self.hosts))

    # -- load balancer -----------------------------------------------------------------------

    def load_balancer(self, proxy_port: int, count: int | None = None, retry_refused: bool = False) -> LoadBalancer:
        """nginx on 127.0.0.1:PORT sending requests round-robin to every host's proxy_port.
        `retry_refused`: a request a host refuses (or closes before answering) is tried on
        the next host (`proxy_next_upstream error`, as an ALB that retries a refused
        connection), and the client's Host goes on (a host's shared proxy routes by it)."""
        name = f"{self.network}-lb-{proxy_port}"
        retry = ("        proxy_next_upstream error;\n        proxy_set_header Host $host;\n" if retry_refused
                 else "        proxy_next_upstream off;\n")
        conf = self.workdir / f"lb-{proxy_port}.conf"
        servers = "".join(f"    server {address}:{proxy_port} max_fails=0;\n" for address in self.addresses(count))
        conf.write_text(
            "upstream fleet {\n" + servers + "}\n"
            "server {\n"
            "    listen 80;\n"
            "    location = /lb-health { return 200 'ok'; }\n"
            "    location / {\n"
            "        proxy_pass http://fleet;\n"
            + retry +
            "        proxy_connect_timeout 2s;\n"
            "        proxy_read_timeout 10s;\n"
            "    }\n"
            "}\n")
        port = free_port()
        docker("run", "--detach", "--name", name, "--network", self.network, "--label", f"{LABEL}={self.id}",
               "--label", f"{PID_LABEL}={os.getpid()}", "--publish", f"127.0.0.1:{port}:80",
               "-v", f"{conf}:/etc/nginx/conf.d/default.conf:ro", self.nginx_image)
        balancer = LoadBalancer(name, port)
        self._balancers.append(balancer)
        wait_until(lambda: http_status(f"{balancer.url}/lb-health") == 200, 30, f"load balancer {name}")
        return balancer

    # -- the end -----------------------------------------------------------------------------

    def close(self) -> None:
        remove_fleet(self.id)


def _labels(fleet_id: str) -> list[str]:
    return ["--label", f"{LABEL}={fleet_id}", "--label", f"{PID_LABEL}={os.getpid()}"]


def remove_fleet(fleet_id: str) -> None:
    """Containers, then the inner engines' volumes, then the network. One call per
    container and per volume, side by side: the engine removes one at a time per call, and
    deleting an inner engine's images is most of a teardown."""
    selector = f"label={LABEL}={fleet_id}"

    def each(argv: list[str], names: list[str]) -> None:
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            list(pool.map(lambda name: docker(*argv, name, check=False), names))

    each(["rm", "-f", "-v"], docker("ps", "-aq", "--filter", selector, check=False).split())
    each(["volume", "rm", "-f"], docker("volume", "ls", "-q", "--filter", selector, check=False).split())
    each(["network", "rm"], docker("network", "ls", "-q", "--filter", selector, check=False).split())


def remove_stale_fleets() -> None:
    """Fleets whose pytest process is gone (a killed session never tore down): removed.
    Fleets of sessions still running (several share this machine) are left alone."""
    rows = docker("ps", "-a", "--filter", f"label={LABEL}", "--format",
                  f'{{{{.Label "{LABEL}"}}}} {{{{.Label "{PID_LABEL}"}}}}', check=False).splitlines()
    rows += docker("network", "ls", "--filter", f"label={LABEL}", "--format",
                   f'{{{{.Label "{LABEL}"}}}} {{{{.Label "{PID_LABEL}"}}}}', check=False).splitlines()
    for fleet_id, pid in {tuple(row.split()) for row in rows if len(row.split()) == 2}:
        if pid.isdigit() and not _alive(int(pid)):
            remove_fleet(fleet_id)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _network_with_fixed_subnet(name: str, fleet_id: str) -> tuple[str, ipaddress.IPv4Network]:
    """Fixed addresses (`docker run --ip`) need a network created with --subnet. The engine
    picks a free subnet for a plain network; that choice is made again, explicitly. Another
    session (or xdist worker) creating a network in between can take that subnet ("Pool
    overlaps"): then the engine picks again."""
    for attempt in range(5):
        docker("network", "create", name)
        subnet = json.loads(docker("network", "inspect", "--format", "{{json .IPAM.Config}}", name))[0]["Subnet"]
        docker("network", "rm", name)
        network = ipaddress.ip_network(subnet)
        gateway = str(network.network_address + 1)
        try:
            docker("network", "create", "--subnet", subnet, "--gateway", gateway, *_labels(fleet_id), name)
        except RuntimeError:
            if attempt == 4:
                raise
            continue
        return gateway, network
    raise AssertionError("unreachable")


def _wait_ready(host: FleetHost) -> None:
    """sshd answers on port 22 and the inner dockerd answers `docker info`."""
    def running() -> str | None:
        state = docker("inspect", "--format", "{{.State.Status}}", host.name, check=False)
        if state == "running":
            return None
        logs = subprocess.run(["docker", "logs", "--tail", "20", host.name], capture_output=True, text=True)
        # Its dockerd's own log says why it exited (readable from a stopped container).
        dockerd = subprocess.run(["docker", "cp", f"{host.name}:/var/log/dockerd.log", "-"], capture_output=True)
        tail = "\n".join(dockerd.stdout.decode(errors="replace").splitlines()[-15:])  # a tar stream: text enough
        return f"host container {host.name} is {state or 'gone'}:\n{logs.stdout}{logs.stderr}\ndockerd.log:\n{tail}"

    wait_until(lambda: (ssh_banner(host.address, 22) or "").startswith("SSH-2.0"), READY_TIMEOUT,
               f"sshd of {host.name} at {host.address}:22", interval=0.3, alive=running)
    wait_until(lambda: subprocess.run(["docker", "exec", host.name, "docker", "info"],
                                      capture_output=True).returncode == 0,
               READY_TIMEOUT, f"the inner dockerd of {host.name} (/var/log/dockerd.log in it)", interval=0.5,
               alive=running)


def start_fleet(workdir: Path, count: int, *, host_image: str, nginx_image: str, registry_port: int) -> Fleet:
    """`count` hosts ready for SSH as root with a fresh client key, their host keys pinned in
    a known_hosts file, their engines trusting the registry at the gateway."""
    remove_stale_fleets()
    workdir.mkdir(parents=True, exist_ok=True)
    fleet_id = f"fleet{secrets.token_hex(4)}"
    key = workdir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deployctl-fleet-client", "-f", str(key)],
                   check=True, capture_output=True)
    try:
        gateway, subnet = _network_with_fixed_subnet(f"deployctl-{fleet_id}", fleet_id)
        registry = f"{gateway}:{registry_port}"
        hosts = []
        for index in range(count):
            host = FleetHost(f"deployctl-{fleet_id}-host{index + 1}", str(subnet.network_address + 10 + index),
                             f"deployctl-{fleet_id}-host{index + 1}-docker")
            docker("volume", "create", *_labels(fleet_id), host.volume)
            docker("run", "--detach", "--name", host.name, "--hostname", f"host{index + 1}",
                   "--network", f"deployctl-{fleet_id}", "--ip", host.address, *_labels(fleet_id),
                   *HOST_RUN_FLAGS, "-v", f"{host.volume}:/var/lib/docker",
                   "-e", f"SSH_AUTHORIZED_KEYS={Path(f'{key}.pub').read_text().strip()}",
                   "-e", f"DOCKERD_INSECURE_REGISTRIES={registry}", host_image)
            hosts.append(host)
        for host in hosts:
            _wait_ready(host)
        known_hosts = workdir / "known_hosts"
        known_hosts.write_text("".join(_host_keys(host) for host in hosts))
    except BaseException:
        remove_fleet(fleet_id)
        raise
    return Fleet(fleet_id, f"deployctl-{fleet_id}", gateway, hosts, str(key), str(known_hosts), registry,
                 f"127.0.0.1:{registry_port}", nginx_image, workdir)


def _host_keys(host: FleetHost) -> str:
    """The host's public keys, read out of band (as one would from the EC2 console), as
    known_hosts lines for its address."""
    lines = []
    for path in host.exec("sh", "-c", "ls /etc/ssh/ssh_host_*_key.pub").split():
        key_type, key_b64 = host.exec("cat", path).split()[:2]
        lines.append(f"{host.address} {key_type} {key_b64}\n")
    return "".join(lines)
