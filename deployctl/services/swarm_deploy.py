"""`deploy`, `rollback` and `scale` for a `swarm` environment (docs/swarm.md).

Under the lock on the manager: create the new release's services beside the live ones,
wait until every task runs and passed its health check, run migrations once, write the
proxy configuration on every node and reload each node's proxy, verify through every
node's proxy that the new release answers, then (after the drain) scale the replaced
release to 0, kept for rollback. A failure before the switch removes the new services; a
failed verify puts the previous configuration back first. Either way the previous release
never stopped serving and the command exits 6. The history and `current` live in the
manager's state dir, as an ssh host keeps them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from ..config import LoadedConfig
from ..errors import DeployctlError, DeployError, RollbackError, UncertainError, UsageError
from ..events import Emit, Message, Timer, serialized
from ..plan import swarm as sw
from ..plan import swarm_scale as ss
from ..plan.build import rfc3339
from ..plan.canary import canary_spec
from ..plan.env_values import SecretValueError, env_file
from ..plan.images import PROXY
from ..plan.lock import LockRecord, lock_timeout
from ..plan.release_spec import ReleaseSpec, release_spec
from ..plan.releases import FAILED, LIVE, REVERTED, UNCERTAIN, ReleaseRecord, new_release_id, prune_selection
from ..plan.stats import timing
from ..plan.swarm_plan import SwarmPlan, deploy_plan, rollback_plan
from ..plan.switch_plan import guard_spec
from ..secrets import Secret
from . import preflight, swarm_accessories
from .accessories import specs_for
from .deploy_result import DeployOptions, DeployResult, HostOutcome
from .host_calls import why as _why
from .host_state import HostState
from .hosts import layout_for, machine, manager_connector, names_for, proxy_port, ssh_connector, who
from .release_images import ReleaseImages, proxy_image_for
from .swarm_site import SwarmSite

REPLICAS = "replicas"  # the record's extra: what each service ran with (rollback runs it again)


class SwarmSwitchBackFailed(UncertainError):
    """The verify failed and putting the previous configuration back failed too."""


@dataclass
class SwarmJob:
    """What deploy and rollback share: the site, the manager's state, the lock."""

    loaded: LoadedConfig
    env_name: str
    emit: Emit
    manager: object = None
    site: SwarmSite | None = None

    def open(self) -> tuple[SwarmSite, HostState]:
        environment = self.loaded.environment(self.env_name)
        self.manager = self.manager or manager_connector(self.loaded, self.env_name)
        preflight.connect(self.manager, self.emit)
        self.site = SwarmSite(self.manager, lambda address: ssh_connector(self.loaded, environment, address),
                              names_for(self.loaded, self.env_name), layout_for(self.loaded, self.env_name),
                              self.emit)
        self.site.check_manager()
        return self.site, HostState(self.manager, layout_for(self.loaded, self.env_name), self.emit)

    def close(self) -> None:
        if self.site is not None:
            self.site.close()
        if self.manager is not None:
            self.manager.close()


def _lock(state: HostState, rollout, emit: Emit, host: str, action: str, release: str, message: str, force) -> None:  # type: ignore[no-untyped-def]
    record = LockRecord(who=who(), when=rfc3339(time.time()), action=action, release=release, message=message,
                        pid=os.getpid(), host=machine(), timeout=lock_timeout(rollout))
    state.acquire(record, force=force)  # says itself what it broke


