"""`deploy`, `rollback` and `scale` for a `swarm` environment (docs/swarm.md).

Under the lock on the manager: run migrations once, create the new release's services
beside the live ones, wait until every task runs and passed its health check, stage the
proxy configuration on every node and swap it in (test, rename, reload in one command),
verify through every node's proxy that the new release answers, then (after the drain)
scale the replaced release to 0, kept for rollback. A failure before the switch removes the
new services; a failed verify puts the previous configuration back first and waits until
every node answers from it again. Either way the previous release never stopped serving and
the command exits 6. The history and `current` live in the manager's state dir, as an ssh
host keeps them. The lock, the records and what follows the switch are the transaction's
(services/lifecycle/transaction.py), as on hosts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

from ...config import LoadedConfig
from ...config.models import Rollout as RolloutSettings
from ..operate.jobs import refuse_on_swarm as refuse_jobs_on_swarm
from ...errors import DeployctlError, DeployError, RollbackError, UsageError
from ...events import Emit, Message, Timer, serialized
from ...plan.lifecycle import rollout as rollout_plan
from ...plan.swarm import services as sw
from ...plan.swarm import swarm_scale as ss
from ...plan.lifecycle import warm as warm_plan
from ...plan.judging.canary import canary_spec
from ...plan.judging.shadow import shadow_spec
from ...plan.lifecycle.env_values import SecretValueError, env_file
from ...plan.lifecycle.release_spec import ReleaseSpec, release_spec
from ...plan.lifecycle.releases import FAILED, LIVE, REVERTED, UNCERTAIN, ReleaseRecord, new_release_id, prune_selection
from ...plan.swarm.swarm_plan import SwarmPlan, deploy_plan, rollback_plan
from ...plan.lifecycle.switch_plan import guard_spec
from ...secrets import Secret
from ..lifecycle import preflight
from . import swarm_accessories
from ..data.accessories import specs_for
from ..lifecycle.deploy_result import DeployOptions, DeployResult, HostOutcome
from ..lifecycle.host_calls import PREVIOUS, UNKNOWN, mapped
from ..lifecycle.host_calls import why as _why
from ...plan.operate.hooks import HookContext
from ...plan.lifecycle.target_limits import refuse
from ..operate.hooks import HookRunner
from ..lifecycle.host_state import HostState
from ..hosts import layout_for, manager_connector, names_for, proxy_port, ssh_connector, tls_port
from ..lifecycle.release_images import ReleaseImages, proxy_image_for
from .swarm_site import SwarmSite
from . import swarm_tls
from ..edge.tls import files_pair
from ..lifecycle.rollout import Cancel, unexpected
from ..lifecycle.transaction import BEFORE, LIVE_PHASE, SWITCHED_BACK, after_switch, deploy_failure, failure_outcome, release_record, rollback_failure, run_transaction, take_lock, best_effort
from ..lifecycle.transaction import UNCERTAIN as UNCERTAIN_PHASE
from ..judging.canary import CanaryAborted, CanaryGate
from ..judging.shadow import ShadowStopped
from ..lifecycle.switch import SwitchBackFailed
from .swarm_judges import SwarmJudges, put_back

REPLICAS = "replicas"  # the record's extra: what each service ran with (rollback runs it again)


class SwarmSwitchBackFailed(SwitchBackFailed):
    """The verify failed and putting the previous configuration back failed too."""


@dataclass
class SwarmJob:
    """What deploy and rollback share: the site, the manager's state, the lock."""

    loaded: LoadedConfig
    env_name: str
    emit: Emit
    manager: object = None
    site: SwarmSite | None = None
    # address -> a node's connector; None: ssh_connector with the environment's settings
    # (a test gives scripted nodes: tests/support/fake_swarm.py, tests/faults/test_swarm_faults.py)
    nodes: Callable[[str], object] | None = None

    def open(self) -> tuple[SwarmSite, HostState]:
        environment = self.loaded.environment(self.env_name)
        self.manager = self.manager or manager_connector(self.loaded, self.env_name)
        preflight.connect(self.manager, self.emit)
        nodes = self.nodes or (lambda address: ssh_connector(self.loaded, environment, address))
        self.site = SwarmSite(self.manager, nodes,
                              names_for(self.loaded, self.env_name), layout_for(self.loaded, self.env_name),
                              self.emit)
        self.site.check_manager()
        return self.site, HostState(self.manager, layout_for(self.loaded, self.env_name), self.emit)

    def close(self) -> None:
        if self.site is not None:
            self.site.close()
        if self.manager is not None:
            self.manager.close()


