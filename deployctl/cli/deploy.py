"""`deployctl deploy` and `deployctl rollback` (with --dry-run), and the SIGTERM handling
that turns a CI job's cancellation into the same clean-up path as a failure."""

from __future__ import annotations

import contextlib
import signal
import time
from typing import Annotated, Iterator, Optional

import typer

from .common import (ArtifactsOption, NoHooksOption, artifacts_path, confirm_environment, finish, hooks_skipped_warning,
                     table)
from .config import EnvOption
from .context import AppContext
from .unlock import ForceUnlock, ForceUnlockLive, Yes, unlock_policy

DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan (each step, each docker argv); change nothing.")]
MessageOpt = Annotated[str, typer.Option("--message", "-m", help="Why: kept in the lock and the release history.")]
NoGuard = Annotated[bool, typer.Option(
    "--no-guard", help="Skip the error-rate guard after the switch for this deploy (rollout.guard_window).")]
CanaryOpt = Annotated[Optional[int], typer.Option(
    "--canary", metavar="PERCENT", min=0, max=99,
    help="Send this share of requests to the new release for rollout.canary_window seconds first, then promote "
         "or abort on the proxy's numbers (overrides rollout.canary; 0: no canary).")]
ShadowOpt = Annotated[Optional[float], typer.Option(
    "--shadow", metavar="SECONDS", min=0, max=3600,
    help="Before the switch, copy live requests (rollout.shadow_methods) to the new release for this long and stop "
         "the deploy if its answers are worse than the live release's (overrides rollout.shadow_window; 0: off).")]


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a cancelled CI job) raises Interrupted in the deploy, which then cleans up
    like any failure: new containers removed or switched back, lock released. Later
    signals are ignored so that clean-up itself is not cut short."""
    from ..services.rollout import Interrupted

    def handler(signum, frame):  # type: ignore[no-untyped-def]
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise Interrupted(f"interrupted by {signal.Signals(signum).name}",
                          hint="the previous release is still serving; the lock was released")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def deploy(
    ctx: typer.Context,
    env: EnvOption = "local",
    artifacts: ArtifactsOption = None,
    version: Annotated[Optional[str], typer.Option(
        "--version", metavar="TAG", help="Deploy this pushed tag (ssh targets: digests asked from the registry).")] = None,
    message: MessageOpt = "",
    force_unlock: ForceUnlock = False,
    force_unlock_live: ForceUnlockLive = False,
    yes: Yes = False,
    no_guard: NoGuard = False,
    canary: CanaryOpt = None,
    shadow: ShadowOpt = None,
    promote: Annotated[bool, typer.Option(
        "--promote", help="Promote the canary a running deploy is judging now (from another shell).")] = False,
    abort: Annotated[bool, typer.Option(
        "--abort", help="Abort the canary a running deploy is judging now (from another shell).")] = False,
    dry_run: DryRun = False,
    no_hooks: NoHooksOption = False,
) -> None:
    """Deploy a release: zero-downtime switch behind nginx, the old release kept for rollback."""
    from ..services.deploy import deploy as run_deploy
    from ..services.deploy_inputs import deploy_config, deploy_inputs, release_images

    app: AppContext = ctx.obj
    if version is not None:  # it reaches a registry URL and the release id: an image tag only
        from ..errors import UsageError
        from ..plan.build import TAG_RE

        if not TAG_RE.match(version):
            raise UsageError(f"--version: {version!r} is not an image tag",
                             hint="letters, digits, '_', '.' and '-', not starting with '.' or '-'")
    app.loaded.environment(env)
    unlock = unlock_policy(force_unlock, force_unlock_live, yes)  # refused before anything is touched
    if promote or abort:
        _decide(app, env, "abort" if abort else "promote", both=promote and abort)
        return
    # Secrets first: a missing one fails (exit 3) before any host is touched.
    inputs = deploy_inputs(app.loaded, env)
    login = inputs.login
    images = release_images(inputs, env, artifacts_path(app, artifacts), version)
    loaded = deploy_config(inputs, images)  # built accessories run their built image
    from ..services.deploy import DeployOptions

    swarm = loaded.environment(env).target == "swarm"
    from ..services.tls import refuse_swarm

    refuse_swarm(loaded, env)  # the dry run too: it would print a plan without HTTPS
    if dry_run:
        if swarm:
            _print_swarm_deploy_plan(app, loaded, env, images, DeployOptions(no_guard=no_guard, canary=canary, shadow=shadow),
                                     hooks=not no_hooks)
            return
        _print_deploy_plan(app, loaded, env, images, (login.server, login.username) if login else None,
                           DeployOptions(no_guard=no_guard, canary=canary, shadow=shadow), hooks=not no_hooks)
        return
    hooks_skipped_warning(app, no_hooks)
    with sigterm_interrupts(), _hosts_reported(app, "deploy", f"Deploy to {env} stopped"):
        result = run_deploy(loaded, env, images, inputs.secrets, app.emit, registry_password=inputs.registry_password,
                            registry_username=inputs.registry_username,
                            options=DeployOptions(message=message, force_unlock=unlock, no_guard=no_guard,
                                                  canary=canary, shadow=shadow, hooks=not no_hooks))
    data = {"release": result.release, "revision": result.revision,
            "hosts": [vars(h) for h in result.hosts]}
    if app.mode == "json":
        finish(app, "deploy", data)
        return
    app.emit.close()
    table(app, f"Deployed {result.release} to {env}", ["host", "outcome", "previous", "seconds"],
          [[h.host, h.outcome, h.previous or "-", f"{h.seconds:.1f}"] for h in result.hosts])


def _decide(app: AppContext, env: str, decision: str, *, both: bool) -> None:
    """`--promote` / `--abort`: the decision file on the hosts; the watching deploy acts on it."""
    from ..errors import UsageError
    from ..services.canary import decide
    from ..services.hosts import connectors_for, layout_for, who

    if both:
        raise UsageError("--promote and --abort: pick one")
    conns = connectors_for(app.loaded, env)
    try:
        hosts = decide(conns, layout_for(app.loaded, env), decision, who(), app.emit)
    finally:
        for conn in conns:
            conn.close()
    if app.mode == "json":
        finish(app, "deploy", {"canary": decision, "hosts": hosts})


@contextlib.contextmanager
def _hosts_reported(app: AppContext, command: str, title: str) -> Iterator[None]:
    """A rollout that did not reach every host: each host's outcome (a table, or the --json
    result with ok false) before main() prints the error and exits with its code."""
    from ..errors import RolloutError

    try:
        yield
    except RolloutError as exc:
        if app.mode == "json":
            app.emit.write({"event": "result", "command": command, "ok": False, "exit_code": int(exc.exit_code),
                            "hosts": [vars(h) for h in exc.hosts]})
        else:
            app.emit.close()
            table(app, title, ["host", "outcome", "previous", "detail"],
                  [[h.host, h.outcome, h.previous or "-", h.error or "-"] for h in exc.hosts])
        raise


def _hook_plan(loaded, names, hooks: bool) -> dict:  # type: ignore[no-untyped-def]
    """The hooks a command would run, as one more entry of the printed plan (never run here)."""
    from ..plan.hooks import hook_rows

    rows = hook_rows(loaded.config.hooks, names, enabled=hooks)
    return {"hooks (on this machine)": rows} if rows else {}


DEPLOY_HOOKS = ("pre_deploy", "pre_migrate", "on_revert", "post_deploy")
ROLLBACK_HOOKS = ("pre_deploy", "on_revert", "post_rollback")


def _print_deploy_plan(app: AppContext, loaded, env: str, images,  # type: ignore[no-untyped-def]
                       login: tuple[str, str] | None, options, hooks: bool = True) -> None:
    """The plan of each host's HostDeploy, the object a real deploy runs (no connection)."""
    from ..plan.accessories import planned_steps
    from ..plan.dry_run import REGISTRY_CONFIG, deploy_steps
    from ..plan.releases import new_release_id
    from ..services.deploy import HostDeploy
    from ..services.hosts import connectors_for

    config, environment = loaded.config, loaded.environment(env)
    release = new_release_id(time.time(), images.revision)
    plans = {}
    for index, conn in enumerate(connectors_for(loaded, env)):
        if login:  # as the preflight's login leaves it on the connector (services/preflight.py)
            conn.registry_config = REGISTRY_CONFIG
        job = HostDeploy(loaded, env, conn, lambda e: None, release, images, {}, options, first=index == 0)
        steps = deploy_steps(
            job.plan, [row for step in job.preparation() for row in step.rows],
            job.migration_rows() if index == 0 else [], job.layout, local=environment.target == "local",
            images=[*images.images.values(), job.spec.proxy.image], keep=environment.rollout.keep,
            registry_login=login, fetching=[row for step in job.fetching() for row in step.rows])
        # Accessories come up after the preflight, before the lock (services/deploy.py).
        at = next((i for i, s in enumerate(steps) if s.step != "preflight"), len(steps))
        plans[conn.host] = steps[:at] + planned_steps(config, env, job.layout) + steps[at:] + _tls_rows(config, env)
    migrates = any(s.migrate for s in config.services.values())
    names = [n for n in DEPLOY_HOOKS if n != "pre_migrate" or migrates]
    _print_plan(app, "deploy", release, plans | _hook_plan(loaded, names, hooks))


