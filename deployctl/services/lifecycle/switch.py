"""Runs a SwitchPlan (plan/lifecycle/switch_plan.py) on one host: the one sequence deploy, rollback
and a stopped rollout's revert all use.

start -> health -> route -> verify. A failure before the route undoes the start (the live
release never stopped serving). A failure at or after the route puts the previous proxy
configuration back and undoes the start: "switched back". If that fails too, the host's
state is uncertain, and it says so (exit 7). What follows a verified switch (drain, stop,
the warm window, prune) is services/lifecycle/retire.py. Looking at containers (states, logs) is here
too: the switch needs it.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

from ...adapters.connector import check
from ...errors import DeployError, UncertainError
from ...events import Emit, Message, StepFailed, Timer
from ...plan.lifecycle import docker_commands as dc
from ...plan.lifecycle import subnets
from ...plan.lifecycle.container_states import ContainerState, parse_states
from ...plan.lifecycle.names import Names, StateLayout
from ...plan.edge.proxy_config import Standby, live_release, standby_flag
from ...plan.lifecycle.release_spec import ReleaseSpec
from ...plan.lifecycle.releases import is_release_id
from ...plan.lifecycle.steps import Step
from ...plan.lifecycle.switch_plan import SwitchPlan, VerifyCheck
from ...secrets import redactor
from .health import HealthWait
from .host_calls import PREVIOUS, mapped
from .host_calls import why as _why
from ..edge.proxy import HostProxy
from .own_config import HostStaging, OwnConfig

SUBNET_TRIES = 8
# After a lost race for a subnet: choose among this many free ones (plan/lifecycle/subnets.pick_subnet).
SUBNET_SPREAD = 16

LOG_LINES = 20
SWITCH_BACK_WAIT = 5.0  # seconds the switch back waits for the previous release to answer


class SwitchFailed(DeployError):
    """The route or its verification failed and was undone: the previous release serves.
    (A failure before the route is raised as it is, after the start was undone.)"""


class SwitchBackFailed(UncertainError):
    """A failed switch could not be undone either: the host's state is uncertain."""


