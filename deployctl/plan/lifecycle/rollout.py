"""A rollout across hosts as data: which hosts go together, how many run at once, when the
rollout stops, what every host's outcome means for the exit code, and which release a
fleet rollback goes to. No I/O: services/lifecycle/rollout.py does what this decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from ...errors import ExitCode, RollbackError, UncertainError

# What a rollout did to one host (printed, in --json results, and in the host's history).
SUCCEEDED = "succeeded"  # on the new release, verified through its nginx
ALREADY_LIVE = "already live"  # rollback: the host already ran the target release
FAILED = "failed"  # failed before its switch: its previous release never stopped serving
SWITCHED_BACK = "switched back"  # failed its post-switch check and put its previous release back
REVERTED = "reverted"  # switched fine; the rollout stopped and put its previous release back
KEPT = "kept"  # switched fine; the rollout stopped and stays there (on_failure = "halt")
SKIPPED = "skipped"  # the rollout stopped before this host's turn: nothing changed on it
UNCERTAIN = "uncertain"  # a switch-back or revert did not finish: look at the host
ABORTED = "aborted"  # its canary was judged bad (or aborted by hand): back on its live release at 100%

DONE = frozenset({SUCCEEDED, ALREADY_LIVE})
# The host serves exactly what it served before the rollout.
AS_BEFORE = frozenset({FAILED, SWITCHED_BACK, REVERTED, SKIPPED, ABORTED})
# Outcomes that count against rollout.max_failures: the host itself failed.
HOST_FAILURES = frozenset({FAILED, SWITCHED_BACK, UNCERTAIN})


def batches(hosts: Sequence[str], batch: int | None) -> list[list[str]]:
    """Hosts in rollout order, `batch` at a time (None: one batch of every host)."""
    size = batch or len(hosts) or 1
    return [list(hosts[i:i + size]) for i in range(0, len(hosts), size)]


def concurrency(batch_size: int, parallel: int | None) -> int:
    """Hosts worked on at once inside a batch: `parallel` (None: all of them), at least 1."""
    return max(1, min(batch_size, parallel or batch_size))


def should_stop(outcomes: Mapping[str, str], max_failures: int) -> bool:
    """More hosts failed than the rollout tolerates."""
    return sum(1 for outcome in outcomes.values() if outcome in HOST_FAILURES) > max_failures


@dataclass(frozen=True)
class Verdict:
    exit_code: ExitCode
    summary: str

    @property
    def ok(self) -> bool:
        return self.exit_code == ExitCode.OK


def verdict(outcomes: Mapping[str, str]) -> Verdict:
    """0 when every host reached the release; 6 when every host serves what it served before
    (nothing to clean up); 7 otherwise: a host is uncertain, or hosts now serve different
    releases (`halt`, failures tolerated by max_failures, a host with no previous release).
    A failed host never yields 0, whatever max_failures says."""
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    values = set(outcomes.values())
    if values <= DONE:
        return Verdict(ExitCode.OK, summary)
    if values <= AS_BEFORE:
        return Verdict(ExitCode.DEPLOY_FAILED, summary)
    return Verdict(ExitCode.ROLLBACK_FAILED, summary)


@dataclass(frozen=True)
class HostReleases:
    """What a host runs and would roll back to (read from its history)."""

    host: str
    current: str | None
    previous_good: str | None


def rollback_target(hosts: Sequence[HostReleases], to: str | None) -> str:
    """The one release every host goes to: `to`, or the previous good release they all
    agree on. Hosts that disagree (a halted rollout, a host added later) are refused with
    what each would pick, so that a fleet never rolls back to a mix."""
    if to is not None:
        return to
    targets = {h.previous_good for h in hosts}
    if targets == {None}:
        raise RollbackError("no earlier good release to roll back to (live: "
                            + ", ".join(sorted({h.current or "none" for h in hosts})) + ")",
                            hint="`deployctl releases --env ...` lists what each host has")
    if len(targets) > 1:
        detail = "; ".join(f"{h.host}: live {h.current or 'none'}, previous {h.previous_good or 'none'}"
                           for h in hosts)
        # Refused, nothing changed: 6; but hosts already serving different releases (a
        # halted rollout) are a site to look at first: 7, as the rollout that split them said.
        apart = len({h.current for h in hosts}) > 1
        raise (UncertainError if apart else RollbackError)(
            f"the hosts disagree about their previous release ({detail})",
            hint="pass --to RELEASE to name the release every host goes to")
    return targets.pop()  # type: ignore[return-value]
