"""Which release this process belongs to, from the variables deployctl sets."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class ReleaseInfo:
    release: str
    revision: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "ReleaseInfo":
        env = os.environ if env is None else env
        return cls(
            release=env.get("DEPLOYCTL_RELEASE") or "unknown",
            revision=env.get("DEPLOYCTL_REVISION") or "unknown",
        )

    def as_dict(self) -> dict[str, str]:
        return {"release": self.release, "revision": self.revision}