def _switch(site: SwarmSite, plan: SwarmPlan, port: int, emit: Emit, host: str) -> None:
    """Route then verify on every node; a failed verify puts the previous configuration
    back on every node (raises DeployError), or SwarmSwitchBackFailed if that fails too."""
    previous = site.live_config()
    timer = Timer(emit, "route", host=host, detail=f"proxy -> {plan.target.release}")
    try:
        nodes = site.route(plan, plan.proxy_config)
        timer.done(f"{nodes} node{'s' if nodes != 1 else ''}")
        verify = Timer(emit, "verify", host=host, detail=plan.verify.path)
        seconds = site.verify(plan, port)
        verify.done(f"{plan.target.release} answers through every node's proxy ({seconds:.2f}s)")
    except Exception as exc:  # noqa: BLE001 - whatever failed, the previous release goes back
        back = Timer(emit, "switch back", host=host)
        try:
            if previous is not None:
                site.route(plan, previous)
            back.done()
        except Exception as again:  # noqa: BLE001
            back.failed(_why(again))
            raise SwarmSwitchBackFailed(f"{host}: {_why(exc)}; switching back failed: {_why(again)}",
                                        hint="the proxies may not all serve one release: `deployctl status`") from None
        raise DeployError(f"{host}: {_why(exc)}", hint="the previous release is serving again") from None


def _retire(site: SwarmSite, plan: SwarmPlan, live: str, drain: float, emit: Emit, host: str) -> None:
    """After the drain, every other release's services to 0 tasks (kept for rollback)."""
    others = [name for name, (release, _, count) in site.services().items() if release != live and count > 0]
    if not others:
        return
    time.sleep(drain)
    timer = Timer(emit, "stop", host=host, detail=f"scale {len(others)} service(s) to 0")
    site.run(plan.retire(others))
    timer.done()


def _last_live(state: HostState, release: str | None) -> ReleaseRecord | None:
    """The latest record of `release` that left it live (its deploy, a rollback to it, or
    a scale of it): what it last ran with, and the scale overrides then in force."""
    if release is None:
        return None
    return next((r for r in reversed(state.history().records) if r.release == release and r.outcome == LIVE), None)


def _overrides(state: HostState) -> ss.Overrides:
    """The environment's scale overrides, carried forward by every record (plan/swarm_scale.py)."""
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
            message: str, replicas: dict[str, int], started: float | None, scaled: ss.Overrides | None = None) -> None:
    extra = {REPLICAS: replicas, **ss.to_extra(scaled or {})}
    if outcome in (LIVE, REVERTED) and started:
        extra |= timing(started, time.time())
    state.record(ReleaseRecord(
        release=spec.release, revision=spec.revision,
        images={s.service: s.image for s in spec.services} | {PROXY: spec.proxy.image},
        action=action, outcome=outcome, who=who(), when=rfc3339(time.time()), message=message,
        previous=previous, error=error, dirty=spec.dirty, spec=spec.to_dict() if action == "deploy" else {},
        extra=extra))


def deploy(loaded: LoadedConfig, env_name: str, images: ReleaseImages, secrets: dict[str, Secret], emit: Emit, *,
           options: DeployOptions = DeployOptions(), registry_password: Secret | None = None,
           registry_username: str | None = None, manager=None, now: float | None = None) -> DeployResult:  # type: ignore[no-untyped-def]
    config, environment = loaded.config, loaded.environment(env_name)
    if canary_spec(environment.rollout, options.canary) is not None:
        # Refused before anything is touched: a plain deploy in its place would send 100% of
        # the traffic to a release the user asked to try on a share first.
        raise UsageError(f"environments.{env_name}: a canary (--canary, rollout.canary) is not run on a Swarm "
                         "target yet", hint="deploy without --canary, or set rollout.canary = 0 (docs/swarm.md)")
    emit = serialized(emit)
    job = SwarmJob(loaded, env_name, emit, manager)
    try:
        site, state = job.open()
        host = job.manager.host
        login_user = registry_username or (config.registry.username if config.registry else None)
        login = bool(config.registry and login_user and registry_password is not None)
        if login:
            preflight.registry_login(job.manager, emit, config.registry.server, login_user, registry_password)
        release = new_release_id(time.time() if now is None else now, images.revision, state.history().ids())
        emit(Message(f"release {release} to {env_name} (Swarm, manager {host})"))
        if guard_spec(environment.rollout, options.no_guard) is not None:
            emit(Message("the error-rate guard (rollout.guard_window) is not run on a Swarm yet (docs/swarm.md)",
                         level="warning", host=host))
        counts, scaled = ss.for_deploy({name: s.replicas for name, s in config.services.items()}, _overrides(state))
        if scaled:
            emit(Message("kept the scaled task counts (deployctl scale): " + ", ".join(
                f"{name}={count}" for name, (count, _) in sorted(scaled.items())), host=host))
        plan = swarm_deploy_plan(loaded, env_name, release, images, registry_auth=login, replicas=counts)
        _lock(state, loaded.environment(env_name).rollout, emit, host, "deploy", release, options.message, options.force_unlock)
        started = time.time()
        try:
            previous = state.current()
            outcome = _deploy_locked(site, state, plan, loaded, env_name, secrets, options, previous, host, emit,
                                     started, registry_auth=login, scaled=scaled)
        finally:
            state.release()
        return DeployResult(release, images.revision, [HostOutcome(host, release, previous, outcome,
                                                                   time.time() - started)])
    finally:
        job.close()


