"""Makes sense of the classic builder's JSON stream: which step runs, its output, the outcome.

The stream interleaves `{"stream": text}` chunks (not aligned to lines), `{"aux": {"ID": ...}}`
with the image id, and `{"error": ..., "errorDetail": ...}` when a step fails. On failure the
user needs the step that failed and the last lines it printed, nothing more.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterator

STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)\Z")
# The builder's own bookkeeping lines: not output of the step, never worth showing.
NOISE_RE = re.compile(r"^( ---> [0-9a-f]{12}\Z| ---> Running in |Removing intermediate container |Successfully built |Successfully tagged )")
CACHE_LINE = " ---> Using cache"


@dataclass(frozen=True)
class BuildLine:
    text: str
    step: int | None
    steps: int | None


class BuildLog:
    def __init__(self, keep: int = 15) -> None:
        self.step: str | None = None  # "Step 3/7 : RUN pip install ..."
        self.step_number: int | None = None
        self.step_total: int | None = None
        self.cached_steps = 0
        self.image_id: str | None = None
        self.error: str | None = None
        self.tail: deque[str] = deque(maxlen=keep)  # output of the current step only
        self._partial = ""

    def feed(self, chunk: dict[str, Any]) -> Iterator[BuildLine]:
        """Takes one chunk; yields the human lines it completed (steps and step output)."""
        if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
            self.image_id = chunk["aux"]["ID"]
        if "error" in chunk or "errorDetail" in chunk:
            detail = chunk.get("errorDetail") or {}
            self.error = str(detail.get("message") or chunk.get("error") or "unknown build error").strip()
            yield from self.flush()
            return
        text = chunk.get("stream")
        if not isinstance(text, str):
            return
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            yield from self._line(line.rstrip("\r"))

    def flush(self) -> Iterator[BuildLine]:
        if self._partial:
            line, self._partial = self._partial, ""
            yield from self._line(line)

    def _line(self, line: str) -> Iterator[BuildLine]:
        match = STEP_RE.match(line)
        if match:
            self.step_number, self.step_total = int(match[1]), int(match[2])
            self.step = line
            self.tail.clear()
            yield BuildLine(line, self.step_number, self.step_total)
            return
        if line.startswith(CACHE_LINE):
            self.cached_steps += 1
            return
        if not line.strip() or NOISE_RE.match(line):
            return
        self.tail.append(line)
        yield BuildLine(line, self.step_number, self.step_total)

    def failure_output(self) -> tuple[str, ...]:
        return tuple(self.tail)