def _switch(site: SwarmSite, plan: SwarmPlan, port: int, emit: Emit, host: str,
            checkpoint: Callable[[], None] = lambda: None, previous: bytes | None = None) -> None:
    """Route then verify on every node; a failed verify puts the previous configuration
    (`previous`: what the nodes served before this command touched them; None: read now)
    back on every node (raises DeployError), or SwarmSwitchBackFailed if that fails too.
    A signal seen after the route or the verify (`checkpoint`) switches back as well, as on
    hosts (services/lifecycle/switch.py): an interrupted deploy never ends with its release live."""
    previous = previous if previous is not None else site.live_config()
    timer = Timer(emit, "route", host=host, detail=f"proxy -> {plan.target.release}")
    try:
        nodes = site.route(plan, plan.proxy_config)
        timer.done(f"{nodes} node{'s' if nodes != 1 else ''}")
        checkpoint()
        verify = Timer(emit, "verify", host=host, detail=plan.verify.path)
        seconds = site.verify(plan, port)
        verify.done(f"{plan.target.release} answers through every node's proxy ({seconds:.2f}s)")
        checkpoint()
    except Exception as exc:  # noqa: BLE001 - whatever failed, the previous release goes back
        back = Timer(emit, "switch back", host=host)
        try:
            if previous is not None:
                put_back(site, plan, previous, port)
            back.done()
        except Exception as again:  # noqa: BLE001
            back.failed(_why(again))
            raise SwarmSwitchBackFailed(f"{host}: {_why(exc)}; switching back failed: {_why(again)}",
                                        hint="the proxies may not all serve one release: `deployctl status`") from None
        raise DeployError(f"{host}: {_why(exc)}", hint="the previous release is serving again") from None


def _retire(site: SwarmSite, plan: SwarmPlan, live: str, drain: float, emit: Emit, host: str, *,
            previous: str | None = None, warm_window: float = 0.0) -> None:
    """After the drain, every other release's services to 0 tasks (kept for rollback), but
    the release the switch replaced (`previous`) while its warm window lasts (plan/lifecycle/warm.py,
    as on hosts): its tasks keep running out of the proxies, so a rollback until then is a
    proxy switch. The manager records the window in its state dir (warm.json)."""
    services = site.services()
    releases = {release for release, _, _ in services.values()}
    warm = warm_plan.after_switch(live, previous if previous in releases else None, now=time.time(),
                                  window=warm_window)
    site.manager.put_file(site.layout.warm, warm_plan.render_warm(warm), mode=0o600)
    kept = {w.release for w in warm}
    others = [name for name, (release, _, count) in services.items()
              if release != live and release not in kept and count > 0]
    if others:
        time.sleep(drain)
        timer = Timer(emit, "stop", host=host, detail=f"scale {len(others)} service(s) to 0")
        site.run(plan.retire(others))
        timer.done()
    for w in warm:
        emit(Message(f"{w.release} keeps its tasks (out of the proxies) for {warm_window:g}s: a rollback until "
                     "then is a proxy switch", host=host))


def _stop_expired_warm(site: SwarmSite, keep: set[str], emit: Emit, host: str) -> None:
    """Under the lock, as on hosts (services/lifecycle/retire.stop_expired_warm): a warm release past
    its window goes to 0 tasks, never one in `keep` (the live release, a rollback's target).
    The window comes from the manager's warm.json, never from a process's memory."""
    warm = warm_plan.parse_warm(site.manager.read_file(site.layout.warm))
    if not warm:
        return
    stop, remain = warm_plan.expired(warm, now=time.time(), keep=keep)
    names = [name for name, (release, _, count) in site.services().items() if release in stop and count > 0]
    if names:
        timer = Timer(emit, "warm", host=host, detail=f"{', '.join(stop)} past its warm window: scale to 0")
        site.run(sw.scale({name: 0 for name in names}))
        timer.done()
    site.manager.put_file(site.layout.warm, warm_plan.render_warm(remain), mode=0o600)


def _last_live(state: HostState, release: str | None) -> ReleaseRecord | None:
    """The latest record of `release` that left it live (its deploy, a rollback to it, or
    a scale of it): what it last ran with, and the scale overrides then in force."""
    if release is None:
        return None
    return next((r for r in reversed(state.history().records) if r.release == release and r.outcome == LIVE), None)


def _overrides(state: HostState) -> ss.Overrides:
    """The environment's scale overrides, carried forward by every record (plan/swarm/swarm_scale.py)."""
    record = _last_live(state, state.current())
    return ss.overrides_in(record.extra if record is not None else None)


def _prune(site: SwarmSite, state: HostState, keep: int, live: str, emit: Emit, host: str) -> None:
    by_release: dict[str, list[str]] = {}
    for name, (release, _, _) in site.services().items():
        by_release.setdefault(release, []).append(name)
    history = state.history()
    for release in prune_selection(list(by_release), keep=keep, live=live, previous_good=history.previous_good(live)):
        site.remove_release(release, by_release[release])
        site.manager.remove_tree(site.layout.release_secrets(release))
        emit(Message(f"pruned {release}", host=host))


