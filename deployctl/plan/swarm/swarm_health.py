"""deployctl's own `http`/`tcp` health check of every task of a new release on a Swarm, as
data: services/swarm/swarm_health.py runs these argvs on the manager.

Swarm can only run a check *inside* a task, and an image we did not write may have no curl
or wget. So, as kamal-proxy checks its targets itself, deployctl checks each task from a
container it controls: a short-lived **checker** on the manager, made of the release's
proxy image (nginx, which deployctl requires of its proxy anyway and every node pulls). It
sits on the default bridge (the manager reaches it as it reaches any container, so the
probe is the ssh target's own `http_get`/`tcp_check`) and on the app's overlay network
(where every task, on any node, has an address). Its nginx relays
`GET /deployctl-check/<task ip>/<port><path>` to that task and says whether it connected,
so an `http` check means exactly what it means on ssh hosts: 200 within the timeout.
A `tcp` check needs only a connect, which a relay through HTTP cannot tell apart from a
server that talks first; the checker's shell tries it (bash's /dev/tcp, else `nc -z`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..lifecycle.names import Names
from ..lifecycle.release_spec import HealthProbe

if TYPE_CHECKING:
    from .services import Task

CHECK_PREFIX = "/deployctl-check"
CHECKER_HEALTH = "/deployctl-checker"  # answered by the checker itself: its nginx is up
CHECKER_PORT = 80
CHECKER_CONF = "/tmp/deployctl-checker.conf"
CONNECT_HEADER = "x-deployctl-connect"  # nginx's $upstream_connect_time: "-" when it could not connect
ANSWER_HEADER = "x-deployctl-answer"  # nginx's $upstream_header_time: "-" when the task sent no answer
ATTEMPT = 2.0  # one probe's timeout, as services/lifecycle/health.py: min(2 s, the check's timeout)


CHECKED = ("http", "tcp")  # the kinds deployctl checks itself; Swarm runs docker/command ones in the task


def attempt_timeout(timeout: float) -> float:
    return min(ATTEMPT, timeout)


def checked(probes: dict[str, HealthProbe]) -> dict[str, HealthProbe]:
    """Swarm service -> its check, for the services deployctl checks itself."""
    return {name: probe for name, probe in probes.items() if probe.kind in CHECKED}


def checker_attempt(probes: dict[str, HealthProbe]) -> float:
    """The relay's own timeouts: the shortest attempt of the checks it serves."""
    return min((attempt_timeout(p.timeout) for p in checked(probes).values()), default=ATTEMPT)


def render_checker_config(attempt: float) -> str:
    """The relay. Only IPv4 addresses and a port are accepted as the target (it is no open
    proxy to names), the answer is passed back as the task gave it, never retried."""
    ms = f"{max(1, round(attempt * 1000))}ms"
    return f"""worker_processes 1;
pid /tmp/deployctl-checker.pid;
error_log /dev/stderr error;
events {{ worker_connections 256; }}
http {{
    access_log off;
    server_tokens off;
    server {{
        listen {CHECKER_PORT};
        location = {CHECKER_HEALTH} {{ return 200 "ok\\n"; }}
        location ~ "^{CHECK_PREFIX}/(?<t_addr>[0-9]{{1,3}}(\\.[0-9]{{1,3}}){{3}})/(?<t_port>[0-9]{{1,5}})(?<t_path>/.*)$" {{
            proxy_pass http://$t_addr:$t_port$t_path$is_args$args;
            proxy_set_header Host $t_addr:$t_port;
            proxy_connect_timeout {ms};
            proxy_read_timeout {ms};
            proxy_send_timeout {ms};
            proxy_next_upstream off;
            proxy_buffering off;
            add_header X-Deployctl-Connect "$upstream_connect_time" always;
            add_header X-Deployctl-Answer "$upstream_header_time" always;
        }}
        location / {{ return 404; }}
    }}
}}
"""


def checker_name(names: Names, release: str) -> str:
    return f"{names.prefix}-check-{release}"


def run_checker(names: Names, release: str, image: str, attempt: float) -> list[str]:
    """Detached on the manager's default bridge; its configuration comes on the argv (no
    file on the host to clean up). `--rm`: gone as soon as it is stopped."""
    return ["docker", "run", "--detach", "--rm", "--name", checker_name(names, release), "--network", "bridge",
            *[arg for k, v in sorted(names.labels("check", release).items()) for arg in ("--label", f"{k}={v}")],
            "--entrypoint", "sh", image, "-c",
            f'printf "%s" "$1" > {CHECKER_CONF} && exec nginx -c {CHECKER_CONF} -g "daemon off;"', "sh",
            render_checker_config(attempt)]


