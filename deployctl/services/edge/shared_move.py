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
from ...plan.edge.proxy_config import live_release
from ...plan.lifecycle import docker_commands as dc
from ...plan.lifecycle.names import Names, StateLayout
from ...secrets import redactor
from ..env import Env
from .proxy import START_TIMEOUT, HostProxy
from .shared_proxy import SharedProxy

POLL = 0.02  # seconds between looks for the shared proxy's first answer: the gap's resolution


class SharedMove:
    def __init__(self, conn, env: Env, names: Names, layout: StateLayout,  # type: ignore[no-untyped-def]
                 emit: Emit, image: str) -> None:
        self.conn, self.names, self.emit = conn, names, emit
        self.shared = SharedProxy(conn, env, emit, image)
        self.own = HostProxy(conn, names, layout, emit)
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
            self._prepare(own_port)
            self._cut()
            host, _ = sp.probe(self.shared._route(own_port))
            seconds = verify(self.shared.port, {"Host": host})
        except BaseException as exc:
            gap = "" if self.gap is None else f" (port {self.shared.port} closed for {self.gap:.2f}s at most)"
            timer.failed(f"{exc}{gap}")
            raise
        timer.done(f"port {self.shared.port} closed for {self.gap:.2f}s at most; verified through the shared proxy "
                   f"in {seconds:.2f}s")

    def _prepare(self, own_port: int) -> None:
        """Under the shared proxy's lock (held to the end of the move): its files with this
        app's route, its container created. Nothing binds the port yet."""
        self._locks.enter_context(self.shared._locked())
        route = self.shared._route(own_port)
        self.conn.mkdir(self.shared.routes_dir, mode=0o755)
        self.conn.put_file(posixpath.join(self.shared.dir, sp.CONFIG_FILE), sp.render_main(self.shared.port).encode(),
                           0o644)
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
                                             for n in self.shared._route(0).files()]])
            if self.renamed:
                new = self.own.containers()
                self.conn.run(dc.remove([*new.nginx, *([self.names.proxy] if new.anchor is not None else [])]))
                if previous is not None:  # what the old nginx loads when it starts again
                    self.conn.put_file(self.own.config_file, previous, 0o644)
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