def _record(state: HostState, spec: ReleaseSpec, action: str, outcome: str, previous: str | None, error: str,
            message: str, replicas: dict[str, int], started: float | None, scaled: ss.Overrides | None = None,
            extra: dict | None = None) -> None:
    """services/lifecycle/transaction.release_record, with what each service ran with and the scale
    overrides in force (plan/swarm/swarm_scale.py): a rollback runs the release that way again."""
    state.record(release_record(release=spec.release, action=action, outcome=outcome, previous=previous,
                                error=error, message=message, spec=spec, started=started,
                                extra={REPLICAS: replicas, **ss.to_extra(scaled or {}), **(extra or {})}))


def refuse_stop_first(config, env_name: str) -> None:  # type: ignore[no-untyped-def]
    """Each release is its own Swarm service, started beside the live one: nothing stops the
    live release's worker before the new one's tasks start yet, so stop_first is refused by
    name rather than run twice (docs/jobs.md, "Swarm")."""
    for name, service in config.services.items():
        if service.stop_first:
            refuse("swarm", env_name, "stop_first", f"services.{name}.stop_first")


def deploy(loaded: LoadedConfig, env_name: str, images: ReleaseImages, secrets: dict[str, Secret], emit: Emit, *,
           options: DeployOptions = DeployOptions(), registry_password: Secret | None = None,
           registry_username: str | None = None, manager=None, nodes: Callable[[str], object] | None = None,
           now: float | None = None) -> DeployResult:  # type: ignore[no-untyped-def]
    config, environment = loaded.config, loaded.environment(env_name)
    refuse_jobs_on_swarm(config, env_name)  # refused before anything is touched (plan/lifecycle/target_limits.py)
    refuse_stop_first(config, env_name)
    # tls = "files": the pair checked (key, names, dates) before anything changes, as on hosts.
    pair = files_pair(loaded, env_name) if config.tls_for(env_name) == "files" else None
    emit = serialized(emit)
    unrecorded = sorted(name for name, s in config.services.items() if s.schema_version)
    if unrecorded:  # a record-only feature: the deploy goes on, the user is told what is missing
        emit(Message(f"services.{unrecorded[0]}.schema_version is not run on a Swarm target yet: this release records "
                     "no schema, so a later rollback to it is not checked against the schema (docs/backups.md)",
                     level="warning"))
    job = SwarmJob(loaded, env_name, emit, manager, nodes=nodes)
    try:
        site, state = job.open()
        host = job.manager.host
        login_user = registry_username or (config.registry.username if config.registry else None)
        login: str | None = None  # the manager's client config directory holding this command's login
        if config.registry and login_user and registry_password is not None:
            login = preflight.registry_login(job.manager, emit, config.registry.server, login_user, registry_password)
        release = new_release_id(time.time() if now is None else now, images.revision, state.history().ids())
        emit(Message(f"release {release} to {env_name} (Swarm, manager {host})"))
        counts, scaled = ss.for_deploy({name: s.replicas for name, s in config.services.items()}, _overrides(state))
        if scaled:
            emit(Message("kept the scaled task counts (deployctl scale): " + ", ".join(
                f"{name}={count}" for name, (count, _) in sorted(scaled.items())), host=host))
        plan = swarm_deploy_plan(loaded, env_name, release, images, registry_auth=login, replicas=counts,
                                 options=options)
        shadow, canary = plan.shadow, plan.canary
        work = SwarmDeploy(site, state, plan, loaded, env_name, secrets, options, emit, registry_auth=login,
                           scaled=scaled, cancel=Cancel(),
                           shadow_gate=CanaryGate([], shadow, emit) if shadow is not None else None,
                           gate=CanaryGate([], canary, emit) if canary is not None else None)
        # The hooks as on hosts (services/operate/hooks.py): pre_deploy before the lock, pre_migrate
        # before the migrations, post_deploy and on_revert once the lock is released.
        hooks = HookRunner.for_config(loaded, emit, enabled=options.hooks, secrets=secrets,
                                      stopped=work.cancel.is_set)
        context = HookContext(config.app, env_name, "deploy", release, state.current() or "", images.revision or "",
                              (host,))
        # The sequence every target shares (services/lifecycle/transaction.run_transaction): the hooks,
        # the lock, prepare, the migrations once, the switch, the outcome of any failure or
        # signal, the unlock; a Swarm is one site of the rollout, its manager its host.
        results, verdict = run_transaction("deploy", [work], environment.rollout, emit, cancel=work.cancel,
                                           hooks=hooks, context=context)
        result = results[host]
        hosts = [HostOutcome(host, release, work.previous, result.outcome, result.seconds, result.error)]
        if not verdict.ok:
            error = deploy_failure(release, results, hosts, verdict)
            judged = {name: meeting.verdict.to_dict() for name, meeting in (("shadow", work.judges.shadow_gate),
                                                                             ("canary", work.judges.gate))
                      if meeting is not None and meeting.verdict is not None}
            if judged:  # `--json`'s error object, as on hosts
                error.details = {"verdicts": judged}
            raise error from unexpected(results)
        if config.tls_for(env_name) != "off":  # after the switch, as on hosts (services/swarm/swarm_tls.py)
            swarm_tls.certificate(site, loaded, env_name, release, pair)
        return DeployResult(release, images.revision, hosts)
    finally:
        if job.manager is not None:
            preflight.registry_logout(job.manager)
        job.close()