def swarm_deploy_plan(loaded: LoadedConfig, env_name: str, release: str, images: ReleaseImages, *,
                      registry_auth: bool = False, replicas: dict[str, int] | None = None) -> SwarmPlan:
    config, environment = loaded.config, loaded.environment(env_name)
    layout, names = layout_for(loaded, env_name), names_for(loaded, env_name)
    spec = release_spec(config, env_name, release, images.revision, images.images, proxy_image_for(config, images),
                        dirty=images.dirty)
    services = sw.release_services(config, environment, env_name, spec, layout, replicas)
    migrations = {name: list(s.migrate) for name, s in config.services.items() if s.migrate}
    return deploy_plan(spec, services, names, layout.proxy_dir, proxy_port=proxy_port(loaded, env_name),
                       drain=environment.rollout.drain, migrations=migrations, registry_auth=registry_auth)


def _deploy_locked(site: SwarmSite, state: HostState, plan: SwarmPlan, loaded: LoadedConfig, env_name: str,
                   secrets: dict[str, Secret], options: DeployOptions, previous: str | None, host: str,
                   emit: Emit, started: float, *, registry_auth: bool = False,
                   scaled: ss.Overrides | None = None) -> str:
    environment = loaded.environment(env_name)
    spec, replicas = plan.target, {s.service: s.replicas for s in plan.services}

    def record(outcome: str, error: str = "") -> None:
        _record(state, spec, "deploy", outcome, previous, error, options.message, replicas, started, scaled)

    try:
        state.prepare()
        if site.ensure_network():
            emit(Message(f"created overlay network {site.names.network}", host=host))
        # Accessories first, as on ssh hosts: created when absent (pinned by their placement),
        # never recreated; the release's services reach them by name on the same network.
        for accessory in specs_for(loaded, env_name, environment.accessories):
            swarm_accessories.boot(loaded, site, accessory, secrets, emit, registry_auth=registry_auth)
        _upload(site, plan, secrets, emit, host)
        if plan.network:
            site.ensure_release_network(spec.release, plan.network)
        timer = Timer(emit, "start", host=host, detail=f"{len(plan.start)} service(s)")
        for argv in plan.start:
            site.run(argv)
        timer.done()
        site.wait_ready(plan.wanted, plan.ready_timeout, checks=_checks(site, plan))
        for name, argv in plan.migrations:
            site.run_job(name, argv)
    except BaseException as exc:
        site.remove_release(spec.release, [s.name for s in plan.services])
        site.manager.remove_tree(site.layout.release_secrets(spec.release))
        record(FAILED, _why(exc))
        raise
    try:
        _switch(site, plan, proxy_port(loaded, env_name), emit, host)
    except SwarmSwitchBackFailed as exc:
        record(UNCERTAIN, exc.message)
        raise
    except BaseException as exc:
        time.sleep(plan.drain)  # requests the new release's tasks still hold
        site.remove_release(spec.release, [s.name for s in plan.services])
        record(REVERTED, _why(exc))
        raise
    state.set_current(spec.release)
    record(LIVE)
    try:
        _retire(site, plan, spec.release, plan.drain, emit, host)
        _prune(site, state, environment.rollout.keep, spec.release, emit, host)
    except Exception as exc:  # noqa: BLE001 - live and verified; only the clean-up failed
        emit(Message(f"after the switch: {_why(exc)}", level="warning", host=host))
    return LIVE


