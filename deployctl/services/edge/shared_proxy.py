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
from ...errors import ConfigError, DeployError, UsageError
from ...events import Emit, Timer
from ...plan.lifecycle import docker_commands as dc
from ...plan.edge import shared_proxy as plan
from ...plan.edge.shared_move import premove_name
from ...plan.lifecycle.target_limits import refuse as refuse_on_target
from ...secrets import redactor
from ..env import Env
from ...plan.edge.tls_config import TLS_LISTEN_PORT
from .proxy import SERVED_WAIT, answers_settled, https_takes_proxy_protocol, wait_nginx_started

LOCK_WAIT = 60.0  # seconds for another app's route change to finish


def refuse(env: Env) -> None:
    """What the shared proxy does not do (yet), refused by name before anything changes."""
    environment = env.settings
    if environment.shared_proxy is None:
        return
    refuse_on_target(environment.target, env.name, "shared_proxy", f"shared_proxy = \"{environment.shared_proxy}\"")
    mode, prefix = env.config.tls_for(env.name), env.config.proxy.path_prefix
    if mode != "off" and prefix not in (None, "/"):
        # HTTPS passes through by SNI, which carries a host name and no path.
        raise UsageError(f"proxy.path_prefix = \"{prefix}\" with HTTPS (tls = \"{mode}\") through "
                         f"environments.{env.name}.shared_proxy: HTTPS is passed through to the app by host name "
                         "alone (the shared proxy decrypts nothing, so it never sees a path)",
                         hint="give the app a host name of its own and remove path_prefix, or keep it on HTTP "
                              "(docs/proxy.md, \"HTTPS through the shared proxy\")")


