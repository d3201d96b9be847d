"""The canary (issue 15, docs/release-safety.md): after the new release passed its health
checks (and migrations ran), instead of the full switch every host's proxy splits the
traffic, `share` percent to the new release; the proxies' access logs are read every second
on every host and judged together (plan/judging/canary.py); then every host either promotes (the
one switch sequence's route, verify, guard and retire: services/lifecycle/switch.py) or aborts (back
to the live-only configuration, the new release's containers removed, exit 6).

A watchdog container on each host restores the live-only configuration at the canary's
deadline unless the deploy removed it first, so a killed deployctl never leaves the traffic
split; the host's canary.json says what was running, for `status` and the next deploy.

The pieces: HostCanary (one host: split, watchdog, the way back), CanaryGate (the hosts of a
rollout meet there; one of them watches for all, they all get the one verdict), and
`decide` (`deploy --promote` / `--abort` from another shell: the hosts' decision files).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from ...adapters.connector import check
from ...errors import DeployError, UsageError
from ...events import Emit, Message, StepProgress, Timer
from ...plan.lifecycle import docker_commands as dc
from ...plan.judging.access_log import Window
from ...plan.judging.canary import ABORT, WAIT, Board, CanaryRecord, CanarySpec, CanaryVerdict, parse_decision, render_decision
from ...plan.lifecycle.names import Names, StateLayout
from ...plan.edge.proxy_config import LIVE_COPY
from ...plan.lifecycle.release_spec import ReleaseSpec
from ...plan.lifecycle.switch_plan import SwitchPlan, canary_clears, canary_config, canary_leftovers
from ..lifecycle.host_calls import why as _why
from ..lifecycle.switch import HostSwitch
from ..lifecycle.transaction import JudgedBack
from .watch import TICK, ProxyLog



class CanaryAborted(JudgedBack):
    """The canary was judged bad (or aborted by hand): every host is back on its live
    release at 100% (exit 6: the previous release serves)."""


class JudgedHost:
    """A host's part in a CanaryGate (a canary's, or a shadow window's: services/judging/shadow.py):
    the release judged, the live one beside it, and its proxy's access log."""

    def __init__(self, switch: HostSwitch, emit: Emit, plan: SwitchPlan, live: ReleaseSpec, spec) -> None:  # type: ignore[no-untyped-def]
        self.switch, self.emit = switch, emit
        self.conn = switch.conn
        self.host = switch.conn.host
        self.plan, self.live, self.spec = plan, live, spec
        self.log = ProxyLog(switch.proxy)

    @property
    def release(self) -> str:
        return self.plan.target.release

    def decision(self) -> tuple[str, str] | None:
        """A decision by hand (`deploy --promote` / `--abort`); none unless the part reads one."""
        return None

    def judged(self) -> list["JudgedHost"]:
        """What the gate reads of this part: the host itself (a Swarm's window: every node)."""
        return [self]