def swarm_deploy_plan(loaded: LoadedConfig, env_name: str, release: str, images: ReleaseImages, *,
                      registry_auth: bool | str = False, replicas: dict[str, int] | None = None,
                      options: DeployOptions = DeployOptions()) -> SwarmPlan:
    config, environment = loaded.config, loaded.environment(env_name)
    layout, names = layout_for(loaded, env_name), names_for(loaded, env_name)
    spec = release_spec(config, env_name, release, images.revision, images.images, proxy_image_for(config, images),
                        dirty=images.dirty)
    services = sw.release_services(config, environment, env_name, spec, layout, replicas)
    migrations = {name: list(s.migrate) for name, s in config.services.items() if s.migrate}
    return deploy_plan(spec, services, names, layout.proxy_dir, proxy_port=proxy_port(loaded, env_name),
                       drain=environment.rollout.drain, migrations=migrations, registry_auth=registry_auth,
                       guard=guard_spec(environment.rollout, options.no_guard), tls_port=tls_port(loaded, env_name),
                       shadow=shadow_spec(environment.rollout, options.shadow),
                       canary=canary_spec(environment.rollout, options.canary))


class SwarmDeploy:
    """A Swarm's part of a deploy: one HostJob of services/lifecycle/rollout.py, the manager its host.
    Its phases, records and outcomes are a host's (services/lifecycle/transaction.py): a failure before
    the switch removes what it started (`failed`, exit 6), a failed verify or the guard
    switches back (`reverted`, exit 6), a switch back that fails is `uncertain` (exit 7)."""

    def __init__(self, site: SwarmSite, state: HostState, plan: SwarmPlan, loaded: LoadedConfig, env_name: str,
                 secrets: dict[str, Secret], options: DeployOptions, emit: Emit, *, registry_auth: bool | str,
                 scaled: ss.Overrides, cancel: Cancel, shadow_gate: CanaryGate | None = None,
                 gate: CanaryGate | None = None) -> None:
        self.site, self.state, self.plan, self.loaded, self.env_name = site, state, plan, loaded, env_name
        self.secrets, self.options, self.emit, self.cancel = secrets, options, emit, cancel
        self.registry_auth, self.scaled = registry_auth, scaled
        self.host = site.manager.host
        self.release = plan.target.release
        self.replicas = {s.service: s.replicas for s in plan.services}
        self.previous: str | None = None
        self.phase = BEFORE
        self.step = "prepare"
        self.started: float | None = None
        self.port = proxy_port(loaded, env_name)
        for meeting in (shadow_gate, gate):
            if meeting is not None:
                meeting.stopped = cancel.is_set
        # The shadow window, the canary and the guard, with their ways back (services/swarm/swarm_judges.py).
        self.judges = SwarmJudges(self, site, plan, self.port, shadow_gate, gate)

    def lock(self) -> None:
        take_lock(self.state, self.emit, host=self.host, action="deploy", release=self.release,
                  message=self.options.message, force=self.options.force_unlock,
                  rollout=self.loaded.environment(self.env_name).rollout)
        self.started = time.time()

    def unlock(self) -> None:
        self.state.release()

    def prepare(self) -> None:
        """The overlay network, the accessories, the secrets: nothing the Swarm serves changes."""
        site, plan = self.site, self.plan
        try:
            self.previous = self.state.current()
            self.state.prepare()
            self.step = "recover"
            self.judges.recover()  # a shadow window a killed deployctl left on the nodes
            self.step = "warm"
            _stop_expired_warm(site, {r for r in (self.previous,) if r}, self.emit, self.host)
            self.step = "network"
            if site.ensure_network():
                self.emit(Message(f"created overlay network {site.names.network}", host=self.host))
            # Accessories first, as on ssh hosts: created when absent (pinned by their
            # placement), never recreated; the release's services reach them by name.
            self.step = "accessories"
            environment = self.loaded.environment(self.env_name)
            for accessory in specs_for(self.loaded, self.env_name, environment.accessories):
                swarm_accessories.boot(self.loaded, site, accessory, self.secrets, self.emit,
                                       registry_auth=self.registry_auth)
            self.step = "secrets"
            _upload(site, plan, self.secrets, self.emit, self.host)
            self.step = "tls"  # the challenge location (acme), or HTTPS state removed (off), on every node
            swarm_tls.prepare(site, self.loaded, self.env_name)
            if plan.network:
                self.step = "network"
                site.ensure_release_network(self.release, plan.network)
        except BaseException as exc:
            raise self._abandon(exc) from None

    def migrate(self, before: Callable[[], object] | None = None) -> None:
        """Once, before the new tasks start (as on hosts): no task of this release runs on a
        schema it does not know, and a failed migration leaves no task to remove. `before`
        (the pre_migrate hook) first when there is a migration to run."""
        try:
            self.step = "migrate"
            if before is not None and self.plan.migrations:
                before()
            for name, argv in self.plan.migrations:
                self.site.run_job(name, argv)
        except BaseException as exc:
            raise self._abandon(exc) from None

    def run(self) -> None:
        site, plan, host, emit = self.site, self.plan, self.host, self.emit
        try:
            self.step = "start"
            timer = Timer(emit, "start", host=host, detail=f"{len(plan.start)} service(s)")
            for argv in plan.start:
                site.run(argv)
            timer.done()
            _forget_env(site, plan, emit, host)
            self.step = "health"
            site.wait_ready(plan.wanted, plan.ready_timeout, checks=_checks(site, plan), checkpoint=self.cancel.check)
            self.cancel.check()
            self.judges.live_only = site.live_config()
        except BaseException as exc:
            raise self._abandon(exc) from None
        promoted = self._judge()
        port = self.port
        switched = time.time()
        self.step = "switch"
        try:
            _switch(site, plan, port, emit, host, self.cancel.check, previous=self.judges.live_only)
        except SwarmSwitchBackFailed as exc:
            self.phase = UNCERTAIN_PHASE
            self._record(UNCERTAIN, exc.message)
            raise
        except BaseException as exc:
            self.phase = SWITCHED_BACK
            if promoted is not None:  # switched back to the live-only configuration
                best_effort(emit, host, "watchdog", promoted.disarm)
            time.sleep(plan.drain)  # requests the new release's tasks still hold
            site.remove_release(self.release, [s.name for s in plan.services])
            self._record(REVERTED, _why(exc))
            raise
        if promoted is not None:  # verified: the canary's watchdogs go (services/judging/judges.py)
            try:
                self.judges.promoted(promoted)
            except BaseException as exc:
                # Live on every node, but an armed watchdog would put the previous release back
                # at its deadline: uncertain, as a host's failed switch back (exit 7).
                self.phase = UNCERTAIN_PHASE
                raise mapped(host, "removing the canary's watchdogs (the release was verified live)", exc,
                             UNKNOWN) from None
        try:
            self.state.set_current(self.release)
            self._record(LIVE, extra=self.judges.verdicts())
        except BaseException as exc:
            # Verified live, but `current` and the history may not say so.
            self.phase = UNCERTAIN_PHASE
            raise mapped(host, "recording the release (it was verified live)", exc, UNKNOWN) from None
        self.phase = LIVE_PHASE
        if self.judges.guarded():
            # The replaced release keeps its tasks for the watch: the revert is a proxy switch
            # (services/judging/judges.py: the phase, the record and the exit code as on hosts).
            self.judges.guard(since=switched, stopped=self.cancel.is_set)
        environment = self.loaded.environment(self.env_name)
        after_switch(emit, host, lambda: _retire(site, plan, self.release, plan.drain, emit, host,
                                                 previous=self.previous,
                                                 warm_window=environment.rollout.warm_window),
                     lambda: _prune(site, self.state, environment.rollout.keep, self.release, emit, host))

    def _judge(self):  # type: ignore[no-untyped-def]
        """The shadow window, then the canary (services/judging/judges.py), between the health
        check and the route: stopped or aborted, it raises ShadowStopped or CanaryAborted
        (recorded `aborted`, the services removed). Returns the promoted canary (its
        watchdogs armed until the switch is verified), None without one."""
        self.step = "shadow" if self.judges.gate is None else "canary"
        try:
            return self.judges.judge()
        except (ShadowStopped, CanaryAborted):
            raise
        except SwitchBackFailed as exc:
            self.phase = UNCERTAIN_PHASE
            why = exc.message
            best_effort(self.emit, self.host, "record", lambda: self._record(UNCERTAIN, why))
            raise
        except BaseException as exc:
            best_effort(self.emit, self.host, "mirror", self.judges.unmirror)
            raise self._abandon(exc) from None

    def failure_outcome(self) -> str:
        return failure_outcome(self.phase)

    def can_revert(self) -> bool:
        return False  # the only site of its rollout: no other host's failure can stop it after its switch

    def revert(self, why: str) -> None:
        raise DeployError(f"{self.host}: a Swarm is the only site of its deploy; nothing else can revert it ({why})")

    def skip(self, why: str, outcome: str) -> None:
        """Stopped (a signal) before the switch: what prepare left goes, the history says why."""
        self.clean_up()
        self._record(outcome, why)

    def clean_up(self) -> None:
        self.site.remove_release(self.release, [s.name for s in self.plan.services])
        self.site.manager.remove_tree(self.site.layout.release_secrets(self.release))

    def _abandon(self, exc: BaseException) -> BaseException:
        """Failure (or a signal) before the switch: remove what this release started, record
        it; a lost connection named with the host and the step (the previous release serves)."""
        error = mapped(self.host, self.step, exc, PREVIOUS)
        best_effort(self.emit, self.host, "clean-up", self.clean_up)
        best_effort(self.emit, self.host, "record", lambda: self._record(FAILED, _why(error)))
        return error

    def _record(self, outcome: str, error: str = "", extra: dict | None = None) -> None:
        _record(self.state, self.plan.target, "deploy", outcome, self.previous, error, self.options.message,
                self.replicas, self.started, self.scaled, extra)

    record = _record  # what the judges record through (services/judging/judges.py)