class SharedProxy:
    def __init__(self, conn, env: Env, emit: Emit,  # type: ignore[no-untyped-def]
                 image: str | None = None) -> None:
        environment = env.settings
        assert environment.shared_proxy is not None
        self.conn, self.emit, self.env = conn, emit, env
        self.image = image  # what a shared proxy started now runs: the deploying app's proxy image
        self.name, self.port = environment.shared_proxy, environment.shared_proxy_port
        # HTTPS passed through by SNI to the app's own proxy (None: this app routes HTTP only).
        self.tls_port = environment.shared_proxy_tls_port if env.config.tls_for(env.name) != "off" else None
        self.names = env.names
        self.proxy_dir = env.layout.proxy_dir  # the app's own proxy's
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

    def check_claims(self) -> bool:
        """Refused before a deploy changes anything: a host name (and prefix) another app
        environment routes here, or another port for the same shared proxy. True when the
        app's own proxy publishes the shared proxy's port: the deploy moves it to the shared
        proxy (services/edge/shared_move.py)."""
        route = self._route(port=0, tls_port=0 if self.tls_port is not None else None)
        files = self.route_files()
        others = {n: t.decode(errors="replace") for n, t in files.items() if n not in self.own(files)}
        found = plan.conflicts(route, others)
        if found:
            raise ConfigError([f"proxy.hosts: {c} on {self.conn.host} (shared proxy {self.name}); one app per host "
                               "name and path prefix" for c in found])
        # Its anchor holds the port the shared proxy needs (under its own name, or set aside by
        # a move a stopped deployctl left before its cut): this deploy moves it.
        moving = any(self._publishes(anchor) for anchor in (self.names.proxy, premove_name(self.names.proxy,
                                                                                           self.names.proxy)))
        main = self.conn.read_file(posixpath.join(self.dir, plan.CONFIG_FILE))
        for key, setting, mine in (("port", "shared_proxy_port", self.port),
                                   ("tls_port", "shared_proxy_tls_port", self.tls_port)):
            live = plan.port_of(main, key)
            if mine is not None and live is not None and live != mine:
                raise ConfigError([f"environments.{self.names.env}.{setting}: {mine}, but the shared proxy "
                                   f"{self.name} on {self.conn.host} publishes {live} for the other apps"])
        return moving

    def _publishes(self, anchor: str) -> bool:
        """The anchor publishes a port the shared proxy needs (HTTP, or HTTPS for an HTTPS app)."""
        for inside, port in ((self.env.config.proxy.port, self.port), (TLS_LISTEN_PORT, self.tls_port)):
            if port is None:
                continue
            own = self.conn.run(dc.port_of(anchor, inside))
            if own.ok and any(line.rsplit(":", 1)[-1].strip() == str(port) for line in own.stdout.splitlines()):
                return True
        return False

    def _route(self, port: int, tls_port: int | None = None, proxy_protocol: bool = False):  # type: ignore[no-untyped-def]
        proxy = self.env.config.proxy
        return plan.Route(self.names.app, self.names.env, tuple(proxy.hosts), proxy.path_prefix, port, tls_port,
                          proxy_protocol)

    def _listener_takes_proxy_protocol(self) -> bool:
        """The route follows what is live, so the shared proxy never sends the header to a
        listener that would take it for a broken TLS hello, nor plain TLS to one that waits
        for the header (services/edge/tls.py ensure_locked puts the route again after a
        certificate install)."""
        return https_takes_proxy_protocol(self.conn, self.proxy_dir)

    def _app_port(self, listen_port: int, what: str) -> int:
        out = check(self.conn, dc.port_of(self.names.proxy, listen_port))
        for line in out.splitlines():
            port = line.rsplit(":", 1)[-1].strip()
            if port.isdigit():
                return int(port)
        raise DeployError(f"{self.conn.host}: the proxy {self.names.proxy} publishes no {what} port to route to")

    def _state(self) -> str:
        result = self.conn.run(dc.status_and_role(plan.container_name(self.name)))
        return result.stdout.strip().partition("|")[0] if result.ok else ""

    # -- changing -----------------------------------------------------------------------------

    def put_route(self) -> str:
        """This app environment's route in the shared proxy (started where it does not run).
        Returns what was done, for the event line."""
        tls_port = None if self.tls_port is None else self._app_port(TLS_LISTEN_PORT, "HTTPS")
        route = self._route(self._app_port(self.env.config.proxy.port, "HTTP"), tls_port,
                            tls_port is not None and self._listener_takes_proxy_protocol())
        texts = {name: text.encode() for name, text in route.files().items()}
        with self._locked():
            self.check_claims()
            files = self.route_files()
            mine = self.own(files)
            keep = sorted(n for n in files if n not in mine)
            main_path = posixpath.join(self.dir, plan.CONFIG_FILE)
            live_main = self.conn.read_file(main_path)
            # The stream server once any app routed here has HTTPS, on the port the running
            # one has (check_claims refused another for an HTTPS app).
            passes_tls = route.tls_port is not None or any(n.endswith(plan.SNI_KINDS) for n in keep)
            tls_port = (plan.port_of(live_main, "tls_port") or self.tls_port or
                        self.env.settings.shared_proxy_tls_port) if passes_tls else None
            main = plan.render_main(self.port, tls_port=tls_port).encode()
            running = self._state() == "running"
            if (running and mine == sorted(texts) and all(files[n] == t for n, t in texts.items())
                    and live_main == main):
                return "route unchanged"
            if not running:
                self.conn.mkdir(self.routes_dir, mode=0o755)
                self.conn.put_file(main_path, main, 0o644)
                for name, text in texts.items():
                    self.conn.put_file(posixpath.join(self.routes_dir, name), text, 0o644)
                self._remove_files([n for n in mine if n not in texts])
                self._start(route)
                self.wait_served(route, routed=True)
                return f"started on port {self.port}{self._tls_said(tls_port)}, routing {', '.join(route.hosts)}"
            staged = {name: f"{name}.next" for name in texts}
            for name, text in texts.items():
                self.conn.put_file(posixpath.join(self.routes_dir, staged[name]), text, 0o644)
            self.conn.put_file(posixpath.join(self.dir, plan.TEST_FILE),
                               plan.render_main(self.port, sorted(keep + list(staged.values())), tls_port).encode(),
                               0o644)
            tested = self.conn.run(plan.test_config(self.name))
            if not tested.ok:
                self.conn.run(["rm", "-f", *[posixpath.join(self.routes_dir, n) for n in staged.values()]])
                said = redactor(tested.stderr.strip() or tested.stdout.strip())
                raise DeployError(f"{self.conn.host}: nginx -t refused the shared proxy {self.name} with the route of "
                                  f"{self.names.app} {self.names.env} (nothing reloaded; every other app's traffic is "
                                  f"as it was): {said}", hint=self._stream_hint(said))
            for name, next_name in staged.items():
                check(self.conn, ["mv", "-f", posixpath.join(self.routes_dir, next_name),
                                  posixpath.join(self.routes_dir, name)])
            self._remove_files([n for n in mine if n not in texts])
            if live_main != main:  # the stream server added (the first HTTPS app), or a newer template
                self.conn.put_file(main_path, main, 0o644)
            check(self.conn, plan.reload(self.name))
            self.wait_served(route, routed=True)
            return (f"route {', '.join(route.hosts)}{route.prefix or ''} -> 127.0.0.1:{route.port}"
                    f"{'' if route.tls_port is None else f' (HTTPS by SNI -> 127.0.0.1:{route.tls_port}{self._pp_said(route)})'}"
                    ", reloaded")

    def _pp_said(self, route) -> str:  # type: ignore[no-untyped-def]
        return ", with the PROXY protocol" if route.proxy_protocol else ""

    def _tls_said(self, tls_port: int | None) -> str:
        return "" if tls_port is None else f" (HTTPS passed through by SNI on {tls_port})"

    def _stream_hint(self, said: str) -> str | None:
        if not plan.stream_missing(said):
            return None
        return (f"the shared proxy's nginx ({self.name}) has no stream module with ssl_preread, which passing HTTPS "
                "through needs: the official nginx images have both built in; an image on Debian's nginx needs the "
                "package libnginx-mod-stream (docs/proxy.md, \"HTTPS through the shared proxy\")")

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
        try:
            wait_nginx_started(self.conn, name, plan.PID_FILE, f"the shared proxy {self.name} on port {self.port}")
        except DeployError as exc:
            raise DeployError(exc.message, hint=self._stream_hint(exc.message) or exc.hint) from None

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