def connect_checker(network: str, checker: str) -> list[str]:
    return ["docker", "network", "connect", network, checker]


def checker_address(checker: str) -> list[str]:
    """Its address on the default bridge: how the manager reaches it."""
    return ["docker", "inspect", "--format", "{{.NetworkSettings.Networks.bridge.IPAddress}}", checker]


def remove_checker(checker: str) -> list[str]:
    return ["docker", "rm", "--force", checker]


def check_path(address: str, port: int, path: str) -> str:
    return f"{CHECK_PREFIX}/{address}/{port}{path}"


def tcp_probe(checker: str, address: str, port: int, attempt: float) -> list[str]:
    """Exit 0 when the task accepts a connection within `attempt` seconds."""
    seconds = str(max(1, round(attempt)))
    script = ('if command -v bash >/dev/null 2>&1; then exec timeout "$3" bash -c \'exec 3<>"/dev/tcp/$0/$1"\' "$1" "$2"; '
              'elif command -v nc >/dev/null 2>&1; then exec nc -z -w "$3" "$1" "$2"; '
              'else echo "the proxy image has neither bash nor nc for a tcp check" >&2; exit 127; fi')
    return ["docker", "exec", checker, "sh", "-c", script, "sh", address, str(port), seconds]


def task_addresses(task_ids: list[str]) -> list[str]:
    """Each task's addresses on every network it is attached to (`network=ip/prefix`)."""
    return ["docker", "inspect", "--type", "task", "--format",
            "{{.ID}}\t{{range .NetworksAttachments}}{{.Network.Spec.Name}}={{range .Addresses}}{{.}},{{end}} {{end}}",
            *task_ids]


def parse_task_addresses(text: str, network: str) -> dict[str, str]:
    """task id -> its IPv4 address on `network` (a task without one yet is left out)."""
    out = {}
    for line in text.splitlines():
        task, _, attachments = line.partition("\t")
        for attachment in attachments.split():
            name, _, addresses = attachment.partition("=")
            first = next((a for a in addresses.split(",") if a and ":" not in a), "")
            if name == network and first:
                out[task.strip()] = first.split("/")[0]
    return out


@dataclass(frozen=True)
class ProbeAnswer:
    """What one check of one task came to."""

    ok: bool
    why: str = ""


def http_answer(status: int, headers: dict[str, str], body: str, path: str, target: str) -> ProbeAnswer:
    """The relay's answer read as the ssh target reads a container's: 200 passes; the
    relay's own 502/504 says whether the task did not accept the connection or did not
    answer in time (then nginx saw no connect or no header: `-`)."""
    if status in (502, 504):
        if headers.get(CONNECT_HEADER, "-").strip() == "-":
            return ProbeAnswer(False, f"{target}: no connection ({'timed out' if status == 504 else 'refused'})")
        if headers.get(ANSWER_HEADER, "-").strip() == "-":
            return ProbeAnswer(False, f"{target}{path}: no answer in time" if status == 504
                               else f"{target}{path}: no HTTP answer")
    if status == 200:
        return ProbeAnswer(True)
    return ProbeAnswer(False, f"{path} answered {status}: {body.strip()[:200]}")


def crashed(task: Task) -> bool:
    """A task that ended before it was healthy: Failed or Rejected, shut down with an error,
    or Complete. A release's services are long-running (migrations are jobs, waited for
    elsewhere), so a Complete task exited on its own, or was stopped by Swarm for failing its
    HEALTHCHECK (its process then exits 0 on the stop signal, and Swarm starts another: a
    restart loop that never shows Failed; found by the Swarm integration test)."""
    return task.failed or task.complete or (task.state.startswith("Shutdown") and bool(task.error))


def failed_before(tasks: list[Task]) -> set[str]:
    """The ids of the tasks that had failed already when a wait began (a scaled or rolled
    back service keeps its old tasks in `docker service ps`): not this wait's failures."""
    return {t.id for t in tasks if crashed(t)}


def first_crash(tasks: list[Task], services: set[str], before: set[str]) -> Task | None:
    """The first task of `services` that failed since the wait began: the wait ends there,
    naming its error (Swarm would only start another task from the same image)."""
    return next((t for t in tasks if t.service in services and t.id not in before and crashed(t)), None)