def _checks(site: SwarmSite, plan: SwarmPlan):  # type: ignore[no-untyped-def]
    """deployctl's own check of each new task for services whose check is http/tcp, from a
    checker of the release's proxy image (services/swarm/swarm_health.py)."""
    return site.task_checks(plan.target.release, plan.target.proxy.image, plan.probes)


def _upload(site: SwarmSite, plan: SwarmPlan, secrets: dict[str, Secret], emit: Emit, host: str) -> None:
    """Docker secrets (from stdin) and, for env values using a secret, a 0600 env file on the
    manager that the docker CLI reads at `service create`."""
    timer = Timer(emit, "secrets", host=host)
    count = site.create_secrets(plan, secrets)
    files = [s for s in plan.services if s.env_file]
    if files:
        site.manager.mkdir(site.layout.release_secrets(plan.target.release), mode=0o700)
    for svc in files:
        try:
            body = env_file(svc.secret_env, secrets)
        except SecretValueError as exc:
            raise DeployError(f"services.{svc.service}.env.{exc}") from None
        site.manager.put_file(svc.env_file, body, 0o600)
        count += 1
    timer.done(f"{count} secret{'s' if count != 1 else ''}")


def _forget_env(site: SwarmSite, plan: SwarmPlan, emit: Emit, host: str) -> None:
    """The env files on the manager, once the services exist: each service's spec holds its
    env (so Swarm recreates tasks without them), and nothing reads the files again."""
    files = [s.env_file for s in plan.services if s.env_file]
    if files and not site.manager.run(["rm", "-f", "--", *files]).ok:
        emit(Message(f"the env files of {plan.target.release} were not removed from the manager (they hold "
                     "secrets)", level="warning", host=host))