def _tls_rows(config, env: str) -> list:  # type: ignore[no-untyped-def]
    """What a deploy does for HTTPS after its rollout (services/deploy._certificate)."""
    from ..plan.steps import PlannedStep

    mode = config.tls_for(env)
    if mode == "off":
        return []
    source = ("an ACME order: the HTTP-01 answers on every host before the CA validates"
              if mode == "acme" else "the pair from the secret source (checked before any host changes)")
    return [PlannedStep("certificate", f"under every host's lock again: a certificate for "
                                       f"{', '.join(config.proxy.hosts)} where a host has none, or one within 30 "
                                       f"days of expiry: {source}; installed staged (tls/live link, nginx -t, "
                                       "reload) on every host (docs/tls.md)")]


def _print_swarm_deploy_plan(app: AppContext, loaded, env: str, images,  # type: ignore[no-untyped-def]
                             options, hooks: bool = True) -> None:
    """The SwarmPlan a swarm deploy runs (services/swarm_deploy.py), built the same way; no connection."""
    from ..plan.releases import new_release_id
    from ..plan.steps import PlannedStep
    from ..plan.accessories import environment_accessories
    from ..plan.swarm_accessories import planned_steps as swarm_accessory_steps
    from ..services.accessories import read_files
    from ..services.hosts import layout_for
    from ..services.swarm_deploy import swarm_deploy_plan

    environment = loaded.environment(env)
    release = new_release_id(time.time(), images.revision)
    plan = swarm_deploy_plan(loaded, env, release, images, options=options)
    steps = [PlannedStep("preflight", f"connect to the manager {environment.manager} (host key pinned); it must "
                                      "be an active Swarm manager"),
             PlannedStep("lock", "on the manager: mkdir of the lock directory in its state dir")]
    layout = layout_for(loaded, env)
    # Their files as a real deploy reads them: a missing one fails the dry run too (exit 3),
    # and the Docker config names shown are the ones a deploy would create.
    files = read_files(loaded, environment_accessories(loaded.config, env, layout))
    accessories = swarm_accessory_steps(loaded.config, env, layout, files=files)
    names = [n for n in DEPLOY_HOOKS if n != "pre_migrate" or plan.migrations]
    _print_plan(app, "deploy", release, {f"swarm manager {environment.manager}": steps + accessories + plan.steps()}
                | _hook_plan(loaded, names, hooks))


