"""The canary's own files on a Swarm, as argvs (services/swarm/swarm_judges.py runs them;
services/swarm/swarm_deploy.py's dry run prints the same ones through `rows`): the decision
`deploy --promote`/`--abort` writes on the manager, the record `canary.json`, and on each
node the watchdog's mark and the live-only copy it puts back."""

from __future__ import annotations

from ..edge.proxy_config import LIVE_COPY
from ..lifecycle.names import StateLayout
from ..lifecycle.steps import Argv, PlannedStep


def forget_decision(layout: StateLayout) -> Argv:
    """On the manager, before the split: a decision left from an earlier canary."""
    return ("rm", "-f", layout.canary_decision)


def forget_mark(layout: StateLayout) -> Argv:
    """On a node, before its watchdog starts: an earlier watchdog's mark."""
    return ("rm", "-f", layout.canary_fired)


def clear_node(layout: StateLayout) -> Argv:
    """On a node, once its watchdog went: the watchdog's mark and the live-only copy."""
    return ("rm", "-f", layout.canary_fired, f"{layout.proxy_dir}/{LIVE_COPY}")


def clear_records(layout: StateLayout) -> Argv:
    """On the manager, then: the canary's record and the decision."""
    return ("rm", "-f", layout.canary, layout.canary_decision)


def rows(layout: StateLayout) -> list[PlannedStep]:
    return [PlannedStep("canary", "on the manager, before the split: a decision left from an earlier canary goes",
                        forget_decision(layout)),
            PlannedStep("canary", "on every node, before its watchdog starts: an earlier watchdog's mark goes",
                        forget_mark(layout)),
            PlannedStep("canary", "on every node, once the watchdogs go: their mark and the live copy",
                        clear_node(layout)),
            PlannedStep("canary", "on the manager, then: the canary's record and decision", clear_records(layout))]