# -- rollback ----------------------------------------------------------------------------------

@dataclass
class SwarmRollback:
    release: str
    previous: str | None
    seconds: float
    total_seconds: float
    host: str
    outcome: str = LIVE
    error: str = ""


def rollback_target(state: HostState, to: str | None, host: str = "manager") -> tuple[str | None, str, ReleaseRecord]:
    """(live, target, the target's deploy record): the same choice, and the same refusals
    (exit 6: nothing changed), as a host's rollback (plan/lifecycle/rollout.rollback_target)."""
    history = state.history()
    current = state.current()
    target = rollout_plan.rollback_target([rollout_plan.HostReleases(host, current, history.previous_good(current))],
                                          to)
    record = history.deployed(target)
    if record is None or not record.spec:
        raise RollbackError(f"{host}: {target} was never deployed successfully here (or its record has no spec)",
                            hint="`deployctl releases --env ...` lists the releases you can roll back to")
    return current, target, record


def swarm_rollback_plan(loaded: LoadedConfig, env_name: str, record: ReleaseRecord,
                        last: ReleaseRecord | None = None, scaled: ss.Overrides | None = None) -> SwarmPlan:
    """From the release's own record (its spec), not today's deploy.toml: the counts it last
    ran with (`last`: its latest live record), with the environment's scaled counts."""
    config, environment = loaded.config, loaded.environment(env_name)
    layout, names = layout_for(loaded, env_name), names_for(loaded, env_name)
    spec = ReleaseSpec.from_dict(record.spec)
    replicas = {k: int(v) for k, v in ((last or record).extra or {}).get(REPLICAS, {}).items()}
    replicas = ss.for_rollback(replicas, scaled or {})
    services = [sw.SwarmService(service=s.service, name=s.container, image=s.image, port=s.port,
                                replicas=replicas.get(s.service, config.services.get(s.service).replicas
                                                      if s.service in config.services else 1),
                                env={}, health=s.health, routed=s.routed)
                for s in spec.services]
    return rollback_plan(spec, services, names, layout.proxy_dir, proxy_port=proxy_port(loaded, env_name),
                         drain=environment.rollout.drain, tls_port=tls_port(loaded, env_name))


