"""The deploy lock's record: who holds it, since when, for which release and why."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class LockRecord:
    who: str
    when: str  # RFC 3339, UTC
    action: str  # deploy | rollback
    release: str | None = None
    message: str = ""
    pid: int | None = None
    host: str | None = None  # the machine deployctl ran on

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

    def describe(self) -> str:
        what = f"{self.action} of {self.release}" if self.release else self.action
        where = f" from {self.host}" if self.host else ""
        note = f" ({self.message})" if self.message else ""
        return f"{self.who}{where} since {self.when}: {what}{note}"
