"""`deployctl drill`: deploy a release that fails on purpose, let the safety nets act, and
record how fast they detected it and restored the live release (docs/release-safety.md,
"Drills").

The drill release is the LIVE release's images again (its deploy record's), changed only as
plan/judging/drill.py says; it goes through the one deploy (services/lifecycle/deploy.deploy, so the one
transaction: health gate, shadow window, canary, verify, guard, whatever the environment
configures). Nothing of the drill is special-cased inside the transaction: the nets act on
it as on any release, and the drill reads their step events for the times. When no net
caught it (the release went live and stayed), the drill rolls back itself. Then one
`drill` line goes into every host's history: the kind, which nets judged it, per net that
caught it the time to detect and the time to restore.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ...errors import DeployctlError, ExitCode, UsageError
from ...events import Emit, Message, StepDone, StepFailed, StepStarted, serialized
from ...plan.judging import drill as plan
from ...plan.pipeline.build import rfc3339
from ...plan.lifecycle.releases import ReleaseRecord
from ...plan.stats import timing
from ...secrets import Secret
from ..lifecycle.deploy_result import DeployOptions
from ..lifecycle.host_state import HostState
from ..env import Env
from ..hosts import who
from ..lifecycle.release_images import ReleaseImages, proxy_image_for
from ..lifecycle.rollout import Cancel, Interrupted


@dataclass
class DrillResult:
    environment: str
    kind: str
    live: str  # the release that served before, and serves after
    release: str | None  # the drill's release id (None: it never got one)
    outcome: str  # caught | rolled back | uncertain
    nets: list[plan.NetResult] = field(default_factory=list)
    exit_code: int | None = None  # the drill deploy's (6: a net stopped it)
    error: str = ""
    seconds: float = 0.0

    @property
    def caught(self) -> plan.NetResult | None:
        return plan.caught_by(self.nets)

    def to_dict(self) -> dict[str, Any]:
        return {"environment": self.environment, "fail": self.kind, "live": self.live, "release": self.release,
                "outcome": self.outcome, "nets": [n.to_dict() for n in self.nets], "exit_code": self.exit_code,
                "error": self.error, "seconds": round(self.seconds, 3)}


class _StepClock:
    """An Emit that passes every event on and keeps the steps' times for the nets."""

    def __init__(self, emit: Emit) -> None:
        self.emit, self.steps = emit, []

    def __call__(self, event) -> None:  # type: ignore[no-untyped-def]
        what = {StepStarted: "started", StepDone: "done", StepFailed: "failed"}.get(type(event))
        if what is not None and not (what == "failed" and any(s.step == event.step and s.what == "failed"
                                                                 and s.host == event.host for s in self.steps[-3:])):
            self.steps.append(plan.Timed(event.step, what, event.at, event.host))
        self.emit(event)


def refuse(env: Env, kind: str, rate: float | None, *, i_mean_it: bool) -> None:
    """Everything that refuses the drill before anything is touched (exit 2)."""
    try:
        plan.check_request(env.name, env.settings, kind, plan.rate_for(kind, rate),
                           i_mean_it=i_mean_it)
    except plan.DrillRefused as exc:
        raise UsageError(str(exc), hint="docs/release-safety.md, \"Drills\"") from None


def live_release(env: Env, conn) -> ReleaseRecord:  # type: ignore[no-untyped-def]
    """The live release's deploy record on the first host: the images the drill runs again."""
    conn.connect()
    try:  # closed again: the deploy opens its own connection (preflight)
        state = HostState(conn, env.layout)
        current = state.current()
        record = state.history().deployed(current) if current else None
    finally:
        conn.close()
    if record is None:
        raise UsageError(f"{env.name}: no live release to drill" + (f" ({current} has no deploy record)" if current
                                                                     else ""),
                         hint="deploy once; a drill runs the live release's images again")
    return record