class HostCanary(JudgedHost):
    """One host's canary: split its proxy (with the watchdog armed first), read its log and
    decision file, and either disarm (promote) or go back to the live-only proxy (abort)."""

    def __init__(self, switch: HostSwitch, names: Names, layout: StateLayout, emit: Emit, plan: SwitchPlan,
                 live: ReleaseSpec, spec: CanarySpec) -> None:
        super().__init__(switch, emit, plan, live, spec)
        self.names, self.layout = names, layout

    def split(self) -> float:
        """The watchdog, then the split; returns when the split went live (epoch seconds)."""
        proxy = self.switch.proxy
        live_only = self.switch.previous_config
        if live_only is None:
            raise DeployError(f"{self.host}: the proxy has no configuration to keep the live release on")
        timer = Timer(self.emit, "split", host=self.host,
                      detail=f"{self.spec.share}% to {self.release}, the rest to {self.live.release}")
        # This release's proxy image first, still live-only: the watchdog joins the nginx that
        # will serve the split (nothing to do when that one runs already).
        if proxy.running_nginx() != self.plan.proxy.nginx_name:
            proxy.route(self.plan.proxy, live_only.decode())
        if self.plan.watchdog is None or proxy.running_nginx() != self.plan.proxy.nginx_name:
            raise DeployError(f"{self.host}: the proxy's nginx of {self.plan.target.proxy.image} is not running")
        for argv in canary_clears(self.layout):
            self.conn.run(list(argv))
        self.conn.put_file(f"{self.layout.proxy_dir}/{LIVE_COPY}", live_only, 0o644)
        self.conn.run(dc.remove([self.names.canary_watchdog]))  # one left by a killed deploy
        now = time.time()
        record = CanaryRecord(self.release, self.live.release, self.spec.share, now,
                              now + self.spec.watchdog_seconds, self.names.canary_watchdog)
        self.conn.put_file(self.layout.canary, record.to_json(), 0o644)
        check(self.conn, list(self.plan.watchdog))
        try:
            proxy.route(self.plan.proxy, canary_config(self.plan.target, self.live, self.spec.share))
        except BaseException as exc:
            # This step's failure, said (plan/judging/drill.SETUP_OF_NET): nginx -t refuses a
            # split to a release whose container is gone, the canary catching it first.
            timer.failed(_why(exc))
            self.disarm()  # route put the live-only configuration back itself
            raise
        timer.done(f"watchdog restores {self.live.release} at 100% in {self.spec.watchdog_seconds}s "
                   "unless the canary is decided")
        return time.time()

    def decision(self) -> tuple[str, str] | None:
        return parse_decision(self.conn.read_file(self.layout.canary_decision))

    def disarm(self) -> bool:
        """The watchdog goes (after `docker rm -f` returns it cannot fire), then the record.
        True when it had fired."""
        self.conn.run(dc.remove([self.names.canary_watchdog]))
        fired = self.conn.read_file(self.layout.canary_fired) is not None
        for argv in canary_leftovers(self.layout):
            self.conn.run(list(argv))
        return fired

    def back(self) -> None:
        """Abort: the live-only configuration, then the watchdog (armed until then: if this
        dies half-way, the watchdog still puts the live release back)."""
        self.switch.proxy.put_back(self.switch.previous_config)
        self.disarm()


