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
    run too), "timeout" (rc 124, as LocalConnector reports a timeout), a callable
    returning the answer to give instead, or, on an SSHConnector, "drop" (its paramiko
    transport is closed, then the call is made: the connection dropped between two calls)
    "pass" (the call goes through untouched: only `action` matters, a real fault made on
    the host at that moment), or "drop_mid" (a `run` starts, held back 1 s by `sh -c 'sleep 1; exec "$@"'`, and the
    transport is closed 0.3 s in: the connection dropped while the command was in flight).
    `action`: called when the fault fires, first (e.g. make the host unreachable)."""

    call: str
    pattern: str
    nth: int = 1
    times: int = 1
    effect: str | Callable = "fail"
    action: Callable[[], None] | None = None
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
        fault = next((f for f in self.faults if f.hit(call, text)), None)
        if fault is not None and fault.action is not None:
            fault.action()
        if fault is not None and fault.effect == "drop":
            self.drop()
            return None  # the call itself goes through: the connector must reconnect
        if fault is not None and fault.effect == "pass":
            return None  # only the action: a real fault made on the host at this very moment
        return fault

    def drop(self) -> None:
        """Closes the SSH connection under the connector, as a network drop would."""
        transport = self.inner._client.get_transport() if self.inner._client is not None else None
        if transport is not None:
            transport.close()

    def connect(self) -> "FaultConnector":
        self.inner.connect()
        return self

    def run(self, argv, **kwargs) -> CommandResult:  # type: ignore[no-untyped-def]
        fault = self._fault("run", " ".join(argv))
        if fault is None:
            return self.inner.run(argv, **kwargs)
        if callable(fault.effect):
            return fault.effect(argv)
        if fault.effect == "drop_mid":
            timer = threading.Timer(0.3, self.drop)
            timer.start()
            try:
                return self.inner.run(["sh", "-c", 'sleep 1; exec "$@"', "sh", *argv], **kwargs)
            finally:
                timer.cancel()
        if fault.effect == "raise":
            raise OSError(f"injected: connection lost running {argv[:3]}")
        if fault.effect == "timeout":
            return CommandResult(124, "", f"timed out after {kwargs.get('timeout')}s (injected)")
        return CommandResult(1, "", f"injected failure: {' '.join(argv[:4])}")

    def put_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        if self._fault("put_file", path) is not None:
            raise OSError(f"injected: could not write {path}")
        self.inner.put_file(path, data, mode)

    def http_get(self, address: str, port: int, path: str, timeout: float = 2.0, headers=None) -> HttpResponse:
        fault = self._fault("http_get", f"{address}:{port}{path}")
        if fault is None:
            return self.inner.http_get(address, port, path, timeout, headers)
        if callable(fault.effect):
            return fault.effect(address, port, path)
        raise OSError(f"injected: nothing answers on {address}:{port}")


def wrong_release(address: str, port: int, path: str) -> HttpResponse:
    """An answer through the proxy stamped with a release that is not the target."""
    body = b'{"frontend": {"release": "not-the-target"}}'
    return HttpResponse(200, body, {"x-deployctl-release": "not-the-target"})


def host_clock_off(skew: int) -> list[Fault]:
    """The host's clock `skew` seconds off this machine's (negative: behind), simulated at the
    connector: containers share this machine's kernel clock, and moving it would move
    everything on the machine. What deployctl sees of a host's clock is made consistent:
    `date +%s.%N` answers in it, `docker logs --since S` means S in it, and the log's
    timestamps come back in it. Every other call is the real one."""
    from deployctl.adapters.local import LocalConnector

    real = LocalConnector()

    def clock(argv) -> CommandResult:  # type: ignore[no-untyped-def]
        done = real.run(argv)
        return CommandResult(done.rc, f"{float(done.stdout) + skew:.9f}\n", done.stderr)

    def logs(argv) -> CommandResult:  # type: ignore[no-untyped-def]
        argv = list(argv)
        at = argv.index("--since") + 1
        argv[at] = f"{float(argv[at]) - skew:.3f}"
        done = real.run(argv, timeout=30)
        return CommandResult(done.rc, _shift_stamps(done.stdout, skew), done.stderr)

    return [Fault("run", r"^date \+%s\.%N$", times=0, effect=clock),
            Fault("run", r"^docker logs --timestamps --since ", times=0, effect=logs)]


def _shift_stamps(text: str, skew: int) -> str:
    """Docker's `2026-12-02T15:50:00.123456789Z ` line prefixes moved by whole seconds."""
    import calendar
    import time

    def shifted(match: re.Match[str]) -> str:
        whole = calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")) + skew
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + match.group(2)

    return re.sub(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+Z|Z)", shifted, text, flags=re.M)
