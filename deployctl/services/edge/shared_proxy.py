"""The host's shared proxy (plan/edge/shared_proxy.py): an app environment's route put in after
its deploy, taken out by `deployctl remove`. Each change is made under the shared proxy's
own lock (a mkdir in its directory, as the deploy lock), staged beside the live route file,
tested with the whole configuration (`nginx -t` on every other app's route and this one)
and only then renamed in and reloaded: a route nginx refuses never reaches the running
proxy, and the other apps' traffic never changes. A deploy whose route is unchanged (every
deploy after the first) reads two files and changes nothing."""

from __future__ import annotations

import posixpath
import time

from ...adapters.connector import check
from ...config import LoadedConfig
from ...errors import ConfigError, DeployError, UsageError
from ...events import Emit, Timer
from ...plan.lifecycle import docker_commands as dc
from ...plan.edge import shared_proxy as plan
from ...plan.lifecycle.target_limits import refuse as refuse_on_target
from ...secrets import redactor
from ..hosts import names_for
from .proxy import wait_nginx_started

LOCK_WAIT = 60.0  # seconds for another app's route change to finish


def refuse(loaded: LoadedConfig, env_name: str) -> None:
    """What the shared proxy does not do (yet), refused by name before anything changes."""
    environment = loaded.environment(env_name)
    if environment.shared_proxy is None:
        return
    refuse_on_target(environment.target, env_name, "shared_proxy", f"shared_proxy = \"{environment.shared_proxy}\"")
    if loaded.config.tls_for(env_name) != "off":
        raise UsageError(f"environments.{env_name}.shared_proxy with HTTPS (tls = "
                         f"\"{loaded.config.tls_for(env_name)}\") is not supported yet: the shared proxy routes HTTP only",
                         hint="docs/proxy.md, \"Several apps on one host\"")


