"""A Connector that fails on purpose: wraps a real one and, when the N-th call matching a
pattern comes (an argv for `run`, a path for `put_file`, "address:port/path" for
`http_get`), raises or returns a failing answer instead of (or, `after`, besides) doing it.
Every other call goes through untouched, so the rest of the deploy is the real thing."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Callable

from deployctl.adapters.connector import CommandResult, HttpResponse


@dataclass
class Fault:
    """`call`: run | put_file | http_get. `pattern`: a regex searched in the call's text.
    `nth`: the first matching call that fails (1-based); `times`: how many in a row from
    there (0: every one after). `effect`: "fail" (rc 1 / OSError), "raise" (OSError from
    run too), "timeout" (rc 124, as LocalConnector reports a timeout), or a callable
    returning the answer to give instead."""

    call: str
    pattern: str
    nth: int = 1
    times: int = 1
    effect: str | Callable = "fail"
    seen: int = 0
    fired: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def hit(self, call: str, text: str) -> bool:
        if call != self.call or not re.search(self.pattern, text):
            return False
        with self.lock:
            self.seen += 1
            due = self.seen >= self.nth and (self.times == 0 or self.seen < self.nth + self.times)
            if due:
                self.fired += 1
            return due


class FaultConnector:
    def __init__(self, inner, *faults: Fault) -> None:
        self.inner, self.faults = inner, list(faults)
        self.host = inner.host

    def __getattr__(self, name):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)

    def _fault(self, call: str, text: str) -> Fault | None:
        return next((f for f in self.faults if f.hit(call, text)), None)

    def connect(self) -> "FaultConnector":
        self.inner.connect()
        return self

    def run(self, argv, **kwargs) -> CommandResult:  # type: ignore[no-untyped-def]
        fault = self._fault("run", " ".join(argv))
        if fault is None:
            return self.inner.run(argv, **kwargs)
        if callable(fault.effect):
            return fault.effect(argv)
        if fault.effect == "raise":
            raise OSError(f"injected: connection lost running {argv[:3]}")
        if fault.effect == "timeout":
            return CommandResult(124, "", f"timed out after {kwargs.get('timeout')}s (injected)")
        return CommandResult(1, "", f"injected failure: {' '.join(argv[:4])}")

    def put_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        if self._fault("put_file", path) is not None:
            raise OSError(f"injected: could not write {path}")
        self.inner.put_file(path, data, mode)

    def http_get(self, address: str, port: int, path: str, timeout: float = 2.0) -> HttpResponse:
        fault = self._fault("http_get", f"{address}:{port}{path}")
        if fault is None:
            return self.inner.http_get(address, port, path, timeout)
        if callable(fault.effect):
            return fault.effect(address, port, path)
        raise OSError(f"injected: nothing answers on {address}:{port}")


def wrong_release(address: str, port: int, path: str) -> HttpResponse:
    """An answer through the proxy stamped with a release that is not the target."""
    body = b'{"frontend": {"release": "not-the-target"}}'
    return HttpResponse(200, body, {"x-deployctl-release": "not-the-target"})
