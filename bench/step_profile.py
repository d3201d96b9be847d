"""Where a deployctl command's seconds go: its `--json` events, each stamped when its line
arrives (the events carry no clock), folded into one row per step (when it started after
the command, how long it took) and the gaps between steps (start-up, work no timer names).

Used by bench/swarm_deploy.py for the Swarm's deploy and rollback (issue 26: where their seconds go).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field


@dataclass
class Profile:
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""
    wall: float = 0.0
    # (step, detail, started after the command began, seconds or None when it never ended)
    steps: list[tuple[str, str, float, float | None]] = field(default_factory=list)
    first_event: float | None = None

    def table(self) -> str:
        lines = [f"    {'step':<12} {'from s':>7} {'took s':>7}  detail"]
        if self.first_event is not None:
            lines.append(f"    {'(start-up)':<12} {0.0:>7.2f} {self.first_event:>7.2f}  CLI start to its first event")
        end = self.first_event or 0.0
        for step, detail, at, took in self.steps:
            if at - end > 0.15:
                lines.append(f"    {'(between)':<12} {end:>7.2f} {at - end:>7.2f}")
            lines.append(f"    {step:<12} {at:>7.2f} {took if took is not None else float('nan'):>7.2f}  {detail[:70]}")
            end = max(end, at + (took or 0.0))
        lines.append(f"    {'(to exit)':<12} {end:>7.2f} {self.wall - end:>7.2f}  after the last step")
        return "\n".join(lines)


def profiled(argv: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> Profile:
    """Run `argv` (a deployctl command with `--json`), stamping each line as it arrives."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    out: list[str] = []
    open_steps: dict[tuple[str, str], tuple[str, float, int]] = {}
    profile = Profile()
    assert proc.stdout is not None
    for line in proc.stdout:
        now = time.monotonic() - started
        out.append(line)
        if now > timeout:
            proc.kill()
            break
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or "event" not in event:
            continue
        if profile.first_event is None:
            profile.first_event = now
        key = (event.get("step", ""), event.get("host", "") or "")
        if event["event"] == "step_started":
            open_steps[key] = (event.get("detail", ""), now, len(profile.steps))
            profile.steps.append((key[0], event.get("detail", ""), now, None))
        elif event["event"] in ("step_done", "step_failed") and key in open_steps:
            detail, at, index = open_steps.pop(key)
            took = event.get("seconds")
            profile.steps[index] = (key[0], event.get("detail") or detail, at, took if took is not None else now - at)
    profile.stderr = proc.stderr.read() if proc.stderr else ""
    profile.returncode = proc.wait()
    profile.wall = time.monotonic() - started
    profile.stdout = "".join(out)
    return profile