def _checks(site: SwarmSite, plan: SwarmPlan):  # type: ignore[no-untyped-def]
    """deployctl's own check of each new task for services whose check is http/tcp, from a
    checker of the release's proxy image (services/swarm_health.py)."""
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


# -- rollback ----------------------------------------------------------------------------------

@dataclass
class SwarmRollback:
    release: str
    previous: str | None
    seconds: float
    total_seconds: float
    host: str
    outcome: str = LIVE


def rollback_target(state: HostState, to: str | None) -> tuple[str | None, str, ReleaseRecord]:
    history = state.history()
    current = state.current()
    target = to or history.previous_good(current)
    if target is None:
        raise UsageError("no earlier good release to roll back to", hint="`deployctl releases --env ENV`")
    record = history.deployed(target)
    if record is None or not record.spec:
        raise UsageError(f"{target} was never live here (or its record has no spec): cannot roll back to it")
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
                         drain=environment.rollout.drain)


def rollback(loaded: LoadedConfig, env_name: str, emit: Emit, *, to: str | None = None, message: str = "",
             force_unlock: bool = False, manager=None) -> list[SwarmRollback]:  # type: ignore[no-untyped-def]
    environment = loaded.environment(env_name)
    emit = serialized(emit)
    job = SwarmJob(loaded, env_name, emit, manager)
    try:
        site, state = job.open()
        host = job.manager.host
        current, target, record = rollback_target(state, to)
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
        _lock(state, loaded.environment(env_name).rollout, emit, host, "rollback", target, message, force_unlock)
        started = time.time()
        replicas = {s.service: s.replicas for s in plan.services}
        try:
            try:
                timer = Timer(emit, "start", host=host, detail=f"scale {target} back up")
                site.run(plan.start[0])
                timer.done()
                site.wait_ready(plan.wanted, plan.ready_timeout, checks=_checks(site, plan))
                _switch(site, plan, proxy_port(loaded, env_name), emit, host)
            except SwarmSwitchBackFailed as exc:
                _record(state, plan.target, "rollback", UNCERTAIN, current, exc.message, message, replicas, started,
                        scaled)
                raise
            except BaseException as exc:
                site.manager.run(plan.undo[0])
                _record(state, plan.target, "rollback", FAILED, current, _why(exc), message, replicas, started,
                        scaled)
                if isinstance(exc, DeployctlError):
                    raise RollbackError(exc.message, hint="the release that was live still serves") from None
                raise
            switched = time.time() - started
            state.set_current(target)
            _record(state, plan.target, "rollback", LIVE, current, "", message, replicas, started, scaled)
            try:
                _retire(site, plan, target, plan.drain, emit, host)
            except Exception as exc:  # noqa: BLE001
                emit(Message(f"after the switch: {_why(exc)}", level="warning", host=host))
        finally:
            state.release()
        return [SwarmRollback(target, current, switched, time.time() - started, host)]
    finally:
        job.close()


# -- scale -------------------------------------------------------------------------------------

def scale(loaded: LoadedConfig, env_name: str, emit: Emit, counts: dict[str, int], *,
          manager=None) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The live release's services to the given task counts (no new release), waited for
    until every task runs and is healthy, then recorded (a `scale` record of the live
    release): a rollback and the next deploy keep these counts (plan/swarm_scale.py)."""
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
        _lock(state, loaded.environment(env_name).rollout, emit, job.manager.host, "scale", current, "", False)
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
                # Recorded, so a rollback and the next deploy keep these counts (plan/swarm_scale.py).
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
