"""A three-node Docker Swarm made of the test fleet's hosts (tests/support/fleet.py), as
/work/shared/testenv.md verified ("A multi-node Docker Swarm"): `swarm init` on the first
host, `swarm join` on the others, over the fleet network's fixed addresses. The nodes pull
from the session registry the way fleet hosts do (their dockerd trusts it).

The dispatcher heartbeat is 1 s (Swarm's default is 5 s) so that a stopped node is marked
down, and its tasks rescheduled, within seconds: what a test can wait for.

The load balancer stands in for an ALB with target health checks: nginx in front of every
node's proxy port that takes a node out after one failed connection (for 5 s) and sends
that request to another node; a request a node accepted and then lost is not retried
(`proxy_next_upstream error timeout` with `non_idempotent` left out still retries GETs,
which is what an ALB's own retry of a refused connection amounts to for our traffic).
"""

from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

from tests.support.fleet import LABEL, PID_LABEL, Fleet, FleetHost, LoadBalancer, docker
from tests.support.net import free_port, http_status, wait_until

HEARTBEAT = "1s"


@dataclass
class Swarm:
    fleet: Fleet
    manager: FleetHost
    workers: list[FleetHost]

    @property
    def nodes(self) -> list[FleetHost]:
        return [self.manager, *self.workers]

    def ready_nodes(self) -> int:
        out = self.manager.exec("docker", "node", "ls", "--format", "{{.Status}}", check=False)
        return sum(1 for line in out.splitlines() if line.strip() == "Ready")

    def running_tasks(self, service: str) -> dict[str, int]:
        """node -> running tasks of the service (desired and actual state running)."""
        out = self.manager.exec("docker", "service", "ps", "--filter", "desired-state=running", "--format",
                                "{{.Node}}\t{{.CurrentState}}", service, check=False)
        counts: dict[str, int] = {}
        for line in out.splitlines():
            node, _, state = line.partition("\t")
            if state.startswith("Running"):
                counts[node] = counts.get(node, 0) + 1
        return counts

    def services(self, app: str) -> dict[str, str]:
        """name -> replicas column (`running/wanted`) of the app's services."""
        out = self.manager.exec("docker", "service", "ls", "--filter", f"label=io.deployctl.app={app}",
                                "--format", "{{.Name}}\t{{.Replicas}}", check=False)
        return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)

    def remove_app(self, app: str) -> None:
        # A network is in use until the removed services' tasks are gone: asked again every
        # 0.25 s (for at most 10 s) rather than after a fixed 2 s sleep, as a test's teardown.
        script = (f"docker service ls -q --filter label=io.deployctl.app={app} | xargs -r docker service rm; "
                  f"docker secret ls -q --filter label=io.deployctl.app={app} | xargs -r docker secret rm; "
                  "i=0; while [ $i -lt 40 ]; do "
                  f"left=$(docker network ls -q --filter name={app}-); [ -z \"$left\" ] && break; "
                  "echo \"$left\" | xargs docker network rm >/dev/null 2>&1 && break; i=$((i+1)); sleep 0.25; done")
        self.manager.exec("sh", "-c", script, check=False)
        self.fleet.remove_app(app)

    def load_balancer(self, port: int) -> LoadBalancer:
        name = f"{self.fleet.network}-swarm-lb-{port}"
        conf = self.fleet.workdir / f"swarm-lb-{port}.conf"
        servers = "".join(f"    server {h.address}:{port} max_fails=1 fail_timeout=5s;\n" for h in self.nodes)
        conf.write_text(
            "upstream swarm {\n" + servers + "}\n"
            "server {\n"
            "    listen 80;\n"
            "    location = /lb-health { return 200 'ok'; }\n"
            "    location / {\n"
            "        proxy_pass http://swarm;\n"
            "        proxy_next_upstream error timeout;\n"
            "        proxy_next_upstream_tries 2;\n"
            "        proxy_connect_timeout 1s;\n"
            "        proxy_read_timeout 10s;\n"
            "    }\n"
            "}\n")
        balancer = self._balancer(name, conf, "/etc/nginx/conf.d/default.conf", 80)
        wait_until(lambda: http_status(f"{balancer.url}/lb-health") == 200, 30, f"load balancer {name}")
        return balancer

    def tls_load_balancer(self, port: int) -> LoadBalancer:
        """A TCP load balancer in front of every node's HTTPS port (an NLB with TLS passed
        through: the client checks the nodes' certificate): nginx's stream module, a node
        taken out after one failed connection and the connection tried on another."""
        name = f"{self.fleet.network}-swarm-tls-lb-{port}"
        conf = self.fleet.workdir / f"swarm-tls-lb-{port}.conf"
        servers = "".join(f"        server {h.address}:{port} max_fails=1 fail_timeout=5s;\n" for h in self.nodes)
        conf.write_text(
            "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"
            "events {}\n"
            "stream {\n"
            "    upstream swarm {\n" + servers + "    }\n"
            "    server {\n"
            "        listen 443;\n"
            "        proxy_pass swarm;\n"
            "        proxy_connect_timeout 1s;\n"
            "        proxy_next_upstream_tries 2;\n"
            "    }\n"
            "}\n")
        # docker-proxy accepts on the published port before nginx listens: the caller waits
        # for an answer through it (an HTTPS request with its trust).
        return self._balancer(name, conf, "/etc/nginx/nginx.conf", 443)

    def _balancer(self, name: str, conf, mount: str, inside: int) -> LoadBalancer:  # type: ignore[no-untyped-def]
        local = free_port()
        docker("run", "--detach", "--name", name, "--network", self.fleet.network, "--label",
               f"{LABEL}={self.fleet.id}", "--label", f"{PID_LABEL}={os.getpid()}",
               "--publish", f"127.0.0.1:{local}:{inside}", "-v", f"{conf}:{mount}:ro", self.fleet.nginx_image)
        return LoadBalancer(name, local)

    @contextlib.contextmanager
    def registry_on_loopback(self, image: str) -> Iterator[str]:
        """The session registry at 127.0.0.1:PORT on every node too (yields that address):
        a TCP forwarder (nginx's stream module, `image` an nginx the nodes can pull) on each
        node's loopback to the registry at the gateway. This machine's engine pushes there
        over plain HTTP (a loopback registry is trusted by default) and so do the nodes'
        engines pull, so one `registry.server` serves `deployctl push` here and the Swarm's
        pulls: what `deployctl release --env <swarm env>` needs end to end."""
        local, remote = self.fleet.local_registry, self.fleet.registry
        port = local.rsplit(":", 1)[1]
        name = f"{self.fleet.network}-registry-loopback"
        conf = ("load_module /usr/lib/nginx/modules/ngx_stream_module.so;\nevents {}\n"
                f"stream {{ server {{ listen 127.0.0.1:{port}; proxy_pass {remote}; }} }}\n")
        try:
            for host in self.nodes:
                host.exec("sh", "-c", f"mkdir -p /tmp/{name} && printf '{conf}' > /tmp/{name}/nginx.conf")
                host.exec("docker", "run", "--detach", "--name", name, "--network", "host", "-v",
                          f"/tmp/{name}:/fwd:ro", "--entrypoint", "nginx", image, "-c", "/fwd/nginx.conf",
                          "-g", "daemon off;")
            for host in self.nodes:
                wait_until(lambda host=host: host.exec("docker", "inspect", "--format", "{{.State.Running}}", name,
                                                       check=False).strip() == "true", 30, f"{name} on {host.name}")
            time.sleep(0.5)  # nginx listens within milliseconds of its start
            yield local
        finally:
            for host in self.nodes:
                host.exec("sh", "-c", f"docker rm -f {name}; rm -rf /tmp/{name}", check=False)

    def leave(self) -> None:
        """Every node out of the Swarm (the fleet's hosts live on for the fleet tests of the
        same session): the workers side by side, then the manager (--force: no quorum to keep;
        one after the other, under load, this was seconds per node)."""
        with ThreadPoolExecutor(max_workers=len(self.workers) or 1) as pool:
            list(pool.map(lambda host: host.exec("docker", "swarm", "leave", "--force", check=False), self.workers))
        self.manager.exec("docker", "swarm", "leave", "--force", check=False)


def make_swarm(fleet: Fleet) -> Swarm:
    """The fleet's first host as manager, the others as workers; every node Ready."""
    manager, *workers = fleet.hosts
    with ThreadPoolExecutor(max_workers=len(fleet.hosts)) as pool:  # independent hosts: side by side
        # a swarm a crashed session left behind
        list(pool.map(lambda host: host.exec("docker", "swarm", "leave", "--force", check=False), fleet.hosts))
        manager.exec("docker", "swarm", "init", "--advertise-addr", manager.address,
                     "--dispatcher-heartbeat", HEARTBEAT)
        token = manager.exec("docker", "swarm", "join-token", "-q", "worker")
        list(pool.map(lambda host: host.exec("docker", "swarm", "join", "--token", token,
                                             f"{manager.address}:2377"), workers))
    swarm = Swarm(fleet, manager, workers)
    wait_until(lambda: swarm.ready_nodes() == len(fleet.hosts), 60, "every swarm node Ready", interval=0.5)
    return swarm


def wait_for(predicate, timeout: float, what: str, interval: float = 0.25):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:g}s")
