"""Secret values: a wrapper that refuses to print itself, and a redactor for text we emit.

The wrapper keeps values out of reprs, f-strings and JSON by accident; the redactor is the
second line of defence for text we did not build ourselves (a remote command's stderr, a
container's log lines) that might echo a value back.
"""

from __future__ import annotations

import json
import threading
from typing import Iterable

MASK = "***"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class Redactor:
    """Replaces every registered secret value in a string with ***.

    Values shorter than 4 characters are not registered: masking every "a" or "1" in a log
    would make output unreadable and protects nothing worth protecting.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        for value in values:
            self.add(value)

    def add(self, value: str | Secret) -> None:
        raw = value.reveal() if isinstance(value, Secret) else value
        if len(raw) >= 4:
            # And as JSON writes it inside a string (a quote, a backslash, a non-ASCII
            # letter escaped): --json lines and the history are JSON.
            forms = {raw, json.dumps(raw)[1:-1], json.dumps(raw, ensure_ascii=False)[1:-1]}
            with self._lock:
                self._values.update(forms)

    def __call__(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, MASK)
        return text


# Process-wide, because secrets are loaded by services and masked by the CLI's renderers.
redactor = Redactor()
