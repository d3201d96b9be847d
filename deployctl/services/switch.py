"""The release switch on one host, shared by deploy and rollback: start containers beside
the live ones, wait for their health checks, point nginx at them, verify through nginx,
stop the old ones. Every docker argv comes from plan/docker_commands.py.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from ..adapters.connector import check
from ..errors import DeployError, HealthCheckError
from ..events import Emit, Message, StepProgress, Timer
from ..plan import docker_commands as dc
from ..plan.names import Names, StateLayout
from ..plan.upstream import UPSTREAM_MOUNT, render_upstream, upstream_release
from ..secrets import redactor

VERIFY_TIMEOUT = 15.0  # seconds for nginx to answer /version with the new release
VERIFY_STREAK = 3  # consecutive answers from the new release before the switch counts
LOG_LINES = 20
STATE_EVERY = 1.0  # seconds between container inspections while waiting for health
_ASK = object()  # ensure_proxy: the proxy's state is not known yet


@dataclass(frozen=True)
class ContainerState:
    name: str
    status: str  # created | running | exited | ...
    health: str
    ip: str
    release: str
    started: str
    image: str


@dataclass(frozen=True)
class HealthTarget:
    container: str
    service: str
    port: int
    path: str
    timeout: float
    interval: float


class HostSwitch:
    def __init__(self, conn, names: Names, layout: StateLayout, emit: Emit,
                 checkpoint: Callable[[], None] | None = None) -> None:
        self.conn, self.names, self.layout, self.emit = conn, names, layout, emit
        # Called while waiting for health: a rollout's cancel check raises there, so an
        # interrupted rollout does not wait out a health timeout first.
        self.checkpoint = checkpoint

    # -- looking -----------------------------------------------------------------------------

    def states(self, containers: Sequence[str]) -> dict[str, ContainerState]:
        if not containers:
            return {}
        # Exit status 1 when some are missing; the ones that exist are still printed.
        result = self.conn.run(dc.inspect_state(containers))
        out = {}
        for line in result.stdout.splitlines():
            parts = line.split("|")
            if len(parts) != 7:
                continue
            name, status, health, ips, release, started, image = parts
            name = name.lstrip("/")
            out[name] = ContainerState(name, status, health, (ips.split() or [""])[0], release, started, image)
        return out

    def release_containers(self) -> dict[str, list[str]]:
        """release id -> its service containers on this host (running or stopped)."""
        out: dict[str, list[str]] = {}
        for line in check(self.conn, dc.list_containers(self.names)).splitlines():
            name, _, rest = line.partition("|")
            role, _, release = rest.partition("|")
            if role == "service" and release:
                out.setdefault(release, []).append(name)
        return out

    def logs(self, container: str, lines: int = LOG_LINES) -> tuple[str, ...]:
        result = self.conn.run(dc.logs(container, lines))
        text = redactor(result.stdout + result.stderr)
        return tuple(text.splitlines()[-lines:])

    # -- network and proxy -------------------------------------------------------------------

    def ensure_network(self) -> bool:
        """True when it had to be created (first deploy on a bare host)."""
        if self.conn.run(dc.network_inspect(self.names.network)).ok:
            return False
        check(self.conn, dc.network_create(self.names))
        return True

    def proxy_state(self) -> ContainerState | None:
        return self.states([self.names.proxy]).get(self.names.proxy)

    def proxy_port(self) -> int | None:
        result = self.conn.run(dc.port_of(self.names.proxy))
        for line in result.stdout.splitlines():
            port = line.rsplit(":", 1)[-1].strip()
            if port.isdigit():
                return int(port)
        return None

    def ensure_proxy(self, image: str, port: int, state: ContainerState | None | object = _ASK) -> int:
        """Starts the proxy when missing (or starts it again when stopped); returns the host
        port. `state`: the proxy's state when the caller has just looked (one inspect less)."""
        if state is _ASK:
            state = self.proxy_state()
        if state is None:
            timer = Timer(self.emit, "proxy", host=self.conn.host, detail=f"starting nginx on port {port or 'any'}")
            argv = dc.run_proxy(self.names, image, port, self.layout.proxy_dir, UPSTREAM_MOUNT,
                                self.names.labels("proxy"))
            if port == 0:  # any free port: let the engine choose
                i = argv.index("--publish")
                argv[i + 1] = str(dc.PROXY_CONTAINER_PORT)
            check(self.conn, argv)
            timer.done()
        elif state.status != "running":
            check(self.conn, dc.start([self.names.proxy]))
        actual = self.proxy_port()
        if actual is None:
            raise DeployError(f"{self.conn.host}: the proxy {self.names.proxy} publishes no port")
        return actual

    # -- containers --------------------------------------------------------------------------

    def wait_healthy(self, targets: Sequence[HealthTarget]) -> None:
        """Polls each container's health path over HTTP (as the host sees it) until all
        answer 200. A container that exits, or one not healthy by its timeout, fails the
        wait with its last log lines."""
        pending = {t.container: t for t in targets}
        started = time.monotonic()
        interval = min((t.interval for t in targets), default=0.25)
        last_error: dict[str, str] = {}
        states: dict[str, ContainerState] = {}
        inspected = float("-inf")
        while pending:
            if self.checkpoint is not None:
                self.checkpoint()
            # HTTP polls are cheap; each inspect is a docker process on the host. Inspect
            # for the addresses, then only every STATE_EVERY seconds (to see an exit).
            if time.monotonic() - inspected >= STATE_EVERY or any(not states.get(n) or not states[n].ip
                                                                  for n in pending):
                states, inspected = self.states(list(pending)), time.monotonic()
            for name, target in list(pending.items()):
                state = states.get(name)
                if state is None or state.status in ("exited", "dead"):
                    self._unhealthy(target, f"the container {'is gone' if state is None else 'exited'}")
                if state.ip:
                    try:
                        response = self.conn.http_get(state.ip, target.port, target.path, timeout=min(2.0, target.timeout))
                        if response.status == 200:
                            del pending[name]
                            self.emit(StepProgress("health", f"{name} healthy after {time.monotonic() - started:.1f}s",
                                                   host=self.conn.host, service=target.service))
                            continue
                        last_error[name] = f"{target.path} answered {response.status}: {response.text()[:200]}"
                    except OSError as exc:
                        last_error[name] = f"{target.path}: {exc}"
                if time.monotonic() - started > target.timeout:
                    self._unhealthy(target, f"not healthy after {target.timeout:g}s "
                                            f"({last_error.get(name, 'no answer')})")
            if pending:
                time.sleep(interval)

    def _unhealthy(self, target: HealthTarget, why: str) -> None:
        raise HealthCheckError(f"{self.conn.host}: {target.container}: {why}",
                               hint="the previous release is still serving")

    def start_existing(self, containers: Sequence[str]) -> None:
        """One `docker start` per container, at once: each is a round trip to the engine."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=max(len(containers), 1)) as pool:
            for future in [pool.submit(check, self.conn, dc.start([name])) for name in containers]:
                future.result()

    def stop(self, containers: Sequence[str]) -> None:
        if containers:
            check(self.conn, dc.stop(containers))

    def remove(self, containers: Sequence[str]) -> None:
        if containers:
            self.conn.run(dc.remove(containers))

    # -- the switch --------------------------------------------------------------------------

    def live_upstream(self) -> tuple[bytes | None, str | None]:
        raw = self.conn.read_file(self.layout.upstream_file)
        return raw, upstream_release(raw)

    def write_upstream(self, release: str, container: str, port: int) -> None:
        self.conn.put_file(self.layout.upstream_file, render_upstream(release, container, port).encode(), 0o644)

    def reload(self) -> None:
        """`nginx -t` first: a bad file never reaches the running config."""
        result = self.conn.run(dc.nginx_test_and_reload(self.names))
        if not result.ok:
            raise DeployError(f"{self.conn.host}: nginx -t refused the new upstream (nothing reloaded): "
                              f"{redactor(result.stderr.strip() or result.stdout.strip())}")

    def verify(self, port: int, release: str, timeout: float = VERIFY_TIMEOUT) -> float:
        """Until nginx answers /version with `release` VERIFY_STREAK times in a row."""
        started = time.monotonic()
        streak, last = 0, "no answer"
        while time.monotonic() - started < timeout:
            try:
                response = self.conn.http_get("127.0.0.1", port, "/version", timeout=2.0)
                ok = response.status == 200 and _names_release(response.text(), release)
                last = f"{response.status} {response.text()[:200]}"
            except OSError as exc:
                ok, last = False, str(exc)
            streak = streak + 1 if ok else 0
            if streak >= VERIFY_STREAK:
                return time.monotonic() - started
            time.sleep(0.05 if ok else 0.2)
        raise DeployError(f"{self.conn.host}: through nginx, /version did not answer with {release} "
                          f"within {timeout:g}s (last: {last})")

    def restore_upstream(self, previous: bytes | None) -> None:
        """Puts the previous upstream file back and reloads (the switch-back path)."""
        if previous is None:
            return
        self.conn.put_file(self.layout.upstream_file, previous, 0o644)
        self.reload()
        self.emit(Message("switched back to the previous release", level="warning", host=self.conn.host))


def _names_release(body: str, release: str) -> bool:
    """Every `release` field in the /version JSON is ours (frontend and the backend it
    reached): proof the request went through the new release end to end."""
    try:
        data = json.loads(body)
    except ValueError:
        return release in body
    found = list(_release_fields(data))
    return bool(found) and all(value == release for value in found)


def _release_fields(data) -> list:  # type: ignore[no-untyped-def]
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "release" and isinstance(value, str):
                yield value
            else:
                yield from _release_fields(value)
    elif isinstance(data, list):
        for item in data:
            yield from _release_fields(item)
