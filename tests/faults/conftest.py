"""The fault suite's shared pieces: the probe images (built once per session), one site
per module (cells run in order on it: each cell's converging deploy is the next one's
previous release), a short verify timeout, and the results collector that renders
docs/faults.md when every cell ran."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from deployctl.plan.lifecycle import switch_plan
from deployctl.plan.swarm import swarm_plan
from tests.integration.deploy_fixtures import ROOT

RESULTS: list[dict] = []
RESULTS_FILE = Path(os.environ.get("FAULTS_RESULTS", ROOT / "build" / "faults.json"))
VERIFY_TIMEOUT = 3.0  # the verify's 15 s, shortened: a failing verify is a cell's cost



@pytest.fixture(autouse=True)
def short_verify(monkeypatch):
    original = switch_plan.verify_check
    short = lambda target: dataclasses.replace(original(target), timeout=VERIFY_TIMEOUT)  # noqa: E731
    monkeypatch.setattr(switch_plan, "verify_check", short)
    monkeypatch.setattr(swarm_plan, "verify_check", short)  # the Swarm's plan imported it by name


FAULTS_DIR = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselect: the count is of the whole suite
def pytest_collection_modifyitems(session, config, items):
    faults = [item for item in items if FAULTS_DIR in Path(str(item.fspath)).parents]
    session.fault_cells = len(faults)
    session.fault_modules = {Path(str(item.fspath)).name for item in faults}


def whole_suite_ran(exitstatus, results: list, cells: int, modules: set) -> bool:
    """Every module and every cell of tests/faults ran, and passed: only such a run may
    rewrite docs/faults.md (a `-k` or single-file run would leave a table of a few rows)."""
    every_module = {path.name for path in FAULTS_DIR.glob("test_*.py")}
    return exitstatus == 0 and modules == every_module and len(results) == cells


# Each row's test's place in the collection: under xdist the rows come back worker by worker,
# and the table keeps the collection's order (a module's cells run in order on one worker).
ORDER: list[int] = []


@pytest.fixture(autouse=True)
def _row_order(request):
    before = len(RESULTS)
    yield
    index = request.session.items.index(request.node)
    ORDER.extend([index] * (len(RESULTS) - before))


def pytest_sessionfinish(session, exitstatus):
    cells, modules = getattr(session, "fault_cells", -1), getattr(session, "fault_modules", set())
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller records every worker's rows
        if RESULTS:
            workeroutput.update(fault_rows=list(zip(ORDER, RESULTS)), fault_cells=cells,
                                fault_modules=sorted(modules))
        return
    record(RESULTS, exitstatus, cells, modules)


def record_workers(outputs: list[dict], exitstatus) -> None:
    """The controller of an xdist run (tests/conftest.py): every worker's rows, in collection
    order. Each worker collected the whole run, so any one's counts are the run's."""
    rows = [row for _, row in sorted((pair for out in outputs for pair in out["fault_rows"]), key=lambda p: p[0])]
    record(rows, exitstatus, outputs[0]["fault_cells"], set(outputs[0]["fault_modules"]))


def record(results: list, exitstatus, cells: int, modules: set) -> None:
    if not results:
        return
    # build/faults.json: this run's rows merged by cell into the earlier ones (a partial run's
    # record); the table in docs/ is rendered from a whole run only.
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    try:
        earlier = json.loads(RESULTS_FILE.read_text())
    except (OSError, ValueError):
        earlier = []
    merged = {row.get("id"): row for row in earlier} | {row["id"]: row for row in results}
    RESULTS_FILE.write_text(json.dumps(list(merged.values()), indent=1))
    if whole_suite_ran(exitstatus, results, cells, modules):
        from tests.faults.table import render  # noqa: PLC0415

        (ROOT / "docs" / "faults.md").write_text(render(results))