def drill(env: Env, kind: str, secrets: dict[str, Secret], emit: Emit, *,
          rate: float | None = None, i_mean_it: bool = False, registry_password: Secret | None = None,
          registry_username: str | None = None, connectors: list | None = None,
          force_unlock: bool = False) -> DrillResult:
    from ..lifecycle.deploy import deploy
    from ..lifecycle.rollback import rollback

    refuse(env, kind, rate, i_mean_it=i_mean_it)
    rate = plan.rate_for(kind, rate)  # --rate, or the kind's default
    emit = serialized(emit)
    conns = connectors if connectors is not None else env.connectors()
    live = live_release(env, conns[0])
    config = env.config
    base = ReleaseImages(dict(live.images), live.revision, dirty=live.dirty)
    try:
        images = plan.drill_images(live.images, config, kind, proxy_image_for(config, base))
    except plan.DrillRefused as exc:
        raise UsageError(str(exc)) from None
    if kind == "slow":
        _check_echo_module(conns[0], images[plan.WRAPPER])
    drilled = env.with_config(plan.drill_config(config, kind, rate))
    release_images = ReleaseImages(images, live.revision, dirty=live.dirty)
    message = f"drill: --fail {kind}" + (f" --rate {rate:g}" if kind in ("5xx", "slow") else "")
    emit(Message(f"drill of {env.name}: {message[7:]}, the live release {live.release}'s images again"))
    clock = _StepClock(emit)
    cancel = Cancel()  # set by the rollout when an interrupt comes, whatever the deploy then raises
    began = time.time()
    result = DrillResult(env.name, kind, live.release, None, plan.CAUGHT)
    raised: DeployctlError | None = None  # what the command exits with, after the record
    try:
        deployed = deploy(drilled, release_images, secrets, clock, connectors=conns,
                          registry_password=registry_password, registry_username=registry_username,
                          options=DeployOptions(message=message, hooks=False, force_unlock=force_unlock,
                                                cancel=cancel))
    except DeployctlError as exc:
        if exc.exit_code not in (ExitCode.DEPLOY_FAILED, ExitCode.ROLLBACK_FAILED):
            raise  # a lock held, a host unreachable before the lock, a config error: no drill ran
        ended = time.time()
        result.exit_code, result.error = int(exc.exit_code), exc.message.splitlines()[0]
        result.nets = plan.nets_from(clock.steps, ended)
        interrupted = isinstance(exc, Interrupted) or cancel.is_set()
        if interrupted:
            # A net's step ends "stopped" on an interrupt: that is no catch. A shadow window or
            # canary cut short by it ends in its own error (ShadowStopped, CanaryAborted; on a
            # fleet a RolloutError), so the rollout's Cancel says whether one came.
            result.nets = [n for n in result.nets if n.result != plan.CAUGHT]
        if exc.exit_code == ExitCode.ROLLBACK_FAILED:
            result.outcome, raised = plan.NOT_RESTORED, exc  # a switch back failed, or hosts differ
        elif interrupted:
            result.outcome, raised = plan.INTERRUPTED, exc
        elif result.caught is None:
            # It failed before any net judged it (a pull, say): nothing was drilled.
            result.outcome, raised = plan.FAILED_UNJUDGED, exc
    else:
        # No net caught it: the failing release is live. The drill puts the live one back.
        result.release = deployed.release
        result.nets = plan.nets_from(clock.steps, time.time())
        emit(Message(f"drill: no safety net stopped {deployed.release}; rolling back to {live.release}",
                     level="warning"))
        back = time.time()
        try:
            rollback(env, emit, to=live.release, message=f"drill: back from {deployed.release}",
                     hooks=False, connectors=connectors)
            result.outcome = plan.ROLLED_BACK
            result.nets.append(plan.NetResult("rollback", plan.CAUGHT, 0.0, detect_s=None,
                                              restore_s=time.time() - back))
        except DeployctlError as exc:
            result.outcome, result.exit_code, raised = plan.NOT_RESTORED, int(exc.exit_code), exc
            result.error = exc.message.splitlines()[0]
    result.seconds = time.time() - began
    _record(env, result, began, connectors)
    if raised is not None:
        raise raised
    return result


def _check_echo_module(conn, image: str) -> None:  # type: ignore[no-untyped-def]
    """`--fail slow` needs nginx's echo module in the proxy image (plan/judging/drill.py): refused
    before anything changes when the image has none."""
    test = " || ".join(f"test -e {m}" for m in plan.ECHO_MODULES)
    conn.connect()
    try:
        done = conn.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", test])
    finally:
        conn.close()
    if not done.ok:
        raise UsageError(f"--fail slow: the proxy image {image} has no nginx echo module (looked for "
                         f"{', '.join(plan.ECHO_MODULES)}): the delay needs its echo_sleep",
                         hint="install it in [proxy] context's image (Debian: libnginx-mod-http-echo; Alpine: "
                              "nginx-mod-http-echo), or drill with --fail 5xx, crash or health")


def _record(env: Env, result: DrillResult, began: float,
            connectors: list | None) -> None:
    """The `drill` line on every host: which release it was, which nets judged it and how
    fast, what it ended as. The drill deploy's own lines (aborted, failed, reverted) are
    there already; stats tells them apart by this line (plan/stats.py)."""
    conns = connectors if connectors is not None else env.connectors()
    layout = env.layout
    for conn in conns:
        try:
            conn.connect()
            state = HostState(conn, layout)
            if result.release is None:
                result.release = _drill_release(state, result.live)
            state.record(ReleaseRecord(
                release=result.release or result.live, revision=None, images={}, action=plan.DRILL,
                outcome=result.outcome, who=who(), when=rfc3339(time.time()), previous=result.live,
                error=result.error, extra={"fail": result.kind, "nets": [n.to_dict() for n in result.nets],
                                           **({"exit_code": result.exit_code} if result.exit_code else {}),
                                           **timing(began, began + result.seconds)}))
        except Exception as exc:  # noqa: BLE001 - the drill ran; its record on this host did not
            result.error = result.error or f"{conn.host}: the drill's record: {exc}"
        finally:
            conn.close()


def _drill_release(state: HostState, live: str) -> str | None:
    """The drill deploy's release id: its newest `drill:` deploy record after the live one."""
    records = [r for r in state.history().records
               if r.action == "deploy" and r.message.startswith("drill:") and r.release != live]
    return records[-1].release if records else None