class SharedProxy:
    def __init__(self, conn, loaded: LoadedConfig, env_name: str, emit: Emit,  # type: ignore[no-untyped-def]
                 image: str | None = None) -> None:
        environment = loaded.environment(env_name)
        assert environment.shared_proxy is not None
        self.conn, self.emit, self.loaded = conn, emit, loaded
        self.image = image  # what a shared proxy started now runs: the deploying app's proxy image
        self.name, self.port = environment.shared_proxy, environment.shared_proxy_port
        self.names = names_for(loaded, env_name)
        self.dir = plan.shared_dir(environment.state_dir, self.name)
        self.routes_dir = posixpath.join(self.dir, plan.ROUTES)

    # -- looking ------------------------------------------------------------------------------

    def route_files(self) -> dict[str, bytes]:
        """Every route file (name -> content) on the host now."""
        result = self.conn.run(plan.list_routes(self.dir))
        files = {}
        for path in result.stdout.split() if result.ok else []:
            text = self.conn.read_file(path)
            if text is not None:
                files[posixpath.basename(path)] = text
        return files

    def own(self, files: dict[str, bytes]) -> list[str]:
        import fnmatch

        return sorted(n for n in files if fnmatch.fnmatch(n, plan.route_glob(self.names.app, self.names.env)))

    def check_claims(self) -> None:
        """Refused before a deploy changes anything: a host name (and prefix) another app
        environment routes here, or another port for the same shared proxy."""
        route = self._route(port=0)
        files = self.route_files()
        others = {n: t.decode(errors="replace") for n, t in files.items() if n not in self.own(files)}
        found = plan.conflicts(route, others)
        if found:
            raise ConfigError([f"proxy.hosts: {c} on {self.conn.host} (shared proxy {self.name}); one app per host "
                               "name and path prefix" for c in found])
        own = self.conn.run(dc.port_of(self.names.proxy, self.loaded.config.proxy.port))
        if own.ok and any(line.rsplit(":", 1)[-1].strip() == str(self.port) for line in own.stdout.splitlines()):
            # Its anchor holds the port the shared proxy needs, and a deploy does not move a
            # running anchor: the shared proxy could not start. Said now, before any change.
            raise UsageError(f"{self.conn.host}: {self.names.app} {self.names.env}'s own proxy ({self.names.proxy}) "
                             f"publishes port {self.port}, the shared proxy's: moving a running app to the shared "
                             "proxy is not supported yet",
                             hint="docs/proxy.md, \"Several apps on one host\": `deployctl remove --env "
                                  f"{self.names.env} --yes`, then deploy with the new proxy_port and shared_proxy")
        live = plan.port_of(self.conn.read_file(posixpath.join(self.dir, plan.CONFIG_FILE)))
        if live is not None and live != self.port:
            raise ConfigError([f"environments.{self.names.env}.shared_proxy_port: {self.port}, but the shared proxy "
                               f"{self.name} on {self.conn.host} publishes {live} for the other apps"])

    def _route(self, port: int):  # type: ignore[no-untyped-def]
        proxy = self.loaded.config.proxy
        return plan.Route(self.names.app, self.names.env, tuple(proxy.hosts), proxy.path_prefix, port)

    def _app_port(self) -> int:
        out = check(self.conn, dc.port_of(self.names.proxy, self.loaded.config.proxy.port))
        for line in out.splitlines():
            port = line.rsplit(":", 1)[-1].strip()
            if port.isdigit():
                return int(port)
        raise DeployError(f"{self.conn.host}: the proxy {self.names.proxy} publishes no port to route to")

    def _state(self) -> str:
        result = self.conn.run(dc.status_and_role(plan.container_name(self.name)))
        return result.stdout.strip().partition("|")[0] if result.ok else ""

    # -- changing -----------------------------------------------------------------------------

    def put_route(self) -> str:
        """This app environment's route in the shared proxy (started where it does not run).
        Returns what was done, for the event line."""
        route = self._route(self._app_port())
        text = plan.render_route(route).encode()
        with self._locked():
            self.check_claims()
            files = self.route_files()
            mine = self.own(files)
            running = self._state() == "running"
            if running and mine == [route.file] and files[route.file] == text:
                return "route unchanged"
            main = plan.render_main(self.port).encode()
            if not running:
                self.conn.mkdir(self.routes_dir, mode=0o755)
                self.conn.put_file(posixpath.join(self.dir, plan.CONFIG_FILE), main, 0o644)
                self.conn.put_file(posixpath.join(self.routes_dir, route.file), text, 0o644)
                self._remove_files([n for n in mine if n != route.file])
                self._start(route)
                self.wait_served(route, routed=True)
                return f"started on port {self.port}, routing {', '.join(route.hosts)}"
            staged = f"{route.file}.next"
            self.conn.put_file(posixpath.join(self.routes_dir, staged), text, 0o644)
            keep = [n for n in files if n not in mine]
            self.conn.put_file(posixpath.join(self.dir, plan.TEST_FILE),
                               plan.render_main(self.port, sorted(keep + [staged])).encode(), 0o644)
            tested = self.conn.run(plan.test_config(self.name))
            if not tested.ok:
                self.conn.run(["rm", "-f", posixpath.join(self.routes_dir, staged)])
                raise DeployError(f"{self.conn.host}: nginx -t refused the shared proxy {self.name} with the route of "
                                  f"{self.names.app} {self.names.env} (nothing reloaded; every other app's traffic is "
                                  f"as it was): {redactor(tested.stderr.strip() or tested.stdout.strip())}")
            check(self.conn, ["mv", "-f", posixpath.join(self.routes_dir, staged),
                              posixpath.join(self.routes_dir, route.file)])
            self._remove_files([n for n in mine if n != route.file])
            check(self.conn, plan.reload(self.name))
            self.wait_served(route, routed=True)
            return f"route {', '.join(route.hosts)}{route.prefix or ''} -> 127.0.0.1:{route.port}, reloaded"

    def wait_served(self, route, *, routed: bool) -> None:  # type: ignore[no-untyped-def]
        """Until the shared proxy answers a request for the route as the change says (a
        reload is asynchronous: nginx's master starts the new workers after the command
        returned): routed, not its own 404; or, after a removal, its own 404 again."""
        wait_served(self.conn, self.name, self.port, route, routed=routed)

    def _remove_files(self, names: list[str]) -> None:
        if names:
            check(self.conn, ["rm", "-f", *[posixpath.join(self.routes_dir, n) for n in names]])

    def _start(self, route) -> None:  # type: ignore[no-untyped-def]
        name = plan.container_name(self.name)
        self.conn.run(dc.remove([name]))  # a stopped one of an earlier run
        if self.image is None:
            raise DeployError(f"{self.conn.host}: the shared proxy {self.name} does not run; a deploy starts it")
        check(self.conn, plan.run_shared_proxy(self.name, self.image, self.dir))
        wait_nginx_started(self.conn, name, plan.PID_FILE, f"the shared proxy {self.name} on port {self.port}")

    def _locked(self):  # type: ignore[no-untyped-def]
        import contextlib

        lock = posixpath.join(self.dir, "lock")

        @contextlib.contextmanager
        def held():  # type: ignore[no-untyped-def]
            self.conn.mkdir(self.dir, mode=0o755)
            deadline = time.monotonic() + LOCK_WAIT
            while not self.conn.mkdir(lock, mode=0o700, exclusive=True):
                if time.monotonic() > deadline:
                    raise DeployError(f"{self.conn.host}: the shared proxy {self.name} is locked ({lock}) by another "
                                      f"app's route change for over {LOCK_WAIT:g}s",
                                      hint=f"if no deployctl runs on this host, remove {lock}")
                time.sleep(0.2)
            try:
                yield
            finally:
                self.conn.remove_tree(lock)

        return held()


