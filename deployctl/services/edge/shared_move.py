"""One host's move of a running app from its own proxy on the shared port to the host's shared
proxy, inside the deploy's switch (plan/edge/shared_move.py says the steps and why).

services/lifecycle/switch.HostSwitch calls it: `set_aside` before the route (the usual switch
then starts the app's own proxy anew on its new port and verifies the new release there),
`run` after that verify (the shared proxy prepared, the cut, the verify through the shared
proxy), and on any failure `back`, before the switch's own switch back: up to the cut the old
proxy never stopped serving and only the new pieces go; after it, the old proxy is started
again and must answer from the previous release (else the host is uncertain, exit 7).
"""

from __future__ import annotations

import contextlib
import posixpath
import time
from typing import Callable

from ...adapters.connector import check
from ...errors import DeployError
from ...events import Emit, Message, Timer
from ...plan.edge import shared_move as plan
from ...plan.edge import shared_proxy as sp
from ...plan.edge import tls_config as tc
from ...plan.edge.proxy_config import RELEASE_HEADER, live_release
from ...plan.edge.tls_config import CERTIFICATE_HEADER, TLS_LISTEN_PORT
from ...plan.lifecycle import docker_commands as dc
from ...plan.lifecycle.names import Names, StateLayout
from ...secrets import redactor
from ..env import Env
from .proxy import START_TIMEOUT, HostProxy
from .tls import HostTls
from .shared_proxy import SharedProxy

POLL = 0.02  # seconds between looks for the shared proxy's first answer: the gap's resolution


