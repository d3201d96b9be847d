"""What `deployctl scale` leaves for later switches on a Swarm, as data. A scale is the
operator's capacity decision for the environment, not a property of one release: it is
recorded in the history (a `scale` record of the live release with the new counts), and
every later record carries it forward, so that

- a **rollback** runs the target release with the scaled counts (its own recorded counts
  for the services nobody scaled), and
- the **next deploy** keeps a scaled count unless deploy.toml's `replicas` of that service
  changed since the scale (then deploy.toml says what the operator wants now).

A record's extra holds `scaled`: service -> [count, the deploy.toml replicas it overrode].
"""

from __future__ import annotations

from typing import Any, Mapping

SCALED = "scaled"  # the record's extra: the scale overrides in force after it

Overrides = dict[str, tuple[int, int]]  # service -> (scaled count, deploy.toml's replicas then)


def overrides_in(extra: Mapping[str, Any] | None) -> Overrides:
    out: Overrides = {}
    for service, value in ((extra or {}).get(SCALED) or {}).items():
        if isinstance(value, (list, tuple)) and len(value) == 2:
            out[service] = (int(value[0]), int(value[1]))
    return out


def to_extra(overrides: Overrides) -> dict[str, Any]:
    if not overrides:
        return {}
    return {SCALED: {service: [count, configured] for service, (count, configured) in sorted(overrides.items())}}


def after_scale(overrides: Overrides, counts: Mapping[str, int], configured: Mapping[str, int]) -> Overrides:
    """The overrides once `counts` (service -> tasks) were scaled to, against deploy.toml's
    `configured` replicas."""
    return {**overrides, **{service: (count, configured[service]) for service, count in counts.items()}}


def for_deploy(configured: Mapping[str, int], overrides: Overrides) -> tuple[dict[str, int], Overrides]:
    """A new release's counts: deploy.toml's, but a scaled count where deploy.toml's value
    is still the one the scale overrode. Returns the counts and the overrides still in force."""
    kept = {s: (count, was) for s, (count, was) in overrides.items() if configured.get(s) == was}
    return {s: kept[s][0] if s in kept else n for s, n in configured.items()}, kept


def for_rollback(recorded: Mapping[str, int], overrides: Overrides) -> dict[str, int]:
    """The target release's counts as it last ran, with the environment's scaled counts."""
    return {s: overrides[s][0] if s in overrides else n for s, n in recorded.items()}