def _print_plan(app: AppContext, command: str, release: str, plans: dict) -> None:  # type: ignore[no-untyped-def]
    import shlex

    if app.mode == "json":
        finish(app, command, {"dry_run": True, "release": release,
                              "hosts": {h: [s.to_dict() for s in steps] for h, steps in plans.items()}})
        return
    print(f"{command} {release} (dry run: nothing is changed)")
    for host, steps in plans.items():
        print(f"{host}:")
        for n, step in enumerate(steps, 1):
            line = f"  {n:2}. {step.step:<9} {step.detail}".rstrip()
            print(line)
            if step.argv:
                print(f"      $ {shlex.join(step.argv)}")


def rollback(
    ctx: typer.Context,
    env: EnvOption = "local",
    to: Annotated[Optional[str], typer.Option("--to", metavar="RELEASE", help="Release id [default: the previous good one].")] = None,
    message: MessageOpt = "",
    force_unlock: ForceUnlock = False,
    force_unlock_live: ForceUnlockLive = False,
    yes: Yes = False,
    dry_run: DryRun = False,
    no_hooks: NoHooksOption = False,
    accept_schema: Annotated[bool, typer.Option(
        "--accept-schema", help="Go back even though the target was recorded with another database schema: "
                                "its code works on the current one.")] = False,
    restore_data: Annotated[bool, typer.Option(
        "--restore-data", help="Across a schema change: restore the backup taken before the migration "
                               "(rollout.backup_before_migrate), then switch. Asks for the environment's name "
                               "(--yes for CI).")] = False,
) -> None:
    """Switch back to an earlier release still on the hosts: no build, no registry."""
    from ..services.rollback import rollback as run_rollback

    app: AppContext = ctx.obj
    if accept_schema and restore_data:
        from ..errors import UsageError

        raise UsageError("give --accept-schema or --restore-data, not both")
    if to is not None:  # checked before it reaches a host: it becomes names and paths there
        from ..errors import UsageError
        from ..plan.releases import BadReleaseId, check_release_id

        try:
            check_release_id(to, "--to")
        except BadReleaseId as exc:
            raise UsageError(str(exc), hint="`deployctl status --env ...` lists the releases on the hosts") from None
    loaded = app.loaded
    loaded.environment(env)
    unlock = unlock_policy(force_unlock, force_unlock_live, yes)  # refused before anything is touched
    swarm = loaded.environment(env).target == "swarm"
    if dry_run:
        if swarm:
            _print_swarm_rollback_plan(app, loaded, env, to, hooks=not no_hooks)
            return
        _print_rollback_plan(app, loaded, env, to, hooks=not no_hooks)
        return
    from ..services.deploy_inputs import hook_secrets

    # The hooks' secrets only (a rollback needs no other): a missing one fails here, exit 3.
    secrets = {} if no_hooks else hook_secrets(loaded, env)
    hooks_skipped_warning(app, no_hooks)
    if restore_data:
        confirm_environment(env, f"--restore-data replaces the database of {env} with the backup taken before the "
                                 "migration, if the schemas differ: what was written since is lost.",
                            "rollback --restore-data", yes)
    with sigterm_interrupts(), _hosts_reported(app, "rollback", f"Rollback of {env} stopped"):
        outcomes = run_rollback(loaded, env, app.emit, to=to, message=message, force_unlock=unlock,
                                hooks=not no_hooks, secrets=secrets, accept_schema=accept_schema,
                                restore_data=restore_data)
    if app.mode == "json":
        finish(app, "rollback", {"hosts": [vars(o) for o in outcomes]})
        return
    app.emit.close()
    table(app, f"Rolled back {env}", ["host", "live", "was", "switch s", "total s", "outcome"],
          [[o.host, o.release, o.previous or "-", f"{o.seconds:.2f}", f"{o.total_seconds:.1f}", o.outcome]
           for o in outcomes])