class SharedMove:
    def __init__(self, conn, env: Env, names: Names, layout: StateLayout,  # type: ignore[no-untyped-def]
                 emit: Emit, image: str) -> None:
        self.conn, self.names, self.emit = conn, names, emit
        self.shared = SharedProxy(conn, env, emit, image)
        self.own = HostProxy(conn, names, layout, emit)
        self.env = env
        # An HTTPS app: its certificate goes with it, installed again as the version whose
        # listener takes the shared proxy's PROXY protocol (services/edge/tls.py).
        self.tls = HostTls(conn, names, layout, emit, self.own, proxy_protocol=True) \
            if self.shared.tls_port is not None else None
        self.tls_before: str | None = None  # the live certificate version before the move (plain)
        self.renamed: list[tuple[str, str]] = []  # (original name, set-aside name), in order
        self.nginx: list[str] = []  # the old proxy's nginx containers (original names)
        self.created = False  # the shared proxy's container exists (created by this move)
        self.cut_done = False  # the old proxy stopped: from here a failure starts it again
        self.gap: float | None = None  # seconds from the cut command to the shared proxy's first answer
        self._locks = contextlib.ExitStack()

    # -- before the route -------------------------------------------------------------------

    def set_aside(self) -> None:
        """The old proxy renamed out of the way (it keeps serving) and out of its restart policy
        (nginx's graceful quit at the cut is an exit `unless-stopped` would undo)."""
        self._recover()
        seen = self.own.containers()
        if seen.anchor is None:
            raise DeployError(f"{self.conn.host}: the proxy {self.names.proxy} to move to the shared proxy is gone")
        self.nginx = [n for n, (state, _) in seen.nginx.items() if state == "running"]
        if self.tls is not None:
            self.tls_before = self.tls.live_version()
        check(self.conn, plan.restart_policy([self.names.proxy, *self.nginx], "no"))
        for name in [self.names.proxy, *self.nginx]:
            aside = plan.premove_name(self.names.proxy, name)
            check(self.conn, plan.rename(name, aside))
            self.renamed.append((name, aside))
        self.emit(Message(f"moving to the shared proxy {self.shared.name}: the old proxy serves port "
                          f"{self.shared.port} until the cut (renamed {self.names.proxy}{plan.PREMOVE})",
                          host=self.conn.host))

    def _recover(self) -> None:
        """A move a killed deployctl left before its cut: the old proxy still serves under its
        set-aside name, beside the new proxy it started (which no user reaches). The new one
        goes and the old one gets its names back, so this move starts from where that one did."""
        aside = plan.set_aside_listing(self.conn.run(dc.list_proxy(self.names)).stdout, self.names.proxy)
        if aside.get(plan.premove_name(self.names.proxy, self.names.proxy)) != "running":
            return
        new = self.own.containers()
        self.conn.run(dc.remove([*new.nginx, *([self.names.proxy] if new.anchor is not None else [])]))
        self._plain_certificate_back()
        for name in aside:
            check(self.conn, plan.rename(name, plan.original_name(self.names.proxy, name)))
        self.emit(Message(f"a move to the shared proxy that a stopped deployctl left: the old proxy "
                          f"{self.names.proxy} (still serving) has its name back", level="warning",
                          host=self.conn.host))

    # -- after the app's own proxy verified the new release -----------------------------------

    def run(self, own_port: int, verify: Callable[[int, dict], float]) -> None:
        """`own_port`: where the app's own proxy (new) publishes HTTP; `verify(port, headers)`:
        the switch's verify, asked through the shared proxy with the app's host name."""
        timer = Timer(self.emit, "move", host=self.conn.host, detail=f"shared proxy {self.shared.name}")
        try:
            own_tls = self._certificate_follows() if self.tls is not None else None
            route = self.shared._route(own_port, own_tls, own_tls is not None)
            self._prepare(route)
            self._cut()
            host, _ = sp.probe(route)
            seconds = verify(self.shared.port, {"Host": host})
            if own_tls is not None:
                seconds += self._verify_https(route.hosts[0])
        except BaseException as exc:
            gap = "" if self.gap is None else f" ({self._ports()} closed for {self.gap:.2f}s at most)"
            timer.failed(f"{exc}{gap}")
            raise
        timer.done(f"{self._ports()} closed for {self.gap:.2f}s at most; verified through the shared proxy "
                   f"in {seconds:.2f}s{' (HTTP by Host, HTTPS by SNI)' if own_tls is not None else ''}")

    def _ports(self) -> str:
        if self.shared.tls_port is None:
            return f"port {self.shared.port}"
        return f"ports {self.shared.port} and {self.shared.tls_port}"

    def _certificate_follows(self) -> int:
        """HTTPS: the live certificate installed again (staged, `nginx -t`, reload; no CA order)
        as the version whose listener takes the PROXY protocol, into the app's own proxy that
        the route just started on loopback (nobody else reaches it yet). The old proxy, set
        aside, keeps the plain listener it loaded. Returns the own HTTPS port on the host."""
        assert self.tls is not None
        version, chain, key = self.tls.live_pair()
        if version is None or chain is None or key is None:
            raise DeployError(f"{self.conn.host}: {self.names.proxy} serves no certificate to move to the shared "
                              "proxy (its tls/live files are missing)")
        proxy = self.env.config.proxy
        self.tls.install(chain, key, self.env.settings.shared_proxy_tls_port, proxy.hsts,
                         check=(proxy.port, proxy.healthcheck))
        port = self.own.port(TLS_LISTEN_PORT)
        if port is None:
            raise DeployError(f"{self.conn.host}: the proxy {self.names.proxy} publishes no HTTPS port")
        return port

    def _verify_https(self, name: str) -> float:
        """Through the shared proxy's HTTPS port by SNI (the app's first host name): the new
        release's stamp and the moved certificate's (its PROXY-protocol listener answered).
        With the switch's own headers (maintenance mode lets them through)."""
        started = time.monotonic()
        release, version = live_release(self.own.live_config()), self.tls.live_version() if self.tls else None
        seen = "nothing"
        while time.monotonic() - started < START_TIMEOUT:
            try:
                answer = self.conn.https_get("127.0.0.1", self.shared.tls_port or 443, "/", name, timeout=2.0,
                                             headers=self.own.bypass())
                seen = (f"{answer.status}, release {answer.headers.get(RELEASE_HEADER.lower(), 'none')}, "
                        f"certificate {answer.headers.get(CERTIFICATE_HEADER.lower(), 'none')}")
                if (answer.headers.get(RELEASE_HEADER.lower()) == release
                        and answer.headers.get(CERTIFICATE_HEADER.lower()) == version):
                    return time.monotonic() - started
            except OSError as exc:
                seen = str(exc)
            time.sleep(POLL * 5)
        raise DeployError(f"{self.conn.host}: HTTPS through the shared proxy {self.shared.name} (port "
                          f"{self.shared.tls_port}, SNI {name}) did not answer from {release} with certificate "
                          f"{version} within {START_TIMEOUT:g}s: {seen}")

    def _prepare(self, route) -> None:  # type: ignore[no-untyped-def]
        """Under the shared proxy's lock (held to the end of the move): its files with this
        app's route, its container created. Nothing binds the ports yet."""
        self._locks.enter_context(self.shared._locked())
        self.conn.mkdir(self.shared.routes_dir, mode=0o755)
        main = sp.render_main(self.shared.port, tls_port=self.shared.tls_port if route.tls_port else None)
        self.conn.put_file(posixpath.join(self.shared.dir, sp.CONFIG_FILE), main.encode(), 0o644)
        for name, text in route.files().items():
            self.conn.put_file(posixpath.join(self.shared.routes_dir, name), text.encode(), 0o644)
        container = sp.container_name(self.shared.name)
        self.conn.run(dc.remove([container]))  # a stopped one of an earlier run (it could not bind the port)
        assert self.shared.image is not None
        tested = self.conn.run(plan.test_shared_config(self.shared.image, self.shared.dir), timeout=120)
        if not tested.ok:
            said = redactor(tested.stderr.strip() or tested.stdout.strip())
            raise DeployError(f"{self.conn.host}: nginx -t refused the shared proxy {self.shared.name}'s configuration "
                              f"(the old proxy still serves port {self.shared.port}): {said}",
                              hint=self.shared._stream_hint(said))
        check(self.conn, plan.create_shared_proxy(self.shared.name, self.shared.image, self.shared.dir))
        self.created = True

    def _cut(self) -> None:
        """The one host command; the gap measured from before it to the shared proxy's first
        answer on the port (an upper bound: it includes the round trip to the host)."""
        anchor = plan.premove_name(self.names.proxy, self.names.proxy)
        nginx = [plan.premove_name(self.names.proxy, n) for n in self.nginx]
        started = time.monotonic()
        self.cut_done = True  # from the first byte of the command on, the old proxy may be down
        check(self.conn, plan.cut(nginx, anchor, sp.container_name(self.shared.name)), timeout=plan.QUIT_WAIT + 60)
        while True:
            try:
                if self.conn.http_get("127.0.0.1", self.shared.port, sp.HEALTH_PATH, timeout=1.0).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() - started > START_TIMEOUT:
                raise DeployError(f"{self.conn.host}: the shared proxy {self.shared.name} did not answer on port "
                                  f"{self.shared.port} within {START_TIMEOUT:g}s of the cut")
            time.sleep(POLL)
        self.gap = time.monotonic() - started

    def finish(self) -> None:
        """Moved: the old proxy's containers go, the shared proxy's lock is released."""
        self.conn.run(dc.remove([aside for _, aside in self.renamed]))
        self._locks.close()

    def record(self) -> dict:
        """What the history says of the move (services/lifecycle/deploy.HostDeploy.record)."""
        return {"shared_proxy": {"name": self.shared.name, "port": self.shared.port, "moved": True,
                                 "gap_seconds": round(self.gap or 0.0, 3)}}

    # -- a failure ---------------------------------------------------------------------------

    def back(self, previous: bytes | None, path: str) -> None:
        """The old proxy as it was, serving the previous configuration (`previous`) on the
        shared port; after the cut, proven by its answers (else DeployError: uncertain)."""
        try:
            if self.created:
                self.conn.run(dc.remove([sp.container_name(self.shared.name)]))
                self.conn.run(["rm", "-f", *[posixpath.join(self.shared.routes_dir, n)
                                             for n in self.shared._route(0, 0, True).files()]])
            if self.renamed:
                new = self.own.containers()
                self.conn.run(dc.remove([*new.nginx, *([self.names.proxy] if new.anchor is not None else [])]))
                if previous is not None:  # what the old nginx loads when it starts again
                    self.conn.put_file(self.own.config_file, previous, 0o644)
                self._plain_certificate_back()
            for name, aside in reversed(self.renamed):
                check(self.conn, plan.rename(aside, name))
            if not self.cut_done:  # it never stopped serving: only its restart policy comes back
                self.conn.run(plan.restart_policy([self.names.proxy, *self.nginx], "unless-stopped"))
                return
            for argv in plan.put_back(self.nginx, self.names.proxy):
                check(self.conn, argv)
            self._answers(live_release(previous), path)
            self.emit(Message(f"the old proxy {self.names.proxy} serves port {self.shared.port} again",
                              level="warning", host=self.conn.host))
        finally:
            self._locks.close()

    def _plain_certificate_back(self) -> None:
        """The certificate version the old proxy listened with (plain TLS on every address)
        live again: what it loads when it starts (after a failed cut, a reboot). Its loaded
        configuration never changed (no reload while it was set aside)."""
        if self.tls is None:
            return
        before = self.tls_before
        if before is None:  # a move a killed deployctl left: the plain version of the live chain
            version, chain, _ = self.tls.live_pair()
            before = tc.version_of(chain) if chain and version == tc.version_of(chain, True) else None
        if before is not None and self.tls.live_version() != before and \
                self.conn.read_file(posixpath.join(tc.version_dir(self.own.layout.proxy_dir, before), tc.SERVER_CONF)):
            check(self.conn, tc.link_live(self.own.layout.proxy_dir, before))

    def _answers(self, release: str | None, path: str) -> None:
        deadline, streak = time.monotonic() + START_TIMEOUT, 0
        while time.monotonic() < deadline:
            answered = self.own.serving(self.shared.port, path)
            streak = streak + 1 if answered and (release is None or answered == release) else 0
            if streak >= 3:
                return
            time.sleep(0.05)
        raise DeployError(f"{self.conn.host}: the old proxy {self.names.proxy} was started again but does not answer "
                          f"from {release or 'a release'} on port {self.shared.port}")
