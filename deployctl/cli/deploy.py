"""`deployctl deploy` and `deployctl rollback` (with --dry-run), and the SIGTERM handling
that turns a CI job's cancellation into the same clean-up path as a failure."""

from __future__ import annotations

import contextlib
import signal
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
    """SIGTERM (a cancelled CI job) and SIGINT (Ctrl-C) raise Interrupted in the deploy,
    which then cleans up like any failure: new containers removed or switched back, lock
    released. Ctrl-C goes through the same handler, not Python's KeyboardInterrupt, so that
    it is held too while a hook's process starts (a KeyboardInterrupt raised inside Popen
    after the fork would leave the hook running). Later signals are ignored so that clean-up
    itself is not cut short."""
    from ..interrupts import raise_or_hold
    from ..services.lifecycle.rollout import Interrupted

    def handler(signum, frame):  # type: ignore[no-untyped-def]
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # Held for a moment while a child process is being started (deployctl/interrupts.py).
        raise_or_hold(Interrupted(f"interrupted by {signal.Signals(signum).name}",
                                  hint="the previous release is still serving; the lock was released"))

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


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
    from ..services.lifecycle.deploy import deploy as run_deploy
    from ..services.lifecycle.deploy_inputs import deploy_inputs, env_to_deploy, release_images

    app: AppContext = ctx.obj
    if version is not None:  # it reaches a registry URL and the release id: an image tag only
        from ..errors import UsageError
        from ..plan.pipeline.build import TAG_RE

        if not TAG_RE.match(version):
            raise UsageError(f"--version: {version!r} is not an image tag",
                             hint="letters, digits, '_', '.' and '-', not starting with '.' or '-'")
    app.env(env)  # an unknown environment: exit 3 before anything else
    unlock = unlock_policy(force_unlock, force_unlock_live, yes)  # refused before anything is touched
    if promote or abort:
        _decide(app, env, "abort" if abort else "promote", both=promote and abort)
        return
    # Secrets first: a missing one fails (exit 3) before any host is touched.
    inputs = deploy_inputs(app.env(env))
    login = inputs.login
    images = release_images(inputs, artifacts_path(app, artifacts), version)
    # The environment the deploy runs with: the RDS endpoint and the built accessories'
    # images laid over it (services/env.py).
    resolved = env_to_deploy(inputs, images)
    from ..services.lifecycle.deploy import DeployOptions

    from ..services.edge.shared_proxy import refuse as refuse_shared

    refuse_shared(resolved)
    if dry_run:
        from ..services.lifecycle.dry_runs import deploy_plan

        release, plans = deploy_plan(resolved, images, (login.server, login.username) if login else None,
                                     DeployOptions(no_guard=no_guard, canary=canary, shadow=shadow), hooks=not no_hooks)
        _print_plan(app, "deploy", release, plans)
        return
    hooks_skipped_warning(app, no_hooks)
    with sigterm_interrupts(), _hosts_reported(app, "deploy", f"Deploy to {env} stopped"):
        result = run_deploy(resolved, images, inputs.secrets, app.emit, registry_password=inputs.registry_password,
                            registry_username=inputs.registry_username,
                            options=DeployOptions(message=message, force_unlock=unlock, no_guard=no_guard,
                                                  canary=canary, shadow=shadow, hooks=not no_hooks))
    data = {"release": result.release, "revision": result.revision,
            "hosts": [vars(h) for h in result.hosts]}
    if result.verdicts:  # the shadow window's / the canary's, with the worst routes
        data["verdicts"] = result.verdicts
    if app.mode == "json":
        finish(app, "deploy", data)
        return
    app.emit.close()
    table(app, f"Deployed {result.release} to {env}", ["host", "outcome", "previous", "seconds"],
          [[h.host, h.outcome, h.previous or "-", f"{h.seconds:.1f}"] for h in result.hosts])


def _decide(app: AppContext, env: str, decision: str, *, both: bool) -> None:
    """`--promote` / `--abort`: the decision file on the hosts; the watching deploy acts on it."""
    from ..errors import UsageError
    from ..services.judging.canary import decide
    from ..services.hosts import who

    if both:
        raise UsageError("--promote and --abort: pick one")
    conns = app.env(env).connectors()
    try:
        hosts = decide(conns, app.env(env).layout, decision, who(), app.emit)
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


def _print_plan(app: AppContext, command: str, release: str, plans: dict) -> None:  # type: ignore[no-untyped-def]
    """A dry run's plan (services/lifecycle/dry_runs.py): numbered steps per host, each argv shell-quoted."""
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
    from ..services.lifecycle.rollback import rollback as run_rollback

    app: AppContext = ctx.obj
    if accept_schema and restore_data:
        from ..errors import UsageError

        raise UsageError("give --accept-schema or --restore-data, not both")
    if to is not None:  # checked before it reaches a host: it becomes names and paths there
        from ..errors import UsageError
        from ..plan.lifecycle.releases import BadReleaseId, check_release_id

        try:
            check_release_id(to, "--to")
        except BadReleaseId as exc:
            raise UsageError(str(exc), hint="`deployctl status --env ...` lists the releases on the hosts") from None
    resolved = app.env(env)  # an unknown environment: exit 3 before anything else
    unlock = unlock_policy(force_unlock, force_unlock_live, yes)  # refused before anything is touched
    if dry_run:
        from ..services.lifecycle.dry_runs import rollback_plan

        target, plans = rollback_plan(resolved, to, hooks=not no_hooks)
        _print_plan(app, "rollback", target, plans)
        return
    from ..services.lifecycle.deploy_inputs import hook_secrets

    # The hooks' secrets only (a rollback needs no other): a missing one fails here, exit 3.
    secrets = {} if no_hooks else hook_secrets(resolved)
    hooks_skipped_warning(app, no_hooks)
    if restore_data:
        confirm_environment(env, f"--restore-data replaces the database of {env} with the backup taken before the "
                                 "migration, if the schemas differ: what was written since is lost.",
                            "rollback --restore-data", yes)
    with sigterm_interrupts(), _hosts_reported(app, "rollback", f"Rollback of {env} stopped"):
        outcomes = run_rollback(resolved, app.emit, to=to, message=message, force_unlock=unlock,
                                hooks=not no_hooks, secrets=secrets, accept_schema=accept_schema,
                                restore_data=restore_data)
    if app.mode == "json":
        finish(app, "rollback", {"hosts": [vars(o) for o in outcomes]})
        return
    app.emit.close()
    table(app, f"Rolled back {env}", ["host", "live", "was", "switch s", "total s", "outcome"],
          [[o.host, o.release, o.previous or "-", f"{o.seconds:.2f}", f"{o.total_seconds:.1f}", o.outcome]
           for o in outcomes])