def _print_rollback_plan(app: AppContext, loaded, env: str, to: str | None,  # type: ignore[no-untyped-def]
                         hooks: bool = True) -> None:
    """The plan of each host's HostRollback, after the same read-only checks and the same
    choice of target as the real rollback."""
    from ..plan.dry_run import rollback_steps
    from ..plan.steps import PlannedStep
    from ..plan.rollout import HostReleases, rollback_target
    from ..services.host_state import HostState
    from ..services.hosts import connectors_for, layout_for
    from ..services.rollback import HostRollback

    layout = layout_for(loaded, env)
    conns = connectors_for(loaded, env)
    try:
        views = []
        for conn in conns:
            conn.connect()
            state = HostState(conn, layout)
            current = state.current()
            views.append(HostReleases(conn.host, current, state.history().previous_good(current)))
        target = rollback_target(views, to)  # one release everywhere, or a refusal
        plans = {}
        for conn in conns:
            job = HostRollback(loaded, env, conn, lambda e: None, target)
            job.check()
            plans[conn.host] = ([PlannedStep("nothing", f"{target} is already live")] if job.plan is None
                                else rollback_steps(job.plan, layout))
    finally:
        for conn in conns:
            conn.close()
    _print_plan(app, "rollback", target, plans | _hook_plan(loaded, ROLLBACK_HOOKS, hooks))


def _print_swarm_rollback_plan(app: AppContext, loaded, env: str, to: str | None,  # type: ignore[no-untyped-def]
                               hooks: bool = True) -> None:
    """After the same read of the manager's history and the same choice of target."""
    from ..services.host_state import HostState
    from ..services.hosts import layout_for, manager_connector
    from ..services.swarm_deploy import rollback_target, swarm_rollback_plan

    conn = manager_connector(loaded, env)
    try:
        conn.connect()
        _, target, record = rollback_target(HostState(conn, layout_for(loaded, env)), to, conn.host)
    finally:
        conn.close()
    plan = swarm_rollback_plan(loaded, env, record)
    _print_plan(app, "rollback", target, {f"swarm manager {loaded.environment(env).manager}": plan.steps()}
                | _hook_plan(loaded, ROLLBACK_HOOKS, hooks))