class HostSwitch:
    def __init__(self, conn, names: Names, layout: StateLayout, emit: Emit,
                 checkpoint: Callable[[], None] | None = None) -> None:
        self.conn, self.names, self.layout, self.emit = conn, names, layout, emit
        # Called while waiting for health: a rollout's cancel check raises there, so an
        # interrupted rollout does not wait out a health timeout first.
        self.checkpoint = checkpoint
        self.proxy = HostProxy(conn, names, layout, emit)
        self.previous_config: bytes | None = None
        self.stopped_first: list[str] = []  # stop_first workers of another release this switch stopped
        self.step = "start"  # the step under way, for an error that does not say (a lost connection)
        self.created = False  # `create` ran: the start is each container's `docker start` only
        # A deploy that moves the app to the host's shared proxy (services/edge/shared_move.py):
        # its old proxy is set aside before the route, the cut and the verify through the
        # shared proxy follow the verify, and a failure puts the old proxy back first.
        self.move = None
        self._flag_look = None  # a flag switch's proxy listing (its port), taken during its bring-up
        self._own: OwnConfig | None = None  # a flag switch's own configuration (settle() waits for it)

    # -- looking -----------------------------------------------------------------------------

    def states(self, containers: Sequence[str]) -> dict[str, ContainerState]:
        if not containers:
            return {}
        # Exit status 1 when some are missing; the ones that exist are still printed.
        return parse_states(self.conn.run(dc.inspect_state(containers)).stdout)

    def running(self, containers: Sequence[str]) -> list[str]:
        """Those of `containers` that run now (one inspect)."""
        return [n for n, s in self.states(containers).items() if s.status == "running"]

    def addresses(self, containers: Sequence[str]) -> dict[str, str]:
        """name -> IP on the app's network (the proxy's), for those attached and running."""
        if not containers:
            return {}
        out = {}
        for line in self.conn.run(dc.addresses_on(containers, self.names.network)).stdout.splitlines():
            name, _, ip = line.partition("|")
            if ip.strip():
                out[name.lstrip("/")] = ip.strip()
        return out

    def standby(self, release: ReleaseSpec | None, live: str, ip: str | None = None) -> Standby | None:
        """`release` as the standby of `live`'s configuration (the one a switch to `live`
        leaves warm), at its routed container's address now; None when it does not run."""
        if release is None or release.release == live:
            return None
        routed = release.routed
        ip = ip or self.addresses([routed.container]).get(routed.container)
        if not ip:
            return None
        return Standby(release.release, f"{ip}:{routed.port}",
                       standby_flag(live, release.release, str(round(time.time() * 1000))))

    def release_containers(self) -> dict[str, list[str]]:
        """release id -> its service containers on this host (running or stopped)."""
        return {release: list(states) for release, states in self.release_states().items()}

    def release_states(self) -> dict[str, dict[str, str]]:
        """release id -> {service container: its state (running, exited, ...)}, one `docker ps`."""
        return self.release_listing()[0]

    def release_listing(self) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        """(`release_states`, {running worker container: its release}: what
        docker_commands.running_workers lists), from the one `docker ps`."""
        out: dict[str, dict[str, str]] = {}
        workers: dict[str, str] = {}
        for line in check(self.conn, dc.list_containers(self.names)).splitlines():
            name, role, release, state, worker = (line.split("|") + ["", "", "", ""])[:5]
            # A label that is no release id is no release of ours (ids become paths prune removes).
            if role == "service" and is_release_id(release):
                out.setdefault(release, {})[name] = state
            if worker == "true" and state == "running":
                workers[name] = release
        return out, workers

    def logs(self, container: str, lines: int = LOG_LINES) -> tuple[str, ...]:
        result = self.conn.run(dc.logs(container, lines))
        text = redactor(result.stdout + result.stderr)
        return tuple(text.splitlines()[-lines:])

    # -- networks ----------------------------------------------------------------------------

    def ensure_network(self, release: str | None = None, subnet_pool: str = "") -> bool:
        """The app's network (and a release's own one, with a subnet from `subnet_pool`
        when one is given): True when the app's had to be created."""
        created = False
        wanted = [self.names.network, *([self.names.release_network(release)] if release is not None else [])]
        found = self.conn.run(dc.networks_present(*wanted))
        present = set() if found.rc not in (0, 1) else set(found.stdout.split())
        if self.names.network not in present:
            self._create_network(lambda subnet: dc.network_create(self.names, subnet), subnet_pool,
                                 subnets.APP_SUBNET_PREFIX)
            created = True
        if release is not None and self.names.release_network(release) not in present:
            self._create_network(lambda subnet: dc.release_network_create(self.names, release, subnet), subnet_pool,
                                 subnets.SUBNET_PREFIX)
        return created

    def _create_network(self, create: Callable[[str | None], list[str]], pool: str, prefix: int) -> None:
        """With a pool: the first free subnet the engine's networks leave (plan/lifecycle/subnets.py);
        Docker refuses one that another create took meanwhile (another app's deploy on the
        host, not under our lock), and the next free one is tried."""
        if not pool:
            check(self.conn, create(None))
            return
        for attempt in range(SUBNET_TRIES):
            # Read again after a lost race: the winners' networks are taken now.
            ids = self.conn.run(dc.NETWORK_IDS).stdout.split()
            used = subnets.parse_used(self.conn.run(dc.network_subnets(ids)).stdout) if ids else []
            subnet = subnets.pick_subnet(pool, used, prefix, spread=1 if attempt == 0 else SUBNET_SPREAD,
                                         choose=random.choice)
            if subnet is None:
                raise DeployError(f"{self.conn.host}: release_subnet_pool {pool} has no free /{prefix} left",
                                  hint="lower rollout.keep, prune old releases, or give a larger release_subnet_pool")
            result = self.conn.run(create(subnet))
            if result.ok:
                return
            if "overlap" not in result.stderr.lower():
                check(self.conn, create(subnet))  # raises, as it was
        raise DeployError(f"{self.conn.host}: no free subnet in release_subnet_pool {pool} after {SUBNET_TRIES} tries "
                          "(other networks are being created on this host at the same time)")

    def orphan_release_networks(self, keep: Sequence[str], listed: str | None = None) -> list[str]:
        """Release networks of this environment whose release has no container here and
        is not in `keep`: left by a deployctl killed between the network and the start, or
        containers removed by hand. Under the lock, no deploy of ours is creating one.
        `listed`: `release_network_listing()`'s answer, when the caller took it already."""
        found = []
        for line in (self.release_network_listing() if listed is None else listed).splitlines():
            name, _, release = line.strip().partition("|")
            if release and is_release_id(release) and release not in keep and name == self.names.release_network(release):
                found.append(release)
        return found

    def release_network_listing(self) -> str:
        """`name|release` of this environment's release networks (one `docker network ls`)."""
        return self.conn.run(dc.release_networks(self.names)).stdout

    def remove_release_networks(self, releases: Sequence[str]) -> None:
        if releases:  # best effort: a network of a release deployed before networks existed is absent
            self.conn.run(dc.network_remove([self.names.release_network(r) for r in releases]))

    # -- the sequence ------------------------------------------------------------------------

    def bringing_up(self, plan: SwitchPlan) -> list[Step]:
        """What `bring_up` runs, each step with the rows `--dry-run` prints for it: the
        step's name is what an error reports as the step under way."""
        return [Step("start", tuple(plan.start_rows()), lambda: self._start_timed(plan)),
                Step("start", tuple(plan.forget_env_rows()), lambda: self._forget_env(plan)),
                Step("health", tuple(plan.health_rows()), lambda: self._health(plan))]

    def switching(self, plan: SwitchPlan) -> Step:
        """What `switch` runs (route and verify, or the standby's flag), with its rows."""
        return Step("switch", tuple(plan.switch_rows()), lambda: self.switch(plan))

    def bring_up(self, plan: SwitchPlan, steps: list[Step] | None = None) -> None:
        """start -> health (`steps`: the list `bringing_up` made, walked in order): the new
        release runs beside the live one, out of the proxy. (A canary splits the traffic
        between here and `switch`: services/judging/canary.py.)"""
        if plan.flag is not None:
            # The verify after the flag needs the proxy's published port, and the route after
            # it the proxy's containers: one `docker ps` says both (plan/edge/proxy_containers.py),
            # listed beside the target's health check, off the command's path. The flag
            # changes no container, and the lock is held: it is what the verify and the route meet.
            pool = ThreadPoolExecutor(max_workers=1)
            self._flag_look = pool.submit(self.proxy.containers)
            pool.shutdown(wait=False)
        try:
            for step in self.bringing_up(plan) if steps is None else steps:
                self.step = step.name
                step.action()
        except BaseException:
            self.undo(plan)  # nothing was switched: the live release never stopped serving
            raise
        # What a later switch back (a failed verify, the guard, a canary abort) restores: the
        # configuration before this release got any traffic, a canary's share included.
        self.previous_config = self.proxy.live_config()

    def _start_timed(self, plan: SwitchPlan) -> None:
        target = plan.target
        timer = Timer(self.emit, "start", host=self.conn.host, detail=target.release)
        self._start(plan)
        timer.done(", ".join(target.containers))

    def _health(self, plan: SwitchPlan) -> None:
        self._wait_healthy(plan)
        if self.checkpoint is not None:
            self.checkpoint()

    def _forget_env(self, plan: SwitchPlan) -> None:
        """The env files with secrets, once every container was created from them: a
        container keeps its env in its config (engine restarts included), so nothing
        reads them again. One that stays is only clutter, so a failure warns."""
        if plan.forget_env is None:
            return
        result = self.conn.run(list(plan.forget_env))
        if not result.ok:
            self.emit(Message(f"the env files of {plan.target.release} were not removed (they hold secrets): "
                              f"{result.stderr.strip()}", level="warning", host=self.conn.host))

    def switch(self, plan: SwitchPlan) -> tuple[int, float]:
        """route -> verify, switching back to the configuration before `bring_up` on failure."""
        if plan.flag is not None:
            return self._switch_by_flag(plan)
        target = plan.target
        previous = self.previous_config
        routed = target.routed
        timer = Timer(self.emit, "switch", host=self.conn.host, detail=f"proxy -> {routed.container}")
        move = self.move
        try:
            self.step = "switch"
            if move is not None:
                move.set_aside()
            port = self.proxy.route(plan.proxy, plan.proxy_config)
            self._checkpoint()
            self.step = "verify"
            seconds = self.verify(port, plan.verify)
            if move is not None:
                self.step = "move"
                move.run(port, lambda at, headers: self.verify(at, plan.verify, headers))
            # A SIGTERM that came during the route or the verify switches back too: the
            # interrupted deploy (or rollback) ended with the new release live and exit 0
            # before (tests/faults, SIGTERM between the config write and the reload).
            self._checkpoint()
        except BaseException as exc:
            step = self.step  # the switch back moves it on
            timer.failed(_why(exc))
            if move is not None:
                self._move_back(move, plan, previous, exc)
            self._switch_back(plan, previous, exc)
            # A connector's failure (the connection, a full disk) named with the host and step;
            # what the error said to do (a shared proxy's lock a stopped run left) kept.
            said = exc.hint if isinstance(exc, DeployError) and exc.hint else None
            raise SwitchFailed(f"{_why(mapped(self.conn.host, step, exc, PREVIOUS))}; switched back",
                               hint=f"the previous release is still serving{f'; {said}' if said else ''}") from None
        timer.done(f"verified through the proxy in {seconds:.2f}s (port {port})")
        if move is not None:
            move.finish()  # the old proxy's containers go; the shared proxy's lock is released
        return port, seconds

    def _switch_by_flag(self, plan: SwitchPlan) -> tuple[int, float]:
        """The target is the live configuration's standby: its flag file is the switch, with
        no reload (plan/edge/proxy_config.Standby). Verified as any switch. The target's own
        configuration, so that what nginx loads next (a reload, a restart, the anchor's
        fallback) is what serves (both route to the target), is staged and tested beside the
        flag and the verify, and renamed in and reloaded once verified (own_config.py)."""
        assert plan.flag is not None
        target, previous = plan.target, self.previous_config
        timer = Timer(self.emit, "switch", host=self.conn.host,
                      detail=f"proxy -> {target.routed.container} (its standby flag: no reload)")
        looked, self._flag_look = self._flag_look, None
        own = self._own = OwnConfig(HostStaging(self.proxy, plan, previous, looked), target.release, self.emit)
        try:
            self.step = "switch"
            self.proxy.raise_flag(plan.flag)  # first: the traffic moves with it
            own.stage()
            self._checkpoint()
            self.step = "verify"
            seen = looked.result() if looked is not None else None
            port = seen.anchor.published(plan.proxy.listen_port) if seen is not None and seen.anchor else None
            port = port or self.proxy.port(plan.proxy.listen_port)
            if port is None:
                raise DeployError(f"{self.conn.host}: the proxy {self.names.proxy} publishes no port")
            seconds = self.verify(port, plan.verify)
            self._checkpoint()
        except BaseException as exc:
            step = self.step
            timer.failed(_why(exc))
            own.abandon()  # the staged file goes once its test ended, beside the switch back
            self._switch_back(plan, previous, exc)
            raise SwitchFailed(f"{_why(mapped(self.conn.host, step, exc, PREVIOUS))}; switched back",
                               hint="the previous release is still serving") from None
        timer.done(f"verified through the proxy in {seconds:.2f}s (port {port})")
        # Beside the record and retire; `settle()` waits for it, and the job's caller releases
        # the lock only after that (services/lifecycle/rollback.HostRollback.run).
        own.finish()
        return port, seconds

    def settle(self) -> None:
        """Waits until the target's own configuration after a flag switch is in place (or its
        failure was warned about), or dropped after a failed one: called before the job's
        lock is released, also on a signal (own_config.OwnConfig.settle)."""
        own, self._own = self._own, None
        if own is not None:
            own.settle()

    def _checkpoint(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint()

    def create(self, plan: SwitchPlan) -> None:
        """A deploy's containers up to their start (created, joined to the app's network),
        while the migration runs (services/lifecycle/deploy.HostDeploy.migrate): nothing runs before
        the migration ended, and the start then is one `docker start` per container. A
        failure before the switch removes them as it removes started ones (`undo`)."""
        timer = Timer(self.emit, "create", host=self.conn.host, detail=f"{plan.target.release}, not started")
        self._run_chains([chain[:-1] for chain in plan.start])
        self.created = True
        timer.done()

    def _start(self, plan: SwitchPlan) -> None:
        """Every container's chain at once (only its `docker start` when `create` ran), once
        any stop_first worker of another release stopped."""
        self._stop_first(plan)
        self._run_chains([chain[-1:] for chain in plan.start] if self.created else plan.start)

    def _run_chains(self, chains) -> None:  # type: ignore[no-untyped-def]
        """The chains at once: each `docker` call is a round trip to the host and seconds of
        the engine's time, and none waits for another (health checks do)."""
        def run_chain(chain) -> None:  # type: ignore[no-untyped-def]
            for argv in chain:
                check(self.conn, list(argv))

        with ThreadPoolExecutor(max_workers=max(1, len(chains))) as pool:
            futures = [pool.submit(run_chain, chain) for chain in chains]
        for future in futures:
            future.result()  # the first failure, once all have finished

    def _wait_healthy(self, plan: SwitchPlan) -> None:
        timer = Timer(self.emit, "health", host=self.conn.host, detail="waiting for the new containers")
        try:
            HealthWait(self.conn, self.states, self.emit, self.checkpoint).wait(plan.probes)
        except DeployError as exc:
            failed = next((p for p in plan.probes if f": {p.container}: " in exc.message), plan.probes[0])
            timer.failed(exc.message, self.logs(failed.container))
            for probe in plan.probes:  # every new container's last lines: the cause may be elsewhere
                if probe.container != failed.container:
                    self.emit(StepFailed("health", f"{probe.container}: last log lines", self.logs(probe.container, 10),
                                         host=self.conn.host, service=probe.service))
            raise
        timer.done()

    def _stop_first(self, plan: SwitchPlan) -> None:
        """A stop_first worker (a consumer that must not run twice): the running one of any
        other release stops before the target's starts. Remembered: an undo starts it again."""
        own = set(plan.target.containers)
        for _, listing in plan.stop_first:
            others = [n for n in check(self.conn, list(listing)).split() if n not in own]
            if others:
                self.emit(Message(f"stop_first: stopping {', '.join(others)} before the new one starts",
                                  host=self.conn.host))
                self.stop(others)
                self.stopped_first += others

    def undo(self, plan: SwitchPlan) -> None:
        for argv in plan.undo:
            self.conn.run(list(argv))
        if self.stopped_first:  # the previous release's stop_first workers run again
            check(self.conn, dc.start(self.stopped_first))
            self.stopped_first = []

    def _move_back(self, move, plan: SwitchPlan, previous: bytes | None, exc: BaseException) -> None:  # type: ignore[no-untyped-def]
        """The old proxy back on the shared port before the usual switch back (which then
        finds the previous configuration live and the previous release answering)."""
        self.step = "switch back"
        try:
            move.back(previous, plan.verify.path)
        except BaseException as back:
            raise SwitchBackFailed(
                f"{self.conn.host}: {_unprefixed(self.conn.host, _why(exc))}; putting the old proxy back failed: "
                f"{_unprefixed(self.conn.host, _why(back))}",
                hint="the host's state is uncertain: check `deployctl status` and the proxy") from None

    def _switch_back(self, plan: SwitchPlan, previous: bytes | None, exc: BaseException) -> None:
        self.step = "switch back"
        try:
            self.put_back(plan, previous)
            time.sleep(plan.drain)
            self.undo(plan)
        except BaseException as back:
            raise SwitchBackFailed(
                f"{self.conn.host}: {_unprefixed(self.conn.host, _why(exc))}; switching back failed: "
                f"{_unprefixed(self.conn.host, _why(back))}",
                hint="the host's state is uncertain: check `deployctl status` and the proxy") from None

    def put_back(self, plan: SwitchPlan, previous: bytes | None) -> None:
        """The proxy configuration from before `plan`'s release got traffic, and then until
        the proxy answers from that release again: the switch back after a failed verify and
        the guard's revert both remove the new release's containers next. The reload is
        graceful: the old workers still finish requests they hold for the new release, and
        under load the new workers take a while to answer; removing its containers before
        the previous release answered again turned those requests into 502s (tests/faults,
        verify answers a wrong release)."""
        if plan.flag is not None:
            self.proxy.lower_flag(plan.flag)  # the file on disk never changed
        else:
            self.proxy.put_back(previous)
        self._wait_answers(plan, live_release(previous))

    def _wait_answers(self, plan: SwitchPlan, release: str | None, timeout: float = SWITCH_BACK_WAIT) -> bool:
        """Until the proxy answers from `release` 3 times in a row (at most `timeout`): True
        when it did. Without a release to look for (no earlier one) there is nothing to wait for."""
        port = self.proxy.port(plan.proxy.listen_port) if release else None
        if port is None:
            return False
        if self.answers_from(release, port, plan.verify.path, timeout):
            return True
        self.emit(Message(f"the proxy did not answer from {release} within {timeout:g}s of the switch back",
                          level="warning", host=self.conn.host))
        return False

    def answers_from(self, release: str, port: int, path: str, timeout: float) -> bool:
        """Whether the proxy on `port` answered from `release` 3 times in a row within
        `timeout` (a host's switch back, and each Swarm node's: services/swarm/swarm_site.py)."""
        deadline, streak = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            streak = streak + 1 if self.proxy.serving(port, path) == release else 0
            if streak >= 3:
                return True
            time.sleep(0.05)
        return False

    def verify(self, port: int, check_: VerifyCheck, headers: dict | None = None) -> float:
        """Until the proxy answers `check_.path` from the target release, `streak` times in
        a row: the stamp is set per upstream, so it proves which release answered.
        `headers`: sent too (the app's Host, asked through the shared proxy)."""
        started = time.monotonic()
        streak, failing, last = 0, 0, "no answer"
        while time.monotonic() - started < check_.timeout:
            try:
                response = self.conn.http_get("127.0.0.1", port, check_.path, timeout=2.0,
                                              headers={**self.proxy.bypass(), **(headers or {})})
                stamped = response.headers.get(check_.header.lower())
                ok = stamped == check_.release and (
                    response.status == 200 if check_.want_ok else response.status not in (502, 504))
                if ok and check_.body_names_release:
                    ok = _names_release(response.text(), check_.release)
                last = f"{response.status} from {stamped or 'no release'}: {response.text()[:200]}"
                # The target's own app answering 5xx (not nginx's 502/504 while it settles) is
                # its answer: waiting out the timeout only served users its errors for longer
                # (tests/faults, a rollback whose target answers 500).
                own_error = stamped == check_.release and response.status >= 500 and response.status not in (502, 504)
            except OSError as exc:
                ok, own_error, last = False, False, str(exc)
            streak = streak + 1 if ok else 0
            failing = failing + 1 if own_error and check_.want_ok else 0
            if streak >= check_.streak:
                return time.monotonic() - started
            if failing >= check_.streak:
                break
            # A wrong answer right after the reload is nginx's old workers still accepting:
            # they stop within tens of ms, so asking again soon is what makes the verify short.
            # A right one is asked again at once where nothing was reloaded (VerifyCheck.spaced).
            if check_.spaced or not ok:
                time.sleep(0.05)
        within = f"{check_.streak} errors in a row" if failing >= check_.streak else f"within {check_.timeout:g}s"
        raise DeployError(f"{self.conn.host}: through the proxy, {check_.path} did not answer from "
                          f"{check_.release} {within} (last: {redactor(last)})")

    # -- after the switch --------------------------------------------------------------------

    def stop(self, containers: Sequence[str]) -> None:
        if containers:
            check(self.conn, dc.stop(containers))

    def remove(self, containers: Sequence[str]) -> None:
        if containers:
            self.conn.run(dc.remove(containers))


def _unprefixed(host: str, text: str) -> str:
    """`text` without a leading "host: " (the errors inside already name the host)."""
    return text[len(host) + 2:] if text.startswith(f"{host}: ") else text


def _names_release(body: str, release: str) -> bool:
    """Every `release` field in a JSON body is ours (e.g. our app's /version: the frontend's
    and the backend's it reached): proof the request went through the release end to end."""
    import json

    try:
        data = json.loads(body)
    except ValueError:
        return release in body
    found = list(_release_fields(data))
    return bool(found) and all(value == release for value in found)


def _release_fields(data):  # type: ignore[no-untyped-def]
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "release" and isinstance(value, str):
                yield value
            else:
                yield from _release_fields(value)
    elif isinstance(data, list):
        for item in data:
            yield from _release_fields(item)