class CanaryGate:
    """Where the hosts of one rollout meet once split: the last to arrive (or the first after
    every other host dropped out) watches every host's log; each gets the one verdict."""

    def __init__(self, hosts: list[str], spec: CanarySpec, emit: Emit, tick: float = TICK) -> None:
        self.spec, self.emit, self.tick = spec, emit, tick
        self.expected = set(hosts)
        self.arrived: dict[str, tuple[HostCanary, float]] = {}
        self.verdict: CanaryVerdict | None = None
        self.board: Board | None = None
        self._watching = False
        self._cond = threading.Condition()
        # Set by the deploy once its Rollout exists: an interrupt, or a host failure that stops it.
        self.stopped: Callable[[], bool] = lambda: False

    def leave(self, host: str) -> None:
        """This host will not take part (it failed, or had no live release to split with)."""
        with self._cond:
            self.expected.discard(host)
            self._cond.notify_all()

    def join_all(self, parts: list, since: float) -> CanaryVerdict:  # type: ignore[type-arg]
        """Every part one site brings at once (a host: itself; a Swarm: each node's proxy,
        services/swarm/swarm_judges.py), each read and shown on the board as a host of a fleet."""
        with self._cond:
            for part in parts[1:]:
                self.arrived[part.host] = (part, since)
        return self.join(parts[0], since)

    def join(self, canary: HostCanary, since: float) -> CanaryVerdict:
        with self._cond:
            self.arrived[canary.host] = (canary, since)
            self._cond.notify_all()
            while self.verdict is None and not self._watching:
                if set(self.arrived) >= self.expected or self.stopped():
                    self._watching = lead = True
                    break
                self._cond.wait(0.2)
            else:
                lead = False
        if lead:
            try:
                verdict = self._watch()
            except Exception as exc:  # noqa: BLE001 - the others wait for a verdict: this is one
                new, live = canary.release, canary.live.release
                verdict = CanaryVerdict(ABORT, Window(new), Window(live), f"the watch failed: {exc}")
            with self._cond:
                self.verdict = verdict
                self._cond.notify_all()
        with self._cond:
            while self.verdict is None:
                self._cond.wait(0.2)
            return self.verdict

    def _watch(self) -> CanaryVerdict:
        hosts = [c for c, _ in self.arrived.values()]
        since = min(s for _, s in self.arrived.values())
        new = hosts[0].release
        lives = {c.live.release for c in hosts}
        where = f"{len(hosts)} hosts" if len(hosts) != 1 else hosts[0].host
        step = self.spec.step
        timer = Timer(self.emit, step, detail=self.spec.headline(new, where))
        empty = Board(Window(new), Window(next(iter(lives))), {})
        if len(lives) > 1:
            verdict = CanaryVerdict(ABORT, empty.new, empty.live,
                                    f"the hosts serve different releases ({', '.join(sorted(lives))}): one {step} "
                                    "cannot compare them", hosts={})
            timer.failed(verdict.reason)
            return verdict
        live = lives.pop()
        end = time.monotonic() + self.spec.window
        with ThreadPoolExecutor(max_workers=len(hosts), thread_name_prefix="canary") as pool:
            while True:
                logs = dict(zip([c.host for c in hosts], pool.map(lambda c: c.log.entries(since), hosts)))
                self.board = current = self.spec.board(logs, new, live, since)
                left = end - time.monotonic()
                hand = next((d for d in pool.map(lambda c: c.decision(), hosts) if d is not None), None)
                if hand is not None:
                    verdict = current.by_hand(*hand)
                elif self.stopped():
                    verdict = CanaryVerdict(ABORT, current.new, current.live, "the deploy was stopped "
                                            f"(interrupt, or a host failed): {self.spec.summary(current)}"
                                            ).with_board(current)
                else:
                    verdict = self.spec.judge(current, left)
                if verdict.decision != WAIT:
                    (timer.done if verdict.decision != ABORT else timer.failed)(
                        verdict.with_routes(f"{verdict.decision}: {verdict.reason}; {self.spec.summary(current)}"))
                    return verdict
                self.emit(StepProgress(step, f"{self.spec.summary(current)}; {max(left, 0):.0f}s left"))
                time.sleep(max(0.0, min(self.tick, left)))


def decide(conns: list, layout: StateLayout, decision: str, who: str, emit: Emit) -> list[str]:
    """`deploy --promote` / `--abort`: the decision file on every host running the canary
    (the watching deploy reads it within a second). Refused where none runs."""
    running = []
    for conn in conns:
        conn.connect()
        record = CanaryRecord.parse(conn.read_file(layout.canary))
        if record is not None:
            running.append((conn, record))
    if not running:
        raise UsageError("no canary is running in this environment", hint="`deployctl status` shows what runs")
    for conn, record in running:
        conn.put_file(layout.canary_decision, render_decision(decision, who), 0o644)
        emit(Message(f"{decision} the canary of {record.release}: the watching deploy acts within a second",
                     host=conn.host))
    return [conn.host for conn, _ in running]


def recover(switch: HostSwitch, names: Names, layout: StateLayout, emit: Emit) -> CanaryRecord | None:
    """Under the lock, before anything else changes: a canary a killed deployctl left on this
    host. The live-only proxy (now, if the watchdog has not yet), the watchdog and the record
    go; the caller removes the abandoned release and records it. None when there was none."""
    conn = switch.conn
    record = CanaryRecord.parse(conn.read_file(layout.canary))
    if record is None:
        return None
    fired = (conn.read_file(layout.canary_fired) or b"").decode().strip() or None
    emit(Message(record.what_happened(now=time.time(), fired=fired), level="warning", host=conn.host))
    live_only = conn.read_file(f"{layout.proxy_dir}/{LIVE_COPY}")
    conn.run(dc.remove([names.canary_watchdog]))
    if not fired and live_only:
        switch.proxy.put_back(live_only)
    for argv in canary_leftovers(layout):
        conn.run(list(argv))
    return record