def rollback(loaded: LoadedConfig, env_name: str, emit: Emit, *, to: str | None = None, message: str = "",
             force_unlock: bool = False, manager=None, hooks: bool = True,  # type: ignore[no-untyped-def]
             secrets: dict[str, Secret] | None = None,
             nodes: Callable[[str], object] | None = None) -> list[SwarmRollback]:
    environment = loaded.environment(env_name)
    emit = serialized(emit)
    job = SwarmJob(loaded, env_name, emit, manager, nodes=nodes)
    try:
        site, state = job.open()
        host = job.manager.host
        current, target, record = rollback_target(state, to, host)
        if target == current:
            emit(Message(f"{target} is already live", host=host))
            return [SwarmRollback(target, current, 0.0, 0.0, host, "unchanged")]
        scaled = _overrides(state)
        plan = swarm_rollback_plan(loaded, env_name, record, _last_live(state, target), scaled)
        kept = site.services()
        missing = [s.name for s in plan.services if s.name not in kept]
        if missing:
            raise RollbackError(f"{host}: the services of {target} are gone ({', '.join(missing)}): pruned?",
                                hint="deploy that revision again instead")
        if all(kept[s.name][2] == s.replicas > 0 for s in plan.services):
            # Warm (its window: plan/lifecycle/warm.py): its tasks run at the counts it runs with, so
            # nothing is scaled up, and a failure leaves them running as they were.
            plan = replace(plan, start=(), undo=())
        work = SwarmRollbackJob(site, state, plan, current, message, force_unlock, proxy_port(loaded, env_name),
                                emit, scaled, Cancel(), environment.rollout)
        runner = HookRunner.for_config(loaded, emit, enabled=hooks, secrets=secrets, stopped=work.cancel.is_set)
        context = HookContext(loaded.config.app, env_name, "rollback", target, current or "",
                              record.revision or "", (host,))
        # The same sequence as a fleet's rollback (services/lifecycle/transaction.run_transaction).
        results, verdict = run_transaction("rollback", [work], environment.rollout, emit, cancel=work.cancel,
                                           hooks=runner, context=context)
        result = results[host]
        outcome = SwarmRollback(target, current, round(work.seconds, 3), round(time.monotonic() - work.began, 3),
                                host, result.outcome, result.error)
        if not verdict.ok:
            raise rollback_failure(target, results, [outcome], verdict) from unexpected(results)
        return [outcome]
    finally:
        job.close()


