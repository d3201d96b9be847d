"""The deploy lock's record: who holds it, since when, for which release and why."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class LockRecord:
    who: str
    when: str  # RFC 3339, UTC
    action: str  # deploy | rollback
    release: str | None = None
    message: str = ""
    pid: int | None = None  # the deployctl process holding it
    host: str | None = None  # the machine deployctl ran on (not the host it deploys to)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True) + "\n"

    @classmethod
    def parse(cls, text: str | bytes | None) -> "LockRecord | None":
        if not text:
            return None
        try:
            data: Any = json.loads(text)
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (ValueError, TypeError, KeyError):
            return None

    def describe(self, stale: str | None = None) -> str:
        what = f"{self.action} of {self.release}" if self.release else self.action
        where = f" from {self.host}" + (f" pid {self.pid}" if self.pid is not None else "") if self.host else ""
        note = f" ({self.message})" if self.message else ""
        return f"{self.who}{where} since {self.when}: {what}{note}" + (f" [STALE: {stale}]" if stale else "")


def stale_reason(record: LockRecord, machine: str, alive: Callable[[int], bool]) -> str | None:
    """Why a lock is stale, or None when its holder may still run. Only a holder on this
    machine can be checked (is its process there?); one on another machine, or a record
    without a pid, is never called stale: guessing wrong would let two deploys run at once."""
    if record.pid is None or record.host != machine:
        return None
    return None if alive(record.pid) else f"its process {record.pid} on {machine} is gone"
