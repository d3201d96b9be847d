"""Makes sense of the engine's push stream: per-layer state, the digest, the error.

`{"status": "Pushed" | "Layer already exists" | "Mounted from x" | "Pushing" ..., "id": layer}`
per layer, then `{"aux": {"Tag", "Digest", "Size"}}` on success or `{"error": ...}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DONE_STATES = ("Pushed", "Layer already exists", "Mounted from")
NOT_REACHABLE = ("connection refused", "no such host", "i/o timeout", "network is unreachable",
                 "server gave http response to https client", "tls:", "eof")
REFUSED = ("unauthorized", "authentication required", "denied", "forbidden", "incorrect username or password")


@dataclass
class PushLog:
    layers: dict[str, str] = field(default_factory=dict)  # layer id -> last status
    digest: str | None = None
    error: str | None = None

    def feed(self, chunk: dict[str, Any]) -> str | None:
        """Takes one chunk; returns a human line when a layer changed state (not for
        every byte-count update), else None."""
        if "error" in chunk or "errorDetail" in chunk:
            detail = chunk.get("errorDetail") or {}
            self.error = str(detail.get("message") or chunk.get("error") or "unknown push error").strip()
            return None
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("Digest"):
            self.digest = aux["Digest"]
            return None
        layer, status = chunk.get("id"), chunk.get("status")
        if not layer or not isinstance(status, str):
            return None
        previous = self.layers.get(layer)
        self.layers[layer] = status
        if status == previous or status == "Pushing" and previous == "Pushing":
            return None
        return f"{layer}: {status}"

    @property
    def done(self) -> int:
        return sum(1 for s in self.layers.values() if s.startswith(DONE_STATES))

    @property
    def transferred(self) -> int:
        """Layers whose bytes were sent (a layer mounted from another repository was not)."""
        return sum(1 for s in self.layers.values() if s == "Pushed")

    @property
    def already_there(self) -> int:
        return sum(1 for s in self.layers.values() if s.startswith(("Layer already exists", "Mounted from")))

    def summary(self) -> str:
        if self.layers and self.transferred == 0:
            return f"already in the registry, nothing transferred ({self.already_there} layers exist)"
        return f"{self.transferred} layers pushed, {self.already_there} already in the registry"


def classify(message: str) -> str:
    """'unreachable', 'refused' (credentials or permissions) or 'failed': for the user's next step."""
    text = message.lower()
    if any(word in text for word in REFUSED):
        return "refused"
    if any(word in text for word in NOT_REACHABLE):
        return "unreachable"
    return "failed"
