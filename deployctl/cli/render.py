"""How events look: Rich on a TTY, timestamped plain lines in CI logs, JSON lines for machines.

Every renderer passes text through the secret redactor: a remote command's output or a
container log line could echo a value back, and this is the last place to catch it.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import IO, Any

from ..events import Event, Message, StepDone, StepFailed, StepProgress, StepSkipped, StepStarted
from ..secrets import redactor


# Rich's console markup tags (rich.markup.RE_TAGS): `[bold]`, `[/]`, `[cyan]`..., each
# escaped by an odd number of backslashes before it.
_MARKUP_TAG = re.compile(r"((\\*)\[([a-z#/@][^[]*?)])")


def plain_text(markup: str) -> str:
    """`markup` as Rich prints it without styles (Text.from_markup(markup).plain), without
    importing Rich: a plain-text line (CI logs, a pipe) costs no Rich import."""
    out, position = [], 0
    for match in _MARKUP_TAG.finditer(markup):
        full, escapes, _ = match.groups()
        start, end = match.span()
        out.append(markup[position:start])
        backslashes, escaped = divmod(len(escapes), 2)
        out.append("\\" * backslashes)
        if escaped:
            out.append(full[len(escapes):])  # a literal "[...]"
        position = end
    out.append(markup[position:])
    return "".join(out)


def _stamp(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def describe(event: Event) -> str:
    """One human line for an event (used by the plain renderer and the Rich log lines)."""
    who = f"[{event.subject}] " if event.subject else ""
    if isinstance(event, StepStarted):
        text = f"{event.step} ..." + (f" {event.detail}" if event.detail else "")
    elif isinstance(event, StepProgress):
        amount = ""
        if event.current is not None and event.total:
            amount = f" ({event.current:.0f}/{event.total:.0f})"
        text = f"{event.step}: {event.detail}{amount}"
    elif isinstance(event, StepDone):
        took = f" ({event.seconds:.1f}s)" if event.seconds is not None else ""
        text = f"{event.step} done{took}" + (f": {event.detail}" if event.detail else "")
    elif isinstance(event, StepFailed):
        text = f"{event.step} FAILED: {event.error}"
        if event.output:
            text += "\n" + "\n".join(f"    | {line}" for line in event.output)
    elif isinstance(event, StepSkipped):
        text = f"{event.step} skipped" + (f": {event.reason}" if event.reason else "")
    elif isinstance(event, Message):
        level = "" if event.level == "info" else f"{event.level.upper()}: "
        text = f"{level}{event.text}"
    else:
        text = event.kind
    return redactor(who + text)


class PlainRenderer:
    """For Jenkins and pipes: no colour, no cursor movement, one timestamped line per event.

    Progress lines are throttled per step: a build streams hundreds of lines and CI logs
    need the gist, not every byte (the full output is kept for failures).
    """

    def __init__(self, stream: IO[str] | None = None, progress_every: float = 2.0) -> None:
        self.stream = stream
        self.progress_every = progress_every
        self._last_progress: dict[tuple[str, str], float] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepProgress):
            key = (event.subject, event.step)
            last = self._last_progress.get(key)
            if last is not None and event.at - last < self.progress_every:
                return
            self._last_progress[key] = event.at
        stream = self.stream or sys.stdout
        print(f"{_stamp(event.at)} {describe(event)}", file=stream, flush=True)

    def close(self) -> None:
        pass


def redact_strings(value: Any) -> Any:
    if isinstance(value, str):
        return redactor(value)
    if isinstance(value, dict):
        return {k: redact_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_strings(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redactor(str(value))  # what json's default=str would have written


class JsonRenderer:
    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        self.write(event.to_dict())

    def write(self, data: dict[str, Any]) -> None:
        # Mask string values, not the serialised line: a secret made of digits would
        # otherwise eat digits out of timestamps and durations.
        line = json.dumps(redact_strings(data), default=str, sort_keys=False)
        print(line, file=self.stream or sys.stdout, flush=True)

    def close(self) -> None:
        pass


# The per-host summary step services/lifecycle/rollout.py opens and closes around each host's work:
# when it ends, that host's row is final.
HOST_FINAL_STEPS = frozenset({"deploy", "rollback"})


class RichRenderer:
    """A live spinner line per running step, finished steps printed above it.

    Events about a host (a deploy or rollback) share one live row per host instead: the
    host, its current step and detail, the time since it began; the row stops with the
    host's outcome. With several hosts this is a live per-host progress table.
    """

    def __init__(self, console: Any) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = console
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
            console=console, transient=True,
        )
        self.tasks: dict[tuple[str, str], Any] = {}
        self.rows: dict[str, Any] = {}  # host -> its row
        self.started = False

    def __call__(self, event: Event) -> None:
        from rich.markup import escape

        if not self.started:
            self.progress.start()
            self.started = True
        key = (event.subject, getattr(event, "step", ""))
        if event.host and key[1]:
            self._host_row(event, key[1])
        label = escape(redactor(f"{event.subject + ': ' if event.subject else ''}{key[1]}"))
        if isinstance(event, StepStarted) and not event.host:
            self.tasks[key] = self.progress.add_task(label, total=None)
        elif isinstance(event, StepProgress) and key in self.tasks:
            detail = escape(redactor(event.detail))[:80]
            self.progress.update(self.tasks[key], description=f"{label} [dim]{detail}[/]",
                                 completed=event.current, total=event.total)
        elif isinstance(event, (StepDone, StepFailed, StepSkipped)):
            if key in self.tasks:
                self.progress.remove_task(self.tasks.pop(key))
            mark = {StepDone: "[green]✓[/]", StepFailed: "[red]✗[/]", StepSkipped: "[yellow]-[/]"}[type(event)]
            self.progress.console.print(f"{mark} {escape(describe(event))}")
        elif isinstance(event, Message):
            style = {"warning": "yellow", "error": "red"}.get(event.level, "")
            text = escape(describe(event))
            self.progress.console.print(f"[{style}]{text}[/]" if style else text)

    def _host_row(self, event: Event, step: str) -> None:
        from rich.markup import escape

        host = event.host or ""
        width = max(len(h) for h in [*self.rows, host])
        name = f"[bold]{escape(host.ljust(width))}[/]"
        service = f"/{event.service}" if event.service else ""
        if isinstance(event, (StepStarted, StepProgress)):
            detail = escape(redactor(event.detail))[:70]
            text = f"{name}  {escape(step + service)} [dim]{detail}[/]"
        elif isinstance(event, StepDone):
            text = f"{name}  [green]✓[/] {escape(step + service)} [dim]{escape(redactor(event.detail))[:70]}[/]"
        elif isinstance(event, StepFailed):
            text = f"{name}  [red]✗[/] {escape(step + service)} [dim]{escape(redactor(event.error))[:70]}[/]"
        elif isinstance(event, StepSkipped):
            text = f"{name}  [yellow]-[/] {escape(step + service)} [dim]{escape(redactor(event.reason))[:70]}[/]"
        else:
            return
        if host not in self.rows:
            self.rows[host] = self.progress.add_task(text, total=None)
        final = step in HOST_FINAL_STEPS and isinstance(event, (StepDone, StepFailed, StepSkipped))
        # A finished row stops its spinner and its clock.
        self.progress.update(self.rows[host], description=text, **({"total": 1, "completed": 1} if final else {}))

    def close(self) -> None:
        if self.started:
            self.progress.stop()
            self.started = False
        for task in [*self.tasks.values(), *self.rows.values()]:
            self.progress.remove_task(task)
        self.tasks.clear()
        self.rows.clear()
