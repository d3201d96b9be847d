"""The Rich renderer's per-host rows (a live table during a rollout), and the plain and JSON
lines that carry the host for CI logs and machines."""

from __future__ import annotations

import io
import json

from deployctl.cli.render import JsonRenderer, PlainRenderer, RichRenderer
from deployctl.events import StepDone, StepFailed, StepProgress, StepSkipped, StepStarted


def rollout_events():  # type: ignore[no-untyped-def]
    yield StepStarted("deploy", "batch 1/2", host="10.0.0.1")
    yield StepStarted("deploy", "batch 2/2", host="10.0.0.22")
    yield StepStarted("pull", "repo@sha256:abc", host="10.0.0.1")
    yield StepProgress("health", "backend healthy after 1.2s", host="10.0.0.1", service="backend")
    yield StepDone("pull", "already on the host", 0.1, host="10.0.0.1")
    yield StepFailed("health", "not healthy after 5s", ("boom",), host="10.0.0.22")
    yield StepFailed("deploy", "reverted: 10.0.0.22: not healthy after 5s", host="10.0.0.1")
    yield StepSkipped("deploy", "the deploy stopped before this host", host="10.0.0.22")


def test_rich_renderer_keeps_one_row_per_host_and_stops_it_at_the_outcome():
    from rich.console import Console

    console = Console(file=io.StringIO(), force_terminal=True, width=120, record=True)
    render = RichRenderer(console)
    events = list(rollout_events())
    for event in events[:4]:
        render(event)
    rows = {host: render.progress._tasks[task] for host, task in render.rows.items()}
    assert list(rows) == ["10.0.0.1", "10.0.0.22"] and not render.tasks  # no spinner per host step
    assert "health/backend" in rows["10.0.0.1"].description and "healthy after 1.2s" in rows["10.0.0.1"].description
    assert "batch 2/2" in rows["10.0.0.22"].description
    assert not any(row.finished for row in rows.values())
    for event in events[4:]:
        render(event)
    assert all(row.finished for row in rows.values())
    assert "reverted" in rows["10.0.0.1"].description and "stopped before" in rows["10.0.0.22"].description
    render.close()
    text = console.export_text()
    # Finished steps are still printed above the rows, with the host, as before.
    assert "✓ [10.0.0.1] pull done (0.1s): already on the host" in text
    assert "✗ [10.0.0.22] health FAILED: not healthy after 5s" in text and "| boom" in text
    assert not render.rows and not render.tasks


def test_plain_and_json_lines_name_the_host():
    plain, machine = io.StringIO(), io.StringIO()
    for event in rollout_events():
        PlainRenderer(plain)(event)
        JsonRenderer(machine)(event)
    lines = plain.getvalue().splitlines()
    assert lines[0].endswith("[10.0.0.1] deploy ... batch 1/2")
    assert lines[-1].endswith("[10.0.0.22] deploy skipped: the deploy stopped before this host")
    records = [json.loads(line) for line in machine.getvalue().splitlines()]
    assert all(r["host"] in ("10.0.0.1", "10.0.0.22") for r in records)
    assert records[-2] == {**records[-2], "event": "step_failed", "step": "deploy", "host": "10.0.0.1"}
