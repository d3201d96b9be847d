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
(services/lifecycle/transaction.py), and which failure gives which outcome is
services/lifecycle/switch_failures.py's, as on hosts.

Each job's work under the lock is a list of Steps (plan/lifecycle/steps.py: `SwarmDeploy.steps()`,
`SwarmRollbackJob.steps()`): the run executes them, `--dry-run` prints their rows
(services/lifecycle/dry_runs.py), so the two cannot drift apart.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Callable, TypeVar

from ..operate.jobs import refuse_on_swarm as refuse_jobs_on_swarm
from ...adapters.connector import CommandResult
from ...errors import DeployError, RollbackError, UsageError
from ...events import Emit, Message, Timer, serialized
from ...plan.lifecycle import rollout as rollout_plan
from ...plan.swarm import services as sw
from ...plan.swarm import swarm_scale as ss
from ...plan.swarm import canary_files
from ...plan.lifecycle import warm as warm_plan
from ...plan.judging.canary import canary_spec
from ...plan.judging.shadow import shadow_spec
from ...plan.lifecycle.env_values import SecretValueError, env_file
from ...plan.lifecycle.release_spec import ReleaseSpec, release_spec
from ...plan.lifecycle.releases import FAILED, LIVE, History, ReleaseRecord, new_release_id, prune_selection
from ...plan.swarm.swarm_plan import SwarmPlan, deploy_plan, proxy_config_for, rollback_plan
from ...plan.edge.proxy_config import live_release, standby_flag, standby_of
from ...plan.swarm.swarm_proxy import standby_address, tasks_address
from ...plan.lifecycle.switch_plan import clear_flags, guard_spec, proxy_move, proxy_test_staged
from ...plan.edge.proxy_config import CONFIG_FILE, STAGED_FILE
from ...plan.swarm.swarm_plan import NODE_PROXY_TASK
from ...secrets import Secret
from ..lifecycle import preflight
from . import swarm_accessories
from ..data.accessories import specs_for
from ..lifecycle.deploy_result import DeployOptions, DeployResult, HostOutcome
from ..lifecycle.host_calls import PREVIOUS, mapped
from ..lifecycle.host_calls import why as _why
from ..lifecycle.own_config import OwnConfig
from ...plan.operate.hooks import HookContext
from ...plan.lifecycle.target_limits import refuse
from ..operate.hooks import HookRunner
from ..lifecycle.host_state import HostState
from ..hosts import ssh_connector
from ..env import Env
from ..lifecycle.release_images import ReleaseImages, proxy_image_for
from .swarm_site import SwarmSite, at_once
from . import swarm_tls
from ..edge.tls import files_pair
from ..lifecycle.rollout import Cancel, unexpected
from ..lifecycle.transaction import BEFORE, SWITCHED_BACK, after_switch, deploy_failure, failure_outcome, release_record, rollback_failure, run_transaction, take_lock, best_effort
from ..judging.canary import CanaryGate
from ..lifecycle.switch import SwitchBackFailed, SwitchFailed
from ..lifecycle.switch_failures import after_verified, record_live, rollback_guarded, switch_guarded
from ...plan.lifecycle.steps import PlannedStep, Step
from ...plan.swarm.swarm_accessories import planned_steps as swarm_accessory_rows
from ..data.accessories import read_files
from .swarm_judges import SwarmJudges, put_back

R = TypeVar("R")
REPLICAS = "replicas"  # the record's extra: what each service ran with (rollback runs it again)


class SwarmSwitchBackFailed(SwitchBackFailed):
    """The verify failed and putting the previous configuration back failed too."""


@dataclass
class SwarmJob:
    """What deploy and rollback share: the site, the manager's state, the lock."""

    env: Env
    emit: Emit
    manager: object = None
    site: SwarmSite | None = None
    # address -> a node's connector; None: ssh_connector with the environment's settings
    # (a test gives scripted nodes: tests/support/fake_swarm.py, tests/faults/test_swarm_faults.py)
    nodes: Callable[[str], object] | None = None

    def unconnected(self) -> tuple[SwarmSite, HostState]:
        """The site and the manager's state, nothing connected yet (a dry run stops here)."""
        env = self.env
        self.manager = self.manager or env.connectors()[0]  # a Swarm's one connector: its manager
        nodes = self.nodes or (lambda address: ssh_connector(env.loaded, env.settings, address))
        self.site = SwarmSite(self.manager, nodes, env.names, env.layout, self.emit)
        return self.site, HostState(self.manager, env.layout, self.emit)

    def open(self) -> tuple[SwarmSite, HostState]:
        """Connected to the manager, checked to be one: one call (`docker info`) says that
        and the engine's version, which a host's preflight asks `docker version` for."""
        site, state, _ = self.open_beside(None)
        return site, state

    def open_beside(self, first: Callable[[SwarmSite, HostState], R] | None) -> tuple[SwarmSite, HostState, R | None]:
        """As `open`, with `first` (the command's first reads: nothing that changes the Swarm or
        its state) run while the manager check's `docker info` is under way (issue 26: a round
        trip of 0.2-0.4 s on a loaded manager that nothing else waited for). A failed check is
        raised in its place, whatever `first` found or raised on a node that is no manager."""
        site, state = self.unconnected()
        timer = Timer(self.emit, "connect", host=self.manager.host)
        self.manager.connect()

        def check() -> None:
            version = site.check_manager()
            timer.done(f"docker {version}" if version else "")

        if first is None:
            check()
            return site, state, None
        with ThreadPoolExecutor(max_workers=1) as pool:
            checking = pool.submit(check)
            try:
                found = first(site, state)
            except BaseException:
                checking.result()  # a node that is no manager is said as such (exit 4), not by what `first` met
                raise
            checking.result()
        return site, state, found

    def close(self) -> None:
        if self.site is not None:
            self.site.close()
        if self.manager is not None:
            self.manager.close()