class SwarmRollbackJob:
    """A Swarm's part of a rollback: one HostJob of services/lifecycle/rollout.py, as a host's
    (services/lifecycle/rollback.HostRollback): the kept services scaled back up, the same health gate
    and switch, the same records and exit codes (a verify that fails after the switch is
    `reverted`, exit 6; a switch back that fails, `uncertain`, exit 7)."""

    def __init__(self, site: SwarmSite, state: HostState, plan: SwarmPlan, current: str | None, message: str,
                 force_unlock: bool, port: int, emit: Emit, scaled: ss.Overrides, cancel: Cancel,
                 rollout: RolloutSettings) -> None:
        self.site, self.state, self.plan, self.current, self.message = site, state, plan, current, message
        self.force_unlock, self.port, self.emit, self.scaled, self.cancel = force_unlock, port, emit, scaled, cancel
        self.rollout = rollout
        self.host = site.manager.host
        self.target = plan.target.release
        self.replicas = {s.service: s.replicas for s in plan.services}
        self.phase = BEFORE
        self.started: float | None = None  # the lock taken: `stats` measures time to restore from here
        self.began = time.monotonic()
        self.seconds = 0.0  # to the verified switch

    def lock(self) -> None:
        take_lock(self.state, self.emit, host=self.host, action="rollback", release=self.target,
                  message=self.message, force=self.force_unlock, rollout=self.rollout)
        self.started = time.time()

    def unlock(self) -> None:
        self.state.release()

    def prepare(self) -> None:
        """Under the lock, again: a deploy or rollback that finished between the choice of
        the target and the lock moved `current`; this rollback was planned against the other.
        Then warm releases past their window go to 0 tasks (never the live one or the target)."""
        live = self.state.current()
        if live != self.current:
            raise RollbackError(f"{self.host}: the live release changed to {live} while this rollback waited for "
                                "the lock", hint="run the rollback again: it chooses its target from what is live now")
        _stop_expired_warm(self.site, {r for r in (live, self.target) if r}, self.emit, self.host)

    def run(self) -> str | None:
        site, plan, host, emit = self.site, self.plan, self.host, self.emit
        try:
            if plan.start:
                timer = Timer(emit, "start", host=host, detail=f"scale {self.target} back up")
                site.run(plan.start[0])
                timer.done()
            else:
                emit(Message(f"{self.target} is warm: its tasks run already", host=host))
            site.wait_ready(plan.wanted, plan.ready_timeout, checks=_checks(site, plan), checkpoint=self.cancel.check)
            self.cancel.check()
        except BaseException as exc:
            self._undo(FAILED, exc)
        try:
            _switch(site, plan, self.port, emit, host, self.cancel.check)
        except SwarmSwitchBackFailed as exc:
            self.phase = UNCERTAIN_PHASE
            self._record(UNCERTAIN, exc.message)
            raise
        except BaseException as exc:
            self.phase = SWITCHED_BACK
            self._undo(REVERTED, exc)  # switched, then switched back: the target got traffic for a moment
        self.seconds = time.monotonic() - self.began
        self.state.set_current(self.target)
        self._record(LIVE)
        self.phase = LIVE_PHASE
        after_switch(emit, host, lambda: _retire(site, plan, self.target, plan.drain, emit, host,
                                                 previous=self.current, warm_window=self.rollout.warm_window))
        return None

    def _undo(self, outcome: str, exc: BaseException) -> None:
        """The target's services back to 0 tasks (kept; a warm target's keep running, as they
        were), recorded; raises the rollback's error."""
        if self.plan.undo:
            self.site.manager.run(self.plan.undo[0])
        self._record(outcome, _why(exc))
        if isinstance(exc, DeployctlError):
            raise RollbackError(f"rollback to {self.target} failed: {exc.message}",
                                hint=f"{self.current or 'the release that was live'} still serves") from None
        raise exc

    def failure_outcome(self) -> str:
        return failure_outcome(self.phase)

    def can_revert(self) -> bool:
        return False  # the only site of its rollout

    def revert(self, why: str) -> None:
        raise RollbackError(f"{self.host}: a Swarm is the only site of its rollback; nothing else can revert it "
                            f"({why})")

    def skip(self, why: str, outcome: str) -> None:
        self._record(outcome, why)

    def _record(self, outcome: str, error: str = "") -> None:
        _record(self.state, self.plan.target, "rollback", outcome, self.current, error, self.message, self.replicas,
                self.started, self.scaled)


# -- scale -------------------------------------------------------------------------------------

def scale(loaded: LoadedConfig, env_name: str, emit: Emit, counts: dict[str, int], *,
          manager=None) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The live release's services to the given task counts (no new release), waited for
    until every task runs and is healthy, then recorded (a `scale` record of the live
    release): a rollback and the next deploy keep these counts (plan/swarm/swarm_scale.py)."""
    emit = serialized(emit)
    job = SwarmJob(loaded, env_name, emit, manager)
    try:
        site, state = job.open()
        current = state.current()
        if current is None:
            raise UsageError(f"nothing is deployed to {env_name} yet")
        unknown = sorted(set(counts) - set(loaded.config.services))
        if unknown:
            raise UsageError(f"no service {unknown[0]!r} (services: {', '.join(loaded.config.services)})")
        names = names_for(loaded, env_name)
        wanted = {names.container(service, current): count for service, count in counts.items()}
        take_lock(state, emit, host=job.manager.host, action="scale", release=current,
                  rollout=loaded.environment(env_name).rollout)
        try:
            timer = Timer(emit, "scale", host=job.manager.host,
                          detail=", ".join(f"{n}={c}" for n, c in sorted(wanted.items())))
            site.run(sw.scale(wanted))
            timer.done()
            record = state.history().deployed(current)
            spec = ReleaseSpec.from_dict(record.spec) if record is not None and record.spec else None
            checks = None if spec is None else site.task_checks(
                current, spec.proxy.image, {s.container: s.health for s in spec.services if s.container in wanted})
            site.wait_ready(wanted, 120.0, checks=checks)
            if spec is not None:
                # Recorded, so a rollback and the next deploy keep these counts (plan/swarm/swarm_scale.py).
                last = _last_live(state, current)
                ran = {k: int(v) for k, v in ((last.extra if last else None) or {}).get(REPLICAS, {}).items()}
                configured = {name: s.replicas for name, s in loaded.config.services.items()}
                scaled = ss.after_scale(_overrides(state), counts, configured)
                _record(state, spec, "scale", LIVE, current, "", "", ran | counts, None, scaled)
        finally:
            state.release()
        return wanted
    finally:
        job.close()
