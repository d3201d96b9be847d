"""Typed progress events. Services emit them through an `Emit` callable and never print;
the CLI decides how they look (Rich on a TTY, plain lines in CI logs, JSON lines).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar, Protocol


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"
    host: str | None = field(default=None, kw_only=True)
    service: str | None = field(default=None, kw_only=True)
    at: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v is not None}
        return {"event": self.kind, **data}

    @property
    def subject(self) -> str:
        """Who the event is about, for line prefixes: host and/or service."""
        return "/".join(p for p in (self.host, self.service) if p)


@dataclass(frozen=True)
class StepStarted(Event):
    kind: ClassVar[str] = "step_started"
    step: str
    detail: str = ""


@dataclass(frozen=True)
class StepProgress(Event):
    """A step moved on: `detail` is a human line (a build log line, a pull status);
    `current`/`total` are set when the amount of work is known."""

    kind: ClassVar[str] = "step_progress"
    step: str
    detail: str = ""
    current: float | None = None
    total: float | None = None


@dataclass(frozen=True)
class StepDone(Event):
    kind: ClassVar[str] = "step_done"
    step: str
    detail: str = ""
    seconds: float | None = None


@dataclass(frozen=True)
class StepFailed(Event):
    kind: ClassVar[str] = "step_failed"
    step: str
    error: str
    output: tuple[str, ...] = ()  # the last lines that explain the failure


@dataclass(frozen=True)
class StepSkipped(Event):
    kind: ClassVar[str] = "step_skipped"
    step: str
    reason: str = ""


@dataclass(frozen=True)
class Message(Event):
    kind: ClassVar[str] = "message"
    text: str
    level: str = "info"  # info | warning | error


class Emit(Protocol):
    def __call__(self, event: Event) -> None: ...


def discard(event: Event) -> None:
    """An Emit for callers that do not care about progress (tests, library use)."""


class Recorder:
    """An Emit that keeps every event: tests compare the sequence instead of scraping output."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, cls: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]


def serialized(emit: Emit) -> Emit:
    """An Emit that worker threads can share: renderers write more than once per event, so
    two threads' events would interleave mid-line without the lock."""
    lock = threading.Lock()

    def locked(event: Event) -> None:
        with lock:
            emit(event)

    return locked


class Timer:
    """Emits StepStarted now and StepDone with the elapsed seconds when `done()` is called."""

    def __init__(self, emit: Emit, step: str, *, host: str | None = None,
                 service: str | None = None, detail: str = "") -> None:
        self.emit, self.step, self.host, self.service = emit, step, host, service
        self.started = time.monotonic()
        emit(StepStarted(step, detail, host=host, service=service))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def done(self, detail: str = "") -> float:
        seconds = round(self.elapsed, 3)
        self.emit(StepDone(self.step, detail, seconds, host=self.host, service=self.service))
        return seconds

    def failed(self, error: str, output: tuple[str, ...] = ()) -> None:
        self.emit(StepFailed(self.step, error, output, host=self.host, service=self.service))


EmitFactory = Callable[[], Emit]