def _switch(site: SwarmSite, plan: SwarmPlan, port: int, emit: Emit, host: str,
            checkpoint: Callable[[], None] = lambda: None, previous: bytes | None = None,
            config: str | None = None, nodes: list[sw.Node] | None = None,
            running: CommandResult | None = None) -> None:
    """Route `config` (the plan's own configuration when None) then verify on every node; a
    failed verify puts the previous configuration (`previous`: what the nodes served before
    this command touched them; None: read now) back on every node (raises SwitchFailed), or
    SwarmSwitchBackFailed if that fails too. A signal seen after the route or the verify
    (`checkpoint`) switches back as well, as on hosts (services/lifecycle/switch.py): an
    interrupted deploy never ends with its release live. The ready nodes are listed once
    for the whole switch (each listing is two manager calls): `nodes`, when the caller just
    listed them for it; `running`: the proxy service's image, when the caller just read it."""
    nodes = site.ready_nodes() if nodes is None else nodes
    previous = previous if previous is not None else site.live_config(nodes)
    # Every node's DNS knows the release's tasks before any node routes to them (bounded).
    _verified_switch(site, plan, port, emit, host, nodes, f"proxy -> {plan.target.release}",
                     lambda: site.route(plan, config if config is not None else plan.proxy_config, nodes=nodes,
                                        live=previous, resolve=[tasks_address(s.name) for s in plan.services],
                                        running=running),
                     lambda: put_back(site, plan, previous, port) if previous is not None else None, checkpoint)


def _switch_by_flag(site: SwarmSite, plan: SwarmPlan, port: int, emit: Emit, host: str, nodes: list[sw.Node],
                    previous: bytes, flag: str, checkpoint: Callable[[], None] = lambda: None,
                    raised: Callable[[], None] = lambda: None) -> None:
    """A rollback to the live configuration's standby (plan/swarm/swarm_proxy.py): its flag
    raised on every node at once is the switch, with no reload and no manager call, then
    the verify as any switch. A failure lowers the flag on every node and waits until each
    answers from the previous release again (SwitchFailed), or SwarmSwitchBackFailed.
    `raised`: called once the flag is up on every node, before the verify (the target's own
    configuration is staged meanwhile, and swapped in after it: `SwarmStaging`)."""
    proxies = site.standby_proxies(nodes)

    def raise_flag() -> int:
        at_once(proxies, lambda proxy: proxy.raise_flag(flag))
        raised()
        return len(proxies)

    def lower_flag() -> None:
        at_once(proxies, lambda proxy: proxy.lower_flag(flag))
        site.wait_answers(live_release(previous), port, plan.verify.path, nodes=nodes)

    _verified_switch(site, plan, port, emit, host, nodes,
                     f"proxy -> {plan.target.release} (its standby flag on every node: no reload)",
                     raise_flag, lower_flag, checkpoint)


def _verified_switch(site: SwarmSite, plan: SwarmPlan, port: int, emit: Emit, host: str, nodes: list[sw.Node],
                     detail: str, route: Callable[[], int], back: Callable[[], object],
                     checkpoint: Callable[[], None]) -> None:
    """`route` (returns the nodes switched), then the verify through every node; whatever
    fails (or a signal after either), `back`, then SwitchFailed, or SwarmSwitchBackFailed."""
    timer = Timer(emit, "route", host=host, detail=detail)
    try:
        count = route()
        timer.done(f"{count} node{'s' if count != 1 else ''}")
        checkpoint()
        verify = Timer(emit, "verify", host=host, detail=plan.verify.path)
        seconds = site.verify(plan, port, nodes)
        verify.done(f"{plan.target.release} answers through every node's proxy ({seconds:.2f}s)")
        checkpoint()
    except Exception as exc:  # noqa: BLE001 - whatever failed, the previous release goes back
        timer = Timer(emit, "switch back", host=host)
        try:
            back()
            timer.done()
        except Exception as again:  # noqa: BLE001
            timer.failed(_why(again))
            raise SwarmSwitchBackFailed(f"{host}: {_why(exc)}; switching back failed: {_why(again)}",
                                        hint="the proxies may not all serve one release: `deployctl status`") from None
        raise SwitchFailed(f"{host}: {_why(exc)}", hint="the previous release is serving again") from None


class SwarmStaging:
    """After a switch by the standby flag, the target's own configuration on every node
    (services/lifecycle/own_config.OwnConfig runs it, as a host's): staged on every node, each
    node's proxy task looked up and the file tested there (SwarmSite.stage), swapped in on every
    node at once (SwarmSite.swap_staged: one command per node, no `docker exec`), the earlier
    flags cleared and a failed switch's staged file removed on every node at once. A refused
    or failed staging removes what it wrote on every node before it raises. No manager call:
    it runs while the manager records."""

    def __init__(self, site: SwarmSite, nodes: list[sw.Node], config: str, previous: bytes, flag: str,
                 host: str) -> None:
        self.site, self.nodes, self.config, self.previous, self.flag = site, nodes, config, previous, flag
        self.where = host

    def stage(self) -> dict[str, str]:
        try:
            return self.site.stage(self.nodes, self.config, self.previous)
        except BaseException:
            try:
                self.drop()
            except Exception:  # noqa: BLE001 - a lost node keeps its file (harmless: never renamed in)
                pass
            raise

    def make_live(self, staged: dict[str, str]) -> None:
        self.site.swap_staged(self.nodes, staged)

    def clear_flags(self) -> None:
        at_once(self.site.standby_proxies(self.nodes), lambda proxy: proxy.clear_flags(keep=self.flag))

    def drop(self) -> None:
        at_once(self.site.standby_proxies(self.nodes), lambda proxy: proxy.drop_staged())


def _standby(state: HostState, replaced: str | None, target: str, warm_window: float,
             record: ReleaseRecord | None = None) -> ReleaseSpec | None:
    """The release a switch to `target` leaves warm (plan/lifecycle/warm.py), as its
    configuration's standby; None without a warm window or a record of it. `record`: its
    deploy record when the caller read the history already."""
    if not replaced or replaced == target or warm_window <= 0:
        return None
    record = record if record is not None and record.release == replaced else state.history().deployed(replaced)
    if record is None or not record.spec:
        return None
    spec = ReleaseSpec.from_dict(record.spec)
    return spec if any(s.routed for s in spec.services) else None


