"""A planned step: one printed line of a dry run (the step, what it does, the docker argv
it runs). Its own module because the switch plan, the deploy's preparation and the
accessories all describe themselves with it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

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
