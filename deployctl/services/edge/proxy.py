"""deployctl's proxy on one host: an anchor container that owns the published port and the
network namespace, and nginx inside that namespace running the configuration deployctl
renders (plan/edge/proxy_config.py).

Why two containers: a host port can be published by one container only, so replacing a
proxy container that publishes it always leaves a gap. nginx containers that share the
anchor's namespace listen with `reuseport`, so a new one (a new image, say) starts beside
the old one on the same port, and the old one then quits gracefully; the anchor's
`tcp_migrate_req` hands connections still queued on the old listener to the new one.
A configuration change alone is a graceful reload (a HUP to nginx's master), after `nginx -t`.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from ...adapters.connector import check
from ...errors import DeployError
from ...events import Emit, Message, Timer
from ...plan.lifecycle import docker_commands as dc
from ...plan.lifecycle.container_states import crash, parse_states
from ...plan.edge import maintenance
from ...plan.lifecycle.names import Names, StateLayout
from ...plan.edge.nginx_errors import unresolved_upstreams
from ...plan.edge.proxy_containers import Anchor, ProxyContainers, parse_proxy_listing
from ...plan.edge.proxy_config import ANCHOR_MARKER, CONFIG_FILE, PID_FILE, RELEASE_HEADER, STAGED_FILE, live_release, standby_of
from ...plan.lifecycle.switch_plan import LOOPBACK, ProxyStart, clear_flags, proxy_move, proxy_swap, proxy_test_staged
from ...plan.edge import client_address
from ...plan.edge import tls_config as tc
from ...plan.edge.tls_config import NO_REDIRECT_HEADER, TLS_LISTEN_PORT
from ...secrets import redactor
# After a reload nginx's old workers still accept for a moment (~100 ms, longer on a loaded
# host) beside the new ones: one answer as a change says is no proof that every new request
# gets it; this long of such answers in a row is (the shared proxy's routes, maintenance).
RELOAD_SETTLE = 0.5
SERVED_WAIT = 15.0  # seconds for a reloaded nginx to answer as a change says
START_TIMEOUT = 15.0  # seconds for a new nginx to bind its port


@dataclass(frozen=True)
class Staged:
    """A configuration `HostProxy.stage` staged and tested in the running nginx `nginx`."""
    nginx: str
    config: str


class HostProxy:
    def __init__(self, conn, names: Names, layout: StateLayout, emit: Emit) -> None:
        self.conn, self.names, self.layout, self.emit = conn, names, layout, emit
        self._bypass: dict[str, str] | None = None  # see bypass()

    @property
    def config_file(self) -> str:
        return f"{self.layout.proxy_dir}/{CONFIG_FILE}"

    # -- looking -----------------------------------------------------------------------------

    def containers(self) -> ProxyContainers:
        """The anchor and the nginx containers, as one `docker ps` lists them."""
        return parse_proxy_listing(self.conn.run(dc.list_proxy(self.names)).stdout, self.names.proxy)

    def nginx_containers(self) -> dict[str, tuple[str, str]]:
        """name -> (status, image) of this environment's nginx containers."""
        return self.containers().nginx

    def running_nginx(self) -> str | None:
        return next((n for n, (s, _) in self.nginx_containers().items() if s == "running"), None)

    def port(self, listen_port: int) -> int | None:
        result = self.conn.run(dc.port_of(self.names.proxy, listen_port))
        for line in result.stdout.splitlines():
            port = line.rsplit(":", 1)[-1].strip()
            if port.isdigit():
                return int(port)
        return None

    def live_config(self) -> bytes | None:
        return self.conn.read_file(self.config_file)

    def live_release(self) -> str | None:
        """The release the configuration on disk routes to: its standby while the standby's
        flag exists (a warm rollback switched by the flag, its reload not done yet)."""
        config = self.live_config()
        standby = standby_of(config)
        if standby is not None and self.conn.read_file(self._flag_path(standby.flag)) is not None:
            return standby.release
        return live_release(config)

    def serving(self, port: int, path: str = "/") -> str | None:
        """The release whose upstream answers through the proxy now (its stamp), asked of the
        running nginx: after a failed put-back the file on disk and the loaded config differ."""
        try:
            response = self.conn.http_get("127.0.0.1", port, path, timeout=2.0, headers=self.bypass())
        except OSError:
            return None
        return response.headers.get(RELEASE_HEADER.lower()) or None

    def bypass(self) -> dict[str, str]:
        """The header that lets deployctl's own requests through maintenance mode (empty
        when it is off), from the configuration this proxy last wrote or, first, the live one."""
        if self._bypass is None:
            self._bypass = maintenance.verify_headers(self.live_config())
        # And answered by the release over HTTP where HTTPS is on, not redirected (a 301 is
        # nginx's own answer: no release stamp to prove anything by).
        return {**self._bypass, NO_REDIRECT_HEADER: "1"}

    # -- changing ----------------------------------------------------------------------------

    def route(self, start: ProxyStart, config: str, seen: ProxyContainers | None = None) -> int:
        """Makes the proxy serve `config` (starting it as `start` says where it does not run
        yet, or not this image); returns the published port.
        Where nginx runs, the file is staged beside the live one and `start.swap` tests it,
        renames it into place and reloads, in one command on the host: until then the live
        file is untouched, so a deployctl killed before it leaves nothing that a later load
        would take for the new release, and a file `nginx -t` refuses never becomes live.
        Where nginx is (re)started, the file is written first (nothing else reads it before).
        One `docker ps` tells the anchor, the nginx containers and the port
        (plan/edge/proxy_containers.py); the only other round trip of a plain switch is the swap.
        `seen`: that listing, when the caller took it already under the same lock (a warm
        rollback's, during its bring-up: its flag changes no container)."""
        previous = self.live_config()
        config = self._as_served(start, previous, config)
        self._bypass = maintenance.verify_headers(config)
        anchor_serves = self._anchor_serves()
        seen = self._published_as_planned(start, self.containers() if seen is None else seen)
        reload = seen.nginx_state(start.nginx_name) == "running" and not anchor_serves
        self.conn.put_file(self._staged_file if reload else self.config_file, config.encode(), 0o644)
        try:
            anchor_ran = self._ensure_anchor(start, seen.anchor)
            if reload:
                self._proxy_command(start.swap, "the new configuration")
            else:
                self._start_nginx(start, seen.nginx)
        except BaseException:
            self.put_back(previous)
            raise
        # A (re)started anchor may publish another ephemeral port than the listing said.
        actual = seen.anchor.published(start.listen_port) if anchor_ran and seen.anchor else None
        actual = actual or self.port(start.listen_port)
        if actual is None:
            raise DeployError(f"{self.conn.host}: the proxy {self.names.proxy} publishes no port")
        return actual

    def stage(self, start: ProxyStart, config: str, previous: bytes | None, seen: ProxyContainers) -> "Staged | None":
        """The first half of `route`'s swap, ahead of it: `config` staged beside the live file
        and tested (`nginx -t`) in the running nginx, nothing reloaded, so nothing it serves
        changes. For a switch whose configuration can be tested before it is due: a rollback by
        the standby flag tests the target's own file while its verify runs, and `swap_staged`
        is then the rename and the reload alone (a Swarm's the same way, with the same
        commands: services/swarm/swarm_site.SwarmSite.stage). `previous`: the live file, read
        under the same lock. None when the proxy needs more than a reload (its nginx not
        running this image, the anchor's own nginx serving, the anchor missing or publishing
        otherwise than planned): `route` then does it all once due. A file nginx refuses (or
        a failed write) raises, with the staged file removed: it is never swapped in."""
        anchor = seen.anchor
        if (anchor is None or not anchor.is_anchor or anchor.state != "running" or self._wrong_publish(start, anchor)
                or seen.nginx_state(start.nginx_name) != "running" or self._anchor_serves()):
            return None
        config = self._as_served(start, previous, config)
        try:
            self.conn.put_file(self._staged_file, config.encode(), 0o644)
            self._proxy_command(proxy_test_staged(start.nginx_name), "the new configuration")
        except BaseException:
            try:
                self.drop_staged()
            except Exception:  # noqa: BLE001 - a lost connection leaves it (harmless: never renamed in)
                pass
            raise
        return Staged(start.nginx_name, config)

    def swap_staged(self, staged: "Staged") -> None:
        """What `stage` staged and tested made live: renamed over the live file and nginx's
        master HUPed, one command on the host (no `docker exec`)."""
        self._bypass = maintenance.verify_headers(staged.config)
        result = self.conn.run(list(proxy_move(staged.nginx, self.layout.proxy_dir)))
        if not result.ok:
            raise DeployError(f"{self.conn.host}: the staged configuration was not made live: "
                              f"{redactor(result.stderr.strip() or result.stdout.strip())}")

    def drop_staged(self) -> None:
        """The staged file goes (a switch that failed before its swap): best effort."""
        self.conn.run(["rm", "-f", self._staged_file])

    def _as_served(self, start: ProxyStart, previous: bytes | None, config: str) -> str:
        """`config` as the proxy is to serve it: maintenance mode stays as it is on the host
        (a deploy or rollback never ends it), and behind a shared proxy the client's address
        comes from it."""
        config = maintenance.carry(previous, config)
        return self._client_from_shared_proxy(config) if start.shared else config

    def _anchor_serves(self) -> bool:
        """The anchor serving with its own nginx means no nginx container serves in its
        namespace, even one listed as running (left in the namespace of an anchor that
        restarted): a reload would reach nobody, so a new nginx starts instead."""
        return self.conn.read_file(f"{self.layout.proxy_dir}/{ANCHOR_MARKER}") is not None

    def _published_as_planned(self, start: ProxyStart, seen: ProxyContainers) -> ProxyContainers:
        """HTTPS turned on where the anchor publishes HTTP only, or a port published on other
        addresses than the plan says (behind a shared proxy: the host's loopback only, and
        every address otherwise): a published port cannot be added to or changed on a
        running container, so the proxy is started again, once (docs/tls.md, docs/proxy.md)."""
        anchor = seen.anchor
        if anchor is None or not anchor.is_anchor or anchor.state != "running":
            return seen
        wrong = self._wrong_publish(start, anchor)
        if not wrong:
            return seen
        said = " and ".join(f"{what} on port {port} " + ("on the host's loopback only" if loopback else "on every address")
                            for what, port, loopback in wrong)
        self.emit(Message(f"publishing {said}: the proxy {self.names.proxy} starts again (one-time: about a second "
                          "without answers)", level="warning", host=self.conn.host))
        check(self.conn, dc.remove([*seen.nginx, self.names.proxy]))
        return ProxyContainers(None, {})

    @staticmethod
    def _wrong_publish(start: ProxyStart, anchor: Anchor) -> list[tuple[str, int | None, bool]]:
        """(what, port, loopback) of each listener the running anchor publishes otherwise than planned."""
        wrong = []
        http = anchor.addresses(start.listen_port)
        if http and (http == {LOOPBACK}) != start.shared:
            wrong.append(("HTTP", anchor.published(start.listen_port), start.shared))
        if start.tls_port is not None:
            https = anchor.addresses(TLS_LISTEN_PORT)
            if not https or (https == {LOOPBACK}) != start.tls_loopback:
                wrong.append(("HTTPS", start.tls_port, start.tls_loopback))
        return wrong

    def _client_from_shared_proxy(self, config: str) -> str:
        """Behind a host's shared proxy: over HTTP the client's address is the one the shared
        proxy added to X-Forwarded-For, believed from the app network's gateway only
        (plan/edge/client_address.py). Not while the live HTTPS listener is a plain one (an
        earlier deployctl's): its connections come from the gateway too, and a client could
        then forge the header over HTTPS; the next switch after its certificate is installed
        again with the PROXY protocol adds it."""
        if not https_takes_proxy_protocol(self.conn, self.layout.proxy_dir):
            self.emit(Message("the HTTPS listener takes no PROXY protocol yet: over HTTP the app sees the shared "
                              "proxy's address until the next deploy", level="warning", host=self.conn.host))
            return client_address.without(config)
        gateways, said = network_gateways(self.conn, self.names.network)
        if not gateways:
            raise DeployError(f"{self.conn.host}: the network {self.names.network} names no gateway, which the proxy "
                              f"behind the shared proxy trusts with the client's address: {said}")
        return client_address.with_client_from(config, gateways)

    @property
    def _staged_file(self) -> str:
        return f"{self.layout.proxy_dir}/{STAGED_FILE}"

    def _proxy_command(self, argv: Sequence[str], what: str) -> None:
        """A command that tests `what` with `nginx -t` (the swap also renames and reloads it:
        plan/lifecycle/docker_commands.nginx_swap_and_reload; the staging only tests): a refusal raises with what nginx said, and why an upstream it names is down."""
        result = self.conn.run(list(argv))
        if not result.ok:
            said = result.stderr.strip() or result.stdout.strip()
            raise DeployError(f"{self.conn.host}: nginx -t refused {what} (nothing reloaded): "
                              f"{redactor(said)}{self._upstreams_down(said)}")

    def _upstreams_down(self, said: str) -> str:
        """Why nginx could not resolve an upstream, when a container it names crashed or is
        gone (a release that exits and is restarted between two loads): its exit code and
        restart policy, as the health wait says them. Empty when nothing is known."""
        names = unresolved_upstreams(said)
        if not names:
            return ""
        states = parse_states(self.conn.run(dc.inspect_state(names)).stdout)
        whys = [f"{name}: {crash(states.get(name), None) or 'it runs (its address may have changed since)'}"
                for name in names]
        return "; " + "; ".join(whys)

    def raise_flag(self, flag: str) -> None:
        """The switch to the live configuration's standby (plan/edge/proxy_config.Standby): the
        next request nginx takes goes there. Written by rename, so it appears whole."""
        self.conn.put_file(self._flag_path(flag), b"", 0o644)

    def lower_flag(self, flag: str) -> None:
        check(self.conn, ["rm", "-f", self._flag_path(flag)])

    def clear_flags(self, keep: str) -> None:
        """Flags of earlier configurations: harmless (each names one render) but clutter.
        `keep`: the flag the workers of the configuration just replaced may still read."""
        self.conn.run(list(clear_flags(self.layout.proxy_dir, keep)))

    def _flag_path(self, flag: str) -> str:
        return f"{self.layout.proxy_dir}/{flag}"

    def put_back(self, previous: bytes | None) -> None:
        """The configuration before a failed route (or a canary, or the guard's watch): made
        live the same way, staged and swapped in where nginx runs, so a put-back that nginx
        refuses (the previous release's upstream gone meanwhile, tests/faults) leaves the file
        naming what nginx still serves."""
        self._bypass = maintenance.verify_headers(previous)
        if previous is None or self.live_config() == previous:
            # Unchanged on disk: the swap never renamed the new file in, so nginx never
            # loaded it. Writing it again would only fail again when the disk is full, and
            # report an intact site as uncertain (tests/faults, disk full).
            return
        self.replace(previous, "the previous configuration")

    def replace(self, config: bytes, what: str) -> None:
        """`config` made live: staged, tested, renamed and reloaded in one command where
        nginx runs; written in place where none does (the next nginx started loads it)."""
        running = self.running_nginx()
        if running is None:
            self.conn.put_file(self.config_file, config, 0o644)
            return
        self.conn.put_file(self._staged_file, config, 0o644)
        self._proxy_command(proxy_swap(running, self.layout.proxy_dir), what)

    def _ensure_anchor(self, start: ProxyStart, anchor: Anchor | None) -> bool:
        """The anchor runs afterwards; True when it ran already (its listed port holds)."""
        if anchor is not None and anchor.is_anchor and anchor.state == "running":
            return True
        if anchor is not None and not anchor.is_anchor:
            # A proxy of the earlier layout (nginx itself publishing the port): replaced once.
            self.emit(Message(f"replacing the proxy {self.names.proxy} with deployctl's proxy (one-time: "
                              "the port closes for about a second)", level="warning", host=self.conn.host))
            check(self.conn, dc.remove([self.names.proxy]))
        if anchor is None or not anchor.is_anchor:
            timer = Timer(self.emit, "proxy", host=self.conn.host, detail="publishing its port")
            check(self.conn, list(start.anchor))
            timer.done()
        else:
            check(self.conn, dc.start([self.names.proxy]))
        return False

    def _start_nginx(self, start: ProxyStart, containers: dict[str, tuple[str, str]]) -> None:
        """A new nginx beside the running one(s); they quit gracefully once it listens."""
        name = start.nginx_name
        timer = Timer(self.emit, "proxy", host=self.conn.host, detail=f"starting {name}")
        if name in containers:
            self.conn.run(dc.remove([name]))
        check(self.conn, list(start.nginx))
        wait_nginx_started(self.conn, name, PID_FILE, "the proxy's nginx")
        old = [n for n, (s, _) in containers.items() if n != name]
        # The anchor's own nginx, if it took over (a host reboot, say), goes now rather
        # than when the anchor's next look finds this one listening: it may serve an
        # older configuration meanwhile.
        self.conn.run(dc.quit_anchor_nginx(self.names.proxy))
        self.retire_nginx(old)
        timer.done("listening" + (f"; {', '.join(old)} quit gracefully" if old else ""))

    def retire_nginx(self, containers: list[str]) -> None:
        for old in containers:
            # Out of the restart policy first: a graceful quit is an exit it would undo.
            self.conn.run(dc.no_restart(old))
            self.conn.run(dc.nginx_quit(old))
        for old in containers:
            self.conn.run(dc.wait(old), timeout=120)
            self.conn.run(dc.remove([old]))