def put_routes(env: Env, conns: list, emit: Emit, image: str | None) -> None:  # type: ignore[type-arg]
    """After a deploy: each host's shared proxy routes to the app (unchanged: nothing done)."""
    from ..lifecycle.host_calls import on_every_host

    def one(conn) -> None:  # type: ignore[no-untyped-def]
        timer = Timer(emit, "shared proxy", host=conn.host, detail=env.settings.shared_proxy or "")
        try:
            timer.done(SharedProxy(conn, env, emit, image).put_route())
        except Exception as exc:
            timer.failed(str(exc))
            raise
    try:
        on_every_host(conns, one, env.settings.rollout.parallel)
    except DeployError as exc:
        said = "the release is live on the app's own proxy port; the shared proxy still routes as before. " \
               "Deploy again once fixed."
        raise DeployError(exc.message, hint=f"{exc.hint}. Meanwhile {said[0].lower()}{said[1:]}" if exc.hint
                          else said) from None


def wait_served(conn, name: str, port: int, route, *, routed: bool) -> None:  # type: ignore[no-untyped-def]
    host, path = plan.probe(route)

    def asked() -> bool:
        answer = conn.http_get("127.0.0.1", port, path, timeout=2.0, headers={"Host": host})
        return (plan.NO_ROUTE_HEADER.lower() not in answer.headers) == routed

    if not answers_settled(asked, poll=0.1):
        raise DeployError(f"{conn.host}: the shared proxy {name} reloaded but does not answer for {host}{path} "
                          f"{'from the app' if routed else 'with its own 404'} within {SERVED_WAIT:g}s")