def _standby_flag(live: str, standby: ReleaseSpec | None) -> str:
    return standby_flag(live, standby.release, str(int(time.time() * 1000))) if standby is not None else ""


def _retire(site: SwarmSite, plan: SwarmPlan, live: str, drain: float, emit: Emit, host: str, *,
            previous: str | None = None, warm_window: float = 0.0,
            services: dict[str, tuple[str, str, int]] | None = None) -> dict[str, tuple[str, str, int]]:
    """After the drain, every other release's services to 0 tasks (kept for rollback), but
    the release the switch replaced (`previous`) while its warm window lasts (plan/lifecycle/warm.py,
    as on hosts): its tasks keep running out of the proxies, so a rollback until then is a
    proxy switch. The manager records the window in its state dir (warm.json). The drain is
    what remains of it (plan/lifecycle/warm.drain_left, as on hosts): a release that left the
    proxies when it went warm (warm.json's `since`) drained long ago; one that may have served
    until this switch, or that the record does not know, waits the whole drain."""
    services = site.services() if services is None else services  # a warm rollback's listing (no change since)
    releases = {release for release, _, _ in services.values()}
    now = time.time()
    warm_before = warm_plan.parse_warm(site.manager.read_file(site.layout.warm))
    warm = warm_plan.after_switch(live, previous if previous in releases else None, now=now, window=warm_window)
    site.manager.put_file(site.layout.warm, warm_plan.render_warm(warm), mode=0o600)
    kept = {w.release for w in warm}
    others = [name for name, (release, _, count) in services.items()
              if release != live and release not in kept and count > 0]
    if others:
        wait = warm_plan.drain_left({services[name][0] for name in others}, warm_before=warm_before, now=now,
                                    drain=drain)
        if wait > 0:
            time.sleep(wait)
        timer = Timer(emit, "stop", host=host, detail=f"scale {len(others)} service(s) to 0")
        site.run(plan.retire(others))
        timer.done()
    for w in warm:
        emit(Message(f"{w.release} keeps its tasks (out of the proxies) for {warm_window:g}s: a rollback until "
                     "then is a proxy switch", host=host))
    return services  # the listing (its counts as they were before the scale): prune's names


def _stop_expired_warm(site: SwarmSite, keep: set[str], emit: Emit, host: str) -> list[str]:
    """Under the lock, as on hosts (services/lifecycle/retire.stop_expired_warm): a warm release past
    its window goes to 0 tasks, never one in `keep` (the live release, a rollback's target).
    The window comes from the manager's warm.json, never from a process's memory."""
    warm = warm_plan.parse_warm(site.manager.read_file(site.layout.warm))
    if not warm:
        return []
    stop, remain = warm_plan.expired(warm, now=time.time(), keep=keep)
    names = [name for name, (release, _, count) in (site.services() if stop else {}).items()
             if release in stop and count > 0]
    if names:
        timer = Timer(emit, "warm", host=host, detail=f"{', '.join(stop)} past its warm window: scale to 0")
        site.run(sw.scale({name: 0 for name in names}))
        timer.done()
    site.manager.put_file(site.layout.warm, warm_plan.render_warm(remain), mode=0o600)
    return names  # scaled to 0 here


def _last_live(state: HostState, release: str | None, history: History | None = None) -> ReleaseRecord | None:
    """The latest record of `release` that left it live (its deploy, a rollback to it, or
    a scale of it): what it last ran with, and the scale overrides then in force.
    `history`: as the caller read it already (each read is a round trip to the manager)."""
    if release is None:
        return None
    records = (history or state.history()).records
    return next((r for r in reversed(records) if r.release == release and r.outcome == LIVE), None)


def _overrides(state: HostState, history: History | None = None, current: str | None = None) -> ss.Overrides:
    """The environment's scale overrides, carried forward by every record (plan/swarm/swarm_scale.py)."""
    record = _last_live(state, current if history is not None else state.current(), history)
    return ss.overrides_in(record.extra if record is not None else None)


def _prune(site: SwarmSite, state: HostState, keep: int, live: str, emit: Emit, host: str,
           services: dict[str, tuple[str, str, int]] | None = None) -> None:
    """Releases beyond `keep` removed. `services`: the retire's listing of this command (under
    the lock, after the switch: no service was created or removed since; only counts changed,
    which prune does not read), else listed now."""
    by_release: dict[str, list[str]] = {}
    for name, (release, _, _) in (site.services() if services is None else services).items():
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


def manager_of(env: Env, connectors: list | None):  # type: ignore[no-untyped-def]
    """`deploy(connectors=...)` / `rollback(connectors=...)` on a Swarm: its one connector is
    the manager's (as services/hosts.connectors_for gives it); None: the job makes it."""
    if connectors is None:
        return None
    if len(connectors) != 1:
        raise UsageError(f"environments.{env.name} (target = \"swarm\") is reached through its one manager "
                         f"(environments.{env.name}.manager); {len(connectors)} connectors were given",
                         hint="give the manager's connector alone")
    return connectors[0]