def network_gateways(conn, network: str) -> tuple[tuple[str, ...], str]:  # type: ignore[no-untyped-def]
    """(the gateways of the app's network, where Docker forwards a connection to a port the
    anchor publishes on the host's 127.0.0.1 from; what the inspect said when there are none)."""
    result = conn.run(dc.network_gateways(network))
    found = tc.gateways(result.stdout) if result.ok else ()
    return found, (result.stderr or result.stdout).strip()[-200:] or "no address range"


def https_takes_proxy_protocol(conn, proxy_dir: str) -> bool:  # type: ignore[no-untyped-def]
    """The app's own proxy's live HTTPS listener takes the PROXY protocol (its certificate
    was installed so behind a shared proxy: services/edge/tls.py), or there is none yet (no
    listener to mislead; the one a certificate brings behind a shared proxy takes it)."""
    live = conn.run(tc.read_live(proxy_dir))
    version = live.stdout.strip() if live.ok else ""
    if not version.startswith(tc.VERSION_PREFIX) or "/" in version:
        return True
    return tc.takes_proxy_protocol(conn.read_file(posixpath.join(tc.version_dir(proxy_dir, version), tc.SERVER_CONF)))


def wait_nginx_started(conn, name: str, pid_file: str, what: str) -> None:  # type: ignore[no-untyped-def]
    """Until the nginx container `name` wrote its pid (it listens); one that exits, or is
    not up within START_TIMEOUT, is removed and said with its last lines of output.
    (The shared proxy's nginx too: services/edge/shared_proxy.py.)"""
    deadline = time.monotonic() + START_TIMEOUT
    while not conn.run(dc.exec_command(name, ["test", "-s", pid_file])).ok:
        status = conn.run(dc.status_and_role(name)).stdout.strip().partition("|")[0]
        if status not in ("running", "created", "restarting") or time.monotonic() > deadline:
            lines = conn.run(dc.logs(name, 10))
            why = redactor((lines.stdout + lines.stderr).strip()[-500:])
            conn.run(dc.remove([name]))
            raise DeployError(f"{conn.host}: {what} did not start: {why or 'no output'}")
        time.sleep(0.1)


def answers_settled(asked: Callable[[], bool], *, poll: float) -> bool:
    """Whether `asked()` (one request through a reloaded nginx: True when its answer is as
    the change says; an OSError counts as not) held for RELOAD_SETTLE in a row within
    SERVED_WAIT. A reload is asynchronous and old workers accept for a moment beside the new
    ones, so one answer proves nothing (the shared proxy's routes, maintenance on and off)."""
    deadline = time.monotonic() + SERVED_WAIT
    since = None
    while time.monotonic() < deadline:
        try:
            ok = asked()
        except OSError:
            ok = False
        if not ok:
            since = None
        elif since is None:
            since = time.monotonic()
        if since is not None and time.monotonic() - since >= RELOAD_SETTLE:
            return True
        time.sleep(poll)
    return False
