"""A bounded HTTP load loop for zero-downtime checks: a few threads GET one URL on this
machine as fast as they can, stopping at a fixed count or time limit (whichever first),
and record every answer's status and release.

Each request opens its own connection (`Connection: close`): a client that reuses an idle
keep-alive connection nginx is closing at reload would see a reset that real browsers retry
silently; fresh connections make every failure count.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Sample:
    started: float  # time.time(), comparable with event timestamps
    finished: float
    status: int  # 0 when no HTTP answer came back
    # every "release" field in the JSON body; else the release deployctl's proxy stamped on
    # the answer (X-Deployctl-Release): an app that says nothing of its release is checked too
    releases: tuple[str, ...]
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.error


@dataclass
class TrafficReport:
    samples: list[Sample] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.samples)

    @property
    def failures(self) -> list[Sample]:
        return [s for s in self.samples if not s.ok]

    def releases(self) -> Counter:
        return Counter(r for s in self.samples for r in set(s.releases))

    def wrong_release_after(self, moment: float, release: str) -> list[Sample]:
        """Answers to requests *sent* after `moment` that came from any other release."""
        return [s for s in self.samples if s.started >= moment and s.ok and set(s.releases) != {release}]

    def summary(self) -> str:
        return f"{self.total} requests, {len(self.failures)} failed, by release {dict(self.releases())}"


def _release_fields(data) -> list[str]:  # type: ignore[no-untyped-def]
    if isinstance(data, dict):
        out = []
        for key, value in data.items():
            out += [value] if key == "release" and isinstance(value, str) else _release_fields(value)
        return out
    return []


class Traffic:
    """`with Traffic(url) as traffic: ...` then `traffic.report`."""

    def __init__(self, url: str, *, workers: int = 4, max_requests: int = 50_000, max_seconds: float = 180.0,
                 timeout: float = 10.0, ssl_context=None, server_name: str | None = None,  # type: ignore[no-untyped-def]
                 host_header: str | None = None) -> None:
        """https:// URLs take `ssl_context` (the trust to check the certificate with) and
        `server_name` (SNI and the name checked; the connection still goes to this machine).
        `host_header`: the Host every request names (a shared proxy routes by it)."""
        self.host_header = host_header
        parts = urlsplit(url)
        if parts.hostname not in LOCAL_HOSTS:
            raise ValueError(f"traffic only targets this machine, not {parts.hostname!r}")
        self.https, self.context, self.server_name = parts.scheme == "https", ssl_context, server_name
        self.host, self.port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        self.path = parts.path or "/"
        self.workers, self.max_requests, self.max_seconds, self.timeout = workers, max_requests, max_seconds, timeout
        self.report = TrafficReport()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._deadline = 0.0

    def __enter__(self) -> "Traffic":
        self._deadline = time.monotonic() + self.max_seconds
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(self.workers)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:  # type: ignore[no-untyped-def]
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)

    def wait_for(self, count: int, *, since: float | None = None, timeout: float = 30.0) -> bool:
        """Until `count` requests sent at or after `since` (time.time(); default: now) have
        come back, answered or failed: the traffic has been seen flowing past that moment,
        which a fixed sleep only hopes for on a loaded machine. False after `timeout` (the
        report then shows why; the caller's checks judge it)."""
        since = time.time() if since is None else since
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            with self._lock:
                seen = sum(1 for sample in self.report.samples if sample.started >= since)
            if seen >= count or not any(thread.is_alive() for thread in self._threads):
                return seen >= count
            time.sleep(0.02)
        return False

    def _loop(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            with self._lock:
                if len(self.report.samples) >= self.max_requests:
                    return
            sample = self.once()
            with self._lock:
                self.report.samples.append(sample)

    def once(self) -> Sample:
        started = time.time()
        conn = (_NamedHttps(self.host, self.port, self.server_name, self.context, self.timeout) if self.https
                else http.client.HTTPConnection(self.host, self.port, timeout=self.timeout))
        try:
            conn.request("GET", self.path, headers={"Connection": "close",
                                                    **({"Host": self.host_header} if self.host_header else {})})
            response = conn.getresponse()
            body = response.read()
            try:
                releases = tuple(_release_fields(json.loads(body)))
            except ValueError:
                releases = ()
            stamp = response.getheader("X-Deployctl-Release")
            if not releases and stamp:
                releases = (stamp,)
            error = "" if response.status == 200 else body[:200].decode(errors="replace")
            return Sample(started, time.time(), response.status, releases, error)
        except (OSError, http.client.HTTPException) as exc:
            return Sample(started, time.time(), 0, (), f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()


class _NamedHttps(http.client.HTTPSConnection):
    """HTTPS to this machine's address, with another name for SNI and the certificate check."""

    def __init__(self, host: str, port: int, name: str | None, context, timeout: float) -> None:  # type: ignore[no-untyped-def]
        super().__init__(host, port, timeout=timeout, context=context)
        self._name = name or host

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._name)