def deploy_env(env: Env, images: ReleaseImages, secrets: dict[str, Secret], emit: Emit, *,
               options: DeployOptions = DeployOptions(), registry_password: Secret | None = None,
               registry_username: str | None = None, manager=None, nodes: Callable[[str], object] | None = None,
               now: float | None = None) -> DeployResult:  # type: ignore[no-untyped-def]
    """A Swarm's deploy (services/lifecycle/deploy.deploy hands it its Env)."""
    loaded, env_name = env.loaded, env.name
    config, environment = loaded.config, env.settings
    refuse_jobs_on_swarm(config, env_name)  # refused before anything is touched (plan/lifecycle/target_limits.py)
    refuse_stop_first(config, env_name)
    # tls = "files": the pair checked (key, names, dates) before anything changes, as on hosts.
    pair = files_pair(env) if config.tls_for(env_name) == "files" else None
    emit = serialized(emit)
    unrecorded = sorted(name for name, s in config.services.items() if s.schema_version)
    if unrecorded:  # a record-only feature: the deploy goes on, the user is told what is missing
        emit(Message(f"services.{unrecorded[0]}.schema_version is not run on a Swarm target yet: this release records "
                     "no schema, so a later rollback to it is not checked against the schema (docs/backups.md)",
                     level="warning"))
    job = SwarmJob(env, emit, manager, nodes=nodes)
    try:
        def read(site: SwarmSite, state: HostState) -> tuple[History, str | None]:
            site.prefetch_nodes()  # the nodes' handshakes while the manager prepares (the route's, the judges')
            return state.history(), state.current()

        # The history and `current` read once (the release id, the scale overrides, the hooks'
        # context), while the manager is checked.
        site, state, (history, current) = job.open_beside(read)
        host = job.manager.host
        login_user = registry_username or (config.registry.username if config.registry else None)
        login: str | None = None  # the manager's client config directory holding this command's login
        if config.registry and login_user and registry_password is not None:
            login = preflight.registry_login(job.manager, emit, config.registry.server, login_user, registry_password)
        release = new_release_id(time.time() if now is None else now, images.revision, history.ids())
        emit(Message(f"release {release} to {env_name} (Swarm, manager {host})"))
        counts, scaled = ss.for_deploy({name: s.replicas for name, s in config.services.items()},
                                       _overrides(state, history, current))
        if scaled:
            emit(Message("kept the scaled task counts (deployctl scale): " + ", ".join(
                f"{name}={count}" for name, (count, _) in sorted(scaled.items())), host=host))
        plan = swarm_deploy_plan(env, release, images, registry_auth=login, replicas=counts, options=options)
        work = SwarmDeploy(site, state, plan, env, secrets, options, emit, registry_auth=login, scaled=scaled)
        # The hooks as on hosts (services/operate/hooks.py): pre_deploy before the lock, pre_migrate
        # before the migrations, post_deploy and on_revert once the lock is released.
        hooks = HookRunner.for_config(loaded, emit, enabled=options.hooks, secrets=secrets,
                                      stopped=work.cancel.is_set)
        context = HookContext(config.app, env_name, "deploy", release, current or "", images.revision or "",
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
            swarm_tls.certificate(site, env, release, pair)
        return DeployResult(release, images.revision, hosts)
    finally:
        if job.manager is not None:
            preflight.registry_logout(job.manager)
        job.close()


def swarm_deploy_plan(env: Env, release: str, images: ReleaseImages, *,
                      registry_auth: bool | str = False, replicas: dict[str, int] | None = None,
                      options: DeployOptions = DeployOptions()) -> SwarmPlan:
    config, environment, layout = env.config, env.settings, env.layout
    spec = release_spec(config, env.name, release, images.revision, images.images, proxy_image_for(config, images),
                        dirty=images.dirty)
    services = sw.release_services(config, environment, env.name, spec, layout, replicas)
    migrations = {name: list(s.migrate) for name, s in config.services.items() if s.migrate}
    return deploy_plan(spec, services, env.names, layout.proxy_dir, proxy_port=env.proxy_port,
                       drain=environment.rollout.drain, migrations=migrations, registry_auth=registry_auth,
                       guard=guard_spec(environment.rollout, options.no_guard), tls_port=env.tls_port,
                       shadow=shadow_spec(environment.rollout, options.shadow),
                       canary=canary_spec(environment.rollout, options.canary))


class SwarmDeploy:
    """A Swarm's part of a deploy: one HostJob of services/lifecycle/rollout.py, the manager its host.
    Its phases, records and outcomes are a host's (services/lifecycle/transaction.py): a failure before
    the switch removes what it started (`failed`, exit 6), a failed verify or the guard
    switches back (`reverted`, exit 6), a switch back that fails is `uncertain` (exit 7)."""

    def __init__(self, site: SwarmSite, state: HostState, plan: SwarmPlan, env: Env,
                 secrets: dict[str, Secret], options: DeployOptions, emit: Emit, *, registry_auth: bool | str,
                 scaled: ss.Overrides, cancel: Cancel | None = None) -> None:
        self.site, self.state, self.plan, self.env = site, state, plan, env
        cancel = cancel or Cancel()
        # The shadow window's and the canary's meeting points: a Swarm is their one site.
        shadow_gate = CanaryGate([], plan.shadow, emit) if plan.shadow is not None else None
        gate = CanaryGate([], plan.canary, emit) if plan.canary is not None else None
        self.secrets, self.options, self.emit, self.cancel = secrets, options, emit, cancel
        self.registry_auth, self.scaled = registry_auth, scaled
        self.host = site.manager.host
        self.release = plan.target.release
        self.replicas = {s.service: s.replicas for s in plan.services}
        self.previous: str | None = None
        self.phase = BEFORE
        self.step = "prepare"
        self.started: float | None = None
        self.port = env.proxy_port
        self.rollout = env.settings.rollout
        self.switched = 0.0  # when the route began: the guard judges from there
        for meeting in (shadow_gate, gate):
            if meeting is not None:
                meeting.stopped = cancel.is_set
        # The shadow window, the canary and the guard, with their ways back (services/swarm/swarm_judges.py).
        self.judges = SwarmJudges(self, site, plan, self.port, shadow_gate, gate)
        self.promoted = None  # the canary that promoted: its watchdogs armed until the switch is verified
        self._listed: dict[str, tuple[str, str, int]] | None = None  # the retire's listing, for prune

    def lock(self) -> None:
        take_lock(self.state, self.emit, host=self.host, action="deploy", release=self.release,
                  message=self.options.message, force=self.options.force_unlock,
                  rollout=self.rollout)
        self.started = time.time()

    def unlock(self) -> None:
        self.state.release()

    # -- the steps: what each phase runs, with the rows `--dry-run` prints for it -------------

    def steps(self) -> list[Step]:
        """Every step of this deploy under the lock, in the order it runs them."""
        return [*self.preparation(), *self.migration(), *self.bringing_up(), *self.switching(), *self.after()]

    def preparation(self) -> list[Step]:
        """What `prepare` runs: the overlay network, the accessories, the secrets, HTTPS
        state; nothing the Swarm serves changes."""
        site, plan, layout, names = self.site, self.plan, self.env.layout, self.env.names
        accessories = specs_for(self.env, self.env.settings.accessories)
        steps = [
            Step("prepare", (PlannedStep("state", f"on the manager: read {layout.current}; make {layout.root}'s "
                                                  "directories"),), self._read_state),
            Step("recover", (PlannedStep("recover", "a shadow window or a canary a killed deployctl left on the "
                                                    "nodes: the live release's configuration back, its watchdogs "
                                                    "and its release's services removed, recorded `aborted`"),),
                 self.judges.recover),
            Step("warm", (PlannedStep("warm", "scale warm releases past their window (rollout.warm_window) to 0, "
                                              "never the live one"),),
                 lambda: _stop_expired_warm(site, {r for r in (self.previous,) if r}, self.emit, self.host)),
            Step("network", (PlannedStep("network", "the environment's overlay network, only if missing",
                                         tuple(sw.create_network(names.network, names.labels("network")))),),
                 self._network),
            # Accessories first, as on ssh hosts: created when absent (pinned by their
            # placement), never recreated; the release's services reach them by name.
            Step("accessories", tuple(swarm_accessory_rows(self.env.config, self.env.name, layout, files=read_files(
                self.env.loaded, accessories))), lambda: self._accessories(accessories)),
            Step("secrets", (*plan.secret_rows(names), *self._env_file_rows()),
                 lambda: _upload(site, plan, self.secrets, self.emit, self.host)),
            # The challenge location (acme), or HTTPS state removed (off), on every node.
            Step("tls", tuple(swarm_tls.prepare_rows(site, self.env)), lambda: swarm_tls.prepare(site, self.env)),
        ]
        if plan.network:
            steps.append(Step("network", tuple(plan.network_rows()),
                              lambda: site.ensure_release_network(self.release, plan.network)))
        return steps

    def migration(self) -> list[Step]:
        """What `migrate` runs: each migration once, as a replicated job."""
        return [Step("migrate", tuple(self.plan.migration_rows(name, argv)),
                     lambda name=name, argv=argv: self.site.run_job(name, argv))  # type: ignore[misc]
                for name, argv in self.plan.migrations]

    def bringing_up(self) -> list[Step]:
        """The new release's services beside the live ones, until every task is healthy."""
        plan = self.plan
        files = [s.env_file for s in plan.services if s.env_file]
        forget = (PlannedStep("secrets", "on the manager: the env files go once the services exist (each "
                                         "service's spec holds its env)", ("rm", "-f", "--", *files)),) if files else ()
        return [Step("start", tuple(plan.start_rows()), self._start),
                Step("start", forget, lambda: _forget_env(self.site, plan, self.emit, self.host)),
                Step("health", tuple(plan.health_rows()), self._health)]

    def switching(self) -> list[Step]:
        """[the shadow window], [the canary], then route and verify (a failed verify switches
        back)."""
        steps = [Step("shadow", tuple(self.plan.shadow_rows()), self.judges.judge_shadow)] if self.plan.shadow else []
        if self.plan.canary:
            steps.append(Step("canary", (*self.plan.canary_rows(), *self._canary_file_rows()), self._canary))
        return steps + [Step("switch", (*self.plan.route_rows(), *self.plan.verify_rows()), self._switch)]

    def after(self) -> list[Step]:
        """Once verified: the record, [the guard], then retire and prune (best effort)."""
        steps = [Step("record", tuple(self.plan.record_rows()), self._record_live)]
        if self.plan.guard is not None:
            steps.append(Step("guard", tuple(self.plan.guard_rows()), self._guard))
        return steps + [Step("stop", tuple(self.plan.retire_rows()), self._retire),
                        Step("prune", (PlannedStep("prune", f"keep {self.rollout.keep} releases (never the live or "
                                                            "previous good): their services, secrets and env files "
                                                            "removed"),), self._prune)]

    # -- HostJob ------------------------------------------------------------------------------

    def prepare(self) -> None:
        try:
            for step in self.preparation():
                self.step = step.name
                step.action()
        except BaseException as exc:
            raise self._abandon(exc) from None

    def migrate(self, before: Callable[[], object] | None = None) -> None:
        """Once, before the new tasks start (as on hosts): no task of this release runs on a
        schema it does not know, and a failed migration leaves no task to remove. `before`
        (the pre_migrate hook) first when there is a migration to run."""
        try:
            self.step = "migrate"
            steps = self.migration()
            if before is not None and steps:
                before()
            for step in steps:
                step.action()
        except BaseException as exc:
            raise self._abandon(exc) from None

    def run(self) -> None:
        """Bring up, [shadow], [canary], switch: their failures give the outcomes every
        target's do (services/lifecycle/switch_failures.py); then record, the promoted
        canary's watchdogs removed, [guard], retire, prune."""
        switch_guarded(self, lambda: self._run_steps([*self.bringing_up(), *self.switching()]),
                       record=lambda outcome, why: self._record(outcome, why), abandon=self._abandon_switch)
        record, *guard, stop, prune = self.after()
        record_live(self, record.action)
        if self.promoted is not None:
            after_verified(self, lambda: self.judges.promoted(self.promoted))
        for step in guard:
            self.step = step.name
            step.action()
        after_switch(self.emit, self.host, stop.action, prune.action)

    def _run_steps(self, steps: list[Step]) -> None:
        for step in steps:
            self.step = step.name
            step.action()

    # -- the steps' actions -----------------------------------------------------------------

    def _read_state(self) -> None:
        self.previous = self.state.current()
        self.state.prepare()

    def _network(self) -> None:
        if self.site.ensure_network():
            self.emit(Message(f"created overlay network {self.site.names.network}", host=self.host))

    def _accessories(self, accessories: list) -> None:  # type: ignore[type-arg]
        for accessory in accessories:
            swarm_accessories.boot(self.env, self.site, accessory, self.secrets, self.emit,
                                   registry_auth=self.registry_auth)

    def _env_file_rows(self) -> list[PlannedStep]:
        """What `_upload` writes on the manager beside the Docker secrets, said without a value."""
        files = [s for s in self.plan.services if s.env_file]
        rows = [PlannedStep("secrets", f"on the manager: mkdir {self.site.layout.release_secrets(self.release)} "
                                       "(mode 0700)")] if files else []
        return rows + [PlannedStep("secrets", f"on the manager: write {s.env_file} (mode 0600): "
                                              f"{', '.join(sorted(s.secret_env))} (values from the secret source), "
                                              "read by `docker service create --env-file`")
                       for s in files]

    def _start(self) -> None:
        timer = Timer(self.emit, "start", host=self.host, detail=f"{len(self.plan.start)} service(s)")
        # Independent creates at once (one manager round trip each, 0.1-0.5 s under load):
        # whichever fails, the abandon removes every service of the release, as before.
        at_once(list(self.plan.start), self.site.run)
        timer.done()

    def _health(self) -> None:
        self.site.wait_ready(self.plan.wanted, self.plan.ready_timeout, checks=_checks(self.site, self.plan),
                             checkpoint=self.cancel.check)
        self.cancel.check()
        if self.plan.shadow is not None or self.plan.canary is not None:
            # What every node served before this deploy touches the proxies: the shadow
            # window's stop and the canary's abort put it back (else read by the switch).
            self.judges.live_only = self.site.live_config()

    def _canary_file_rows(self) -> list[PlannedStep]:
        """The canary's own files, as the run removes them (services/swarm/swarm_judges.py)."""
        return canary_files.rows(self.env.layout)

    def _canary(self) -> None:
        """Split on every node, one verdict: promoted (its watchdogs armed until the switch is
        verified) or aborted (CanaryAborted, after going back)."""
        self.promoted = self.judges.judge_canary()

    def _switch(self) -> None:
        self.switched = time.time()
        # The ready nodes listed as the switch starts (never an earlier listing: 2d638ed), and
        # the proxy service's image (the route's first look), both asked at once while the
        # history is read below: independent round trips, one after the other before, 0.3-1 s
        # each under load (issue 26).
        with ThreadPoolExecutor(max_workers=2) as pool:
            listed = pool.submit(self.site.ready_nodes)
            image = pool.submit(self.site.proxy_image)
            # The release this switch replaces stays warm: the configuration can route to it by a
            # flag, so a rollback inside its window needs no reload (plan/swarm/swarm_proxy.py).
            standby = _standby(self.state, self.previous, self.release, self.rollout.warm_window)
            config = proxy_config_for(self.plan.target, standby, _standby_flag(self.release, standby))
        # What the nodes serve read from them: a failed verify and the guard's revert put it back.
        # Nothing touched the proxies since the health gate unless a judge ran (it read it then).
        try:
            nodes = listed.result()
            if self.judges.live_only is None:
                self.judges.live_only = self.site.live_config(nodes)
            _switch(self.site, self.plan, self.port, self.emit, self.host, self.cancel.check,
                    previous=self.judges.live_only, config=config, nodes=nodes, running=image.result())
        except SwitchBackFailed:
            raise  # uncertain: the canary's watchdogs, still armed, put the live-only proxy back
        except BaseException:
            if self.promoted is not None:  # switched back to the live-only configuration
                best_effort(self.emit, self.host, "watchdog", self.promoted.disarm)
            raise

    def _record_live(self) -> None:
        self.state.set_current(self.release)
        self._record(LIVE, extra=self.judges.verdicts())

    def _guard(self) -> None:
        if self.judges.guarded():
            # The replaced release keeps its tasks for the watch: the revert is a proxy switch
            # (services/judging/judges.py: the phase, the record and the exit code as on hosts).
            self.judges.guard(since=self.switched, stopped=self.cancel.is_set)

    def _retire(self) -> None:
        self._listed = _retire(self.site, self.plan, self.release, self.plan.drain, self.emit, self.host,
                               previous=self.previous, warm_window=self.rollout.warm_window)

    def _prune(self) -> None:
        _prune(self.site, self.state, self.rollout.keep, self.release, self.emit, self.host, self._listed)

    def _abandon_switch(self, exc: BaseException) -> BaseException:
        """Before the route: a shadow window's mirror goes first (the live-only configuration
        back on every node), then what the release started."""
        best_effort(self.emit, self.host, "mirror", self.judges.unmirror)
        return self._abandon(exc)

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
        if self.phase == SWITCHED_BACK:
            time.sleep(self.plan.drain)  # requests the new release's tasks still hold
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


def rollback_target(state: HostState, to: str | None, host: str = "manager",
                    history: History | None = None) -> tuple[str | None, str, ReleaseRecord]:
    """(live, target, the target's deploy record): the same choice, and the same refusals
    (exit 6: nothing changed), as a host's rollback (plan/lifecycle/rollout.rollback_target)."""
    history = history or state.history()
    current = state.current()
    target = rollout_plan.rollback_target([rollout_plan.HostReleases(host, current, history.previous_good(current))],
                                          to)
    record = history.deployed(target)
    if record is None or not record.spec:
        raise RollbackError(f"{host}: {target} was never deployed successfully here (or its record has no spec)",
                            hint="`deployctl releases --env ...` lists the releases you can roll back to")
    return current, target, record


def swarm_rollback_plan(env: Env, record: ReleaseRecord,
                        last: ReleaseRecord | None = None, scaled: ss.Overrides | None = None) -> SwarmPlan:
    """From the release's own record (its spec), not today's deploy.toml: the counts it last
    ran with (`last`: its latest live record), with the environment's scaled counts."""
    config = env.config
    spec = ReleaseSpec.from_dict(record.spec)
    replicas = {k: int(v) for k, v in ((last or record).extra or {}).get(REPLICAS, {}).items()}
    replicas = ss.for_rollback(replicas, scaled or {})
    services = [sw.SwarmService(service=s.service, name=s.container, image=s.image, port=s.port,
                                replicas=replicas.get(s.service, config.services.get(s.service).replicas
                                                      if s.service in config.services else 1),
                                env={}, health=s.health, routed=s.routed)
                for s in spec.services]
    return rollback_plan(spec, services, env.names, env.layout.proxy_dir, proxy_port=env.proxy_port,
                         drain=env.settings.rollout.drain, tls_port=env.tls_port)


def rollback_job(env: Env, site: SwarmSite, state: HostState, to: str | None, emit: Emit, *, message: str = "",
                 force_unlock: bool = False) -> tuple[str | None, str, ReleaseRecord, "SwarmRollbackJob | None"]:
    """(live, target, the target's deploy record, the job that rolls back to it; None when
    the target is live already), from the manager's history and services: what a rollback
    runs and its dry run prints."""
    host = site.manager.host
    # The services listed (one command on the manager) beside the history's and `current`'s
    # reads (files): independent round trips, each 0.1-0.4 s on a loaded manager (issue 26).
    with ThreadPoolExecutor(max_workers=1) as pool:
        listing = pool.submit(site.services)
        history = state.history()  # read once for every choice below
        current, target, record = rollback_target(state, to, host, history)
        if target == current:
            return current, target, record, None
        scaled = _overrides(state, history, current)
        plan = swarm_rollback_plan(env, record, _last_live(state, target, history), scaled)
        kept = listing.result()
    missing = [s.name for s in plan.services if s.name not in kept]
    if missing:
        raise RollbackError(f"{host}: the services of {target} are gone ({', '.join(missing)}): pruned?",
                            hint="deploy that revision again instead")
    if all(kept[s.name][2] == s.replicas > 0 for s in plan.services):
        # Warm (its window: plan/lifecycle/warm.py): its tasks run at the counts it runs with, so
        # nothing is scaled up, and a failure leaves them running as they were.
        plan = replace(plan, start=(), undo=())
    live = history.deployed(current) if current else None
    return current, target, record, SwarmRollbackJob(site, state, plan, current, message, force_unlock, env, emit,
                                                     scaled, Cancel(), live, kept)


def rollback_env(env: Env, emit: Emit, *, to: str | None = None, message: str = "",
                 force_unlock: bool = False, manager=None, hooks: bool = True,  # type: ignore[no-untyped-def]
                 secrets: dict[str, Secret] | None = None,
                 nodes: Callable[[str], object] | None = None) -> list[SwarmRollback]:
    """A Swarm's rollback (services/lifecycle/rollback.rollback hands it its Env)."""
    loaded, env_name, environment = env.loaded, env.name, env.settings
    emit = serialized(emit)
    job = SwarmJob(env, emit, manager, nodes=nodes)
    try:
        def choose(site: SwarmSite, state: HostState):  # type: ignore[no-untyped-def]
            site.prefetch_nodes()  # the nodes' handshakes while the manager takes the lock
            return rollback_job(env, site, state, to, emit, message=message, force_unlock=force_unlock)

        # The target chosen (the manager's history and services read) while the manager is checked.
        site, state, chosen = job.open_beside(choose)
        host = job.manager.host
        current, target, record, work = chosen
        if work is None:
            emit(Message(f"{target} is already live", host=host))
            return [SwarmRollback(target, current, 0.0, 0.0, host, "unchanged")]
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
                 force_unlock: bool, env: Env, emit: Emit, scaled: ss.Overrides, cancel: Cancel,
                 live: ReleaseRecord | None = None, kept: dict[str, tuple[str, str, int]] | None = None) -> None:
        self.site, self.state, self.plan, self.current, self.message = site, state, plan, current, message
        self.live = live  # the live release's deploy record (the history read once: rollback_job)
        self.kept = kept  # the environment's release services as rollback_job listed them
        self.force_unlock, self.emit, self.scaled, self.cancel = force_unlock, emit, scaled, cancel
        self.port, self.rollout = env.proxy_port, env.settings.rollout
        self.host = site.manager.host
        self.target = plan.target.release
        self.replicas = {s.service: s.replicas for s in plan.services}
        self.phase = BEFORE
        self.step = "prepare"  # the step under way, for a lost connection's message
        self.started: float | None = None  # the lock taken: `stats` measures time to restore from here
        self.began = time.monotonic()
        self.seconds = 0.0  # to the verified switch
        self._own: OwnConfig[dict[str, str]] | None = None  # after a switch by the standby flag

    def lock(self) -> None:
        take_lock(self.state, self.emit, host=self.host, action="rollback", release=self.target,
                  message=self.message, force=self.force_unlock, rollout=self.rollout)
        self.started = time.time()

    def unlock(self) -> None:
        own, self._own = self._own, None
        if own is not None:
            own.settle()  # the target's own configuration, under the lock
        self.state.release()

    # -- the steps: what each phase runs, with the rows `--dry-run` prints for it -------------

    def steps(self) -> list[Step]:
        """Every step of this rollback under the lock, in the order it runs them."""
        return [*self.preparation(), *self.bringing_up(), self.switching(), *self.after()]

    def preparation(self) -> list[Step]:
        return [Step("prepare", (PlannedStep("state", f"on the manager: the live release must still be "
                                                      f"{self.current or '(none)'} (else refused: run it again)"),),
                     self._check_live),
                Step("warm", (PlannedStep("warm", "scale warm releases past their window (rollout.warm_window) to "
                                                  "0, never the live one or the target"),), self._stop_warm)]

    def bringing_up(self) -> list[Step]:
        plan = self.plan
        start = (plan.start_rows() if plan.start
                 else [PlannedStep("start", f"{self.target} is warm: its tasks run already")])
        return [Step("start", tuple(start), self._start), Step("health", tuple(plan.health_rows()), self._health)]

    def switching(self) -> Step:
        rows, after = self.plan.route_rows(), []
        if not self.plan.start:
            rows = [PlannedStep("route", f"if the live nginx.conf names {self.target} as its standby (the switch "
                                         "that left it warm wrote it so): its flag file on every node at once is "
                                         "the switch, no reload; the target's own nginx.conf is staged and tested "
                                         "on every node beside the verify and made live once it passed (below); "
                                         "else:"), *rows]
            # What `SwarmStaging` runs (the flags' clean-up found missing by a warm case of the
            # dry-run comparison on helper swarmwrites' branch).
            proxy_dir = self.site.layout.proxy_dir
            after = [PlannedStep("route", f"after a switch by the flag, while the verify runs, on every node: the "
                                          f"target's own configuration staged as {STAGED_FILE} and tested in the "
                                          "node's proxy task (nothing reloads it); a file one node refuses is removed "
                                          "on every node and never made live (a warning)",
                                 proxy_test_staged(NODE_PROXY_TASK)),
                     PlannedStep("route", f"once verified, on every node: renamed over {CONFIG_FILE} and nginx "
                                          "reloaded (one command; a failure only warns: the flag serves the target); "
                                          f"a failed verify removes {STAGED_FILE} on every node instead",
                                 proxy_move(NODE_PROXY_TASK, proxy_dir)),
                     PlannedStep("route", "beside that, on every node: the flags of earlier configurations go (not the "
                                          "one raised: the replaced workers may still read it)",
                                 clear_flags(proxy_dir, "<the flag raised>"))]
        return Step("switch", (*rows, *self.plan.verify_rows(), *after), self._switch)

    def _switch(self) -> None:
        """By the live configuration's standby flag when it names this warm target (no
        reload), else the staged route; the verify either way. The configuration written
        names the release left live as the standby in turn."""
        site, plan = self.site, self.plan
        standby = _standby(self.state, self.current, self.target, self.rollout.warm_window, self.live)
        flag = _standby_flag(self.target, standby)
        config = proxy_config_for(plan.target, standby, flag)
        nodes = site.snapshot()  # listed and connected to while the lock was taken
        previous = site.live_config(nodes)
        up = standby_of(previous)
        routed = plan.target.routed
        # The proxy runs the live release's proxy image (each switch rolls it); a target of
        # another one takes the route, which rolls it first.
        same_image = self.live is not None and self.live.spec is not None and \
            ReleaseSpec.from_dict(self.live.spec).proxy.image == plan.target.proxy.image
        if (not plan.start and previous is not None and up is not None and up.release == self.target
                and up.address == standby_address(routed.container, routed.port) and same_image):
            own = self._own = OwnConfig(SwarmStaging(site, nodes, config, previous, up.flag, self.host),
                                        self.target, self.emit)
            try:
                _switch_by_flag(site, plan, self.port, self.emit, self.host, nodes, previous, up.flag,
                                self.cancel.check, raised=own.stage)
            except BaseException:
                own.abandon()  # the staged files go once their tests ended, beside the switch back
                raise
            # Swapped in while the manager records and retires (no manager call there);
            # settled before the lock is released (`unlock`).
            own.finish()
            return
        _switch(site, plan, self.port, self.emit, self.host, self.cancel.check, previous=previous, config=config)

    def after(self) -> list[Step]:
        return [Step("record", tuple(self.plan.record_rows()), self._record_live),
                Step("stop", tuple(self.plan.retire_rows()), self._retire)]

    # -- HostJob ------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Under the lock, again: a deploy or rollback that finished between the choice of
        the target and the lock moved `current`; this rollback was planned against the other.
        Then warm releases past their window go to 0 tasks (never the live one or the target)."""
        for step in self.preparation():
            step.action()

    def run(self) -> str | None:
        """Bring up and switch with a deploy's outcomes (services/lifecycle/switch_failures.py:
        `failed`, `reverted`, `uncertain`); then the record and retire."""
        rollback_guarded(self, lambda: self._run_steps([*self.bringing_up(), self.switching()]),
                         record=lambda outcome, why: self._record(outcome, why))
        self.seconds = time.monotonic() - self.began
        record, stop = self.after()
        record_live(self, record.action)
        after_switch(self.emit, self.host, stop.action)
        return None

    def _run_steps(self, steps: list[Step]) -> None:
        for step in steps:
            self.step = step.name
            step.action()

    # -- the steps' actions -----------------------------------------------------------------

    def _check_live(self) -> None:
        live = self.state.current()
        if live != self.current:
            raise RollbackError(f"{self.host}: the live release changed to {live} while this rollback waited for "
                                "the lock", hint="run the rollback again: it chooses its target from what is live now")

    def _stop_warm(self) -> None:
        stopped = _stop_expired_warm(self.site, {r for r in (self.current, self.target) if r}, self.emit, self.host)
        if self.kept is not None:
            self.kept = {name: (release, service, 0 if name in stopped else count)
                         for name, (release, service, count) in self.kept.items()}

    def _start(self) -> None:
        if self.plan.start:
            timer = Timer(self.emit, "start", host=self.host, detail=f"scale {self.target} back up")
            self.site.run(self.plan.start[0])
            timer.done()
        else:
            self.emit(Message(f"{self.target} is warm: its tasks run already", host=self.host))

    def _health(self) -> None:
        self.site.wait_ready(self.plan.wanted, self.plan.ready_timeout, checks=_checks(self.site, self.plan),
                             checkpoint=self.cancel.check)
        self.cancel.check()

    def _record_live(self) -> None:
        self.state.set_current(self.target)
        self._record(LIVE)

    def _retire(self) -> None:
        # A warm rollback changed no service's count since rollback_job listed them (and the
        # warm stop above): that listing, not two more manager calls after the switch.
        kept = self.kept if not self.plan.start else None
        _retire(self.site, self.plan, self.target, self.plan.drain, self.emit, self.host, previous=self.current,
                warm_window=self.rollout.warm_window, services=kept)

    def clean_up(self) -> None:
        """What this rollback started: the target's services back to 0 tasks (kept; a warm
        target's keep running, as they were)."""
        if self.plan.undo:
            self.site.manager.run(self.plan.undo[0])

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

def scale(env: Env, emit: Emit, counts: dict[str, int], *,
          manager=None) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The live release's services to the given task counts (no new release), waited for
    until every task runs and is healthy, then recorded (a `scale` record of the live
    release): a rollback and the next deploy keep these counts (plan/swarm/swarm_scale.py)."""
    emit = serialized(emit)
    loaded, env_name = env.loaded, env.name
    job = SwarmJob(env, emit, manager)
    try:
        site, state = job.open()
        current = state.current()
        if current is None:
            raise UsageError(f"nothing is deployed to {env_name} yet")
        unknown = sorted(set(counts) - set(loaded.config.services))
        if unknown:
            raise UsageError(f"no service {unknown[0]!r} (services: {', '.join(loaded.config.services)})")
        wanted = {env.names.container(service, current): count for service, count in counts.items()}
        take_lock(state, emit, host=job.manager.host, action="scale", release=current,
                  rollout=env.settings.rollout)
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
