"""A planned step: one printed line of a dry run (the step, what it does, the docker argv
it runs). Its own module because the switch plan, the deploy's preparation and the
accessories all describe themselves with it.

A `Step` is what a run executes: its name (what an error names as the step under way), the
rows `--dry-run` prints for it, and the action. The run walks the same list the dry run
prints, so the two cannot drift apart (a hand-written dry run had missed two steps)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

Argv = tuple[str, ...]


@dataclass(frozen=True)
class PlannedStep:
    step: str
    detail: str = ""
    argv: Argv | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["argv"] = list(self.argv) if self.argv else None
        return data


@dataclass(frozen=True)
class Step:
    name: str
    rows: tuple[PlannedStep, ...]
    action: Callable[[], object]
