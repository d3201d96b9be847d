"""`deployctl drill`: a release that fails on purpose through the environment's safety nets,
with the times each net took to detect it and to restore the live release."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import finish, table
from .config import EnvOption
from .context import AppContext


def drill(
    ctx: typer.Context,
    env: EnvOption = "staging",
    fail: Annotated[str, typer.Option(
        "--fail", metavar="5xx|slow|crash|health",
        help="How the drill release fails: 5xx (a share of answers 500), slow (answers wait 2 s), crash "
             "(exits 1 s after each start, crash-looping), health (its health check fails).")] = "5xx",
    rate: Annotated[Optional[float], typer.Option(
        "--rate", metavar="SHARE",
        help="5xx and slow: the share of requests that fail (0.2 = 20%) [default: 5xx 0.2, slow 1: every one].")] = None,
    i_mean_it: Annotated[bool, typer.Option(
        "--i-mean-it", help="Run it on a production environment (named production or prod, or "
                            "production = true), in front of real users.")] = False,
) -> None:
    """Deploy a release made from the live one that fails on purpose; record how fast the safety nets
    detected it and restored the live release.

    Exit 0 when the live release serves again afterwards (a net caught the drill, or the drill rolled
    back itself); 2 refused (production without --i-mean-it, a Swarm, no live release); 6 when the drill
    release failed before any net judged it, or an interrupt stopped it (the live release serves);
    7 when what serves is uncertain; 4 and 8 as a deploy's (no drill ran).
    """
    from ..services.lifecycle.deploy_inputs import deploy_inputs
    from ..services.judging.drill import drill as run_drill
    from ..services.judging.drill import refuse
    from .deploy import sigterm_interrupts

    app: AppContext = ctx.obj
    refuse(app.env(env), fail, rate, i_mean_it=i_mean_it)  # before any secret is fetched
    inputs = deploy_inputs(app.env(env))
    with sigterm_interrupts():
        # The environment deploy_inputs completed (the database endpoint laid over it).
        result = run_drill(inputs.env, fail, inputs.secrets, app.emit, rate=rate,
                           i_mean_it=i_mean_it, registry_password=inputs.registry_password,
                           registry_username=inputs.registry_username)
    if app.mode == "json":
        finish(app, "drill", result.to_dict())
        return
    app.emit.close()
    caught = result.caught
    if result.outcome == "rolled back":
        title = f"Drill --fail {fail} on {env}: NO NET CAUGHT IT; the drill rolled back"
    elif caught is not None:
        title = f"Drill --fail {fail} on {env}: caught by {caught.net}"
    else:
        title = f"Drill --fail {fail} on {env}: {result.outcome}"
    table(app, title, ["net", "result", "judged", "time to detect", "time to restore"],
          [[n.net, n.result, f"{n.seconds:.2f}s", "-" if n.detect_s is None else f"{n.detect_s:.2f}s",
            "-" if n.restore_s is None else f"{n.restore_s:.2f}s"] for n in result.nets])
    app.out(f"{result.live} serves; drill release {result.release or '-'} recorded as a drill "
            f"({result.seconds:.1f}s in all)")