def put_routes(loaded: LoadedConfig, env_name: str, conns: list, emit: Emit, image: str) -> None:  # type: ignore[type-arg]
    """After a deploy: each host's shared proxy routes to the app (unchanged: nothing done)."""
    from ..lifecycle.host_calls import on_every_host

    def one(conn) -> None:  # type: ignore[no-untyped-def]
        timer = Timer(emit, "shared proxy", host=conn.host, detail=loaded.environment(env_name).shared_proxy or "")
        try:
            timer.done(SharedProxy(conn, loaded, env_name, emit, image).put_route())
        except Exception as exc:
            timer.failed(str(exc))
            raise
    try:
        on_every_host(conns, one, loaded.environment(env_name).rollout.parallel)
    except DeployError as exc:
        raise DeployError(exc.message, hint="the release is live on the app's own proxy port; the shared proxy "
                                            "still routes as before. Deploy again once fixed.") from None


SERVED_WAIT = 15.0
# After a reload nginx's old workers still accept for a moment (up to ~100 ms) beside the
# new ones: one answer as the change says is no proof, this long of them in a row is.
SERVED_SETTLE = 0.3


def wait_served(conn, name: str, port: int, route, *, routed: bool) -> None:  # type: ignore[no-untyped-def]
    host, path = plan.probe(route)
    deadline = time.monotonic() + SERVED_WAIT
    since = None
    while True:
        try:
            answer = conn.http_get("127.0.0.1", port, path, timeout=2.0, headers={"Host": host})
            if (plan.NO_ROUTE_HEADER.lower() not in answer.headers) == routed:
                since = time.monotonic() if since is None else since
                if time.monotonic() - since >= SERVED_SETTLE:
                    return
            else:
                since = None
        except OSError:
            since = None
        if time.monotonic() > deadline:
            raise DeployError(f"{conn.host}: the shared proxy {name} reloaded but does not answer for {host}{path} "
                              f"{'from the app' if routed else 'with its own 404'} within {SERVED_WAIT:g}s")
        time.sleep(0.1)
