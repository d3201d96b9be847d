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

from deployctl.plan import switch_plan
from tests.integration.deploy_fixtures import ROOT

RESULTS: list[dict] = []
RESULTS_FILE = Path(os.environ.get("FAULTS_RESULTS", ROOT / "build" / "faults.json"))
VERIFY_TIMEOUT = 3.0  # the verify's 15 s, shortened: a failing verify is a cell's cost



@pytest.fixture(autouse=True)
def short_verify(monkeypatch):
    original = switch_plan.verify_check
    monkeypatch.setattr(switch_plan, "verify_check",
                        lambda target: dataclasses.replace(original(target), timeout=VERIFY_TIMEOUT))


FAULTS_DIR = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselect: the count is of the whole suite
def pytest_collection_modifyitems(session, config, items):
    faults = [item for item in items if FAULTS_DIR in Path(str(item.fspath)).parents]
    session.fault_cells = len(faults)
    session.fault_modules = {Path(str(item.fspath)).name for item in faults}


def whole_suite_ran(session, exitstatus) -> bool:
    """Every module and every cell of tests/faults ran, and passed: only such a run may
    rewrite docs/faults.md (a `-k` or single-file run would leave a table of a few rows)."""
    modules = {path.name for path in FAULTS_DIR.glob("test_*.py")}
    return (exitstatus == 0 and getattr(session, "fault_modules", set()) == modules
            and len(RESULTS) == getattr(session, "fault_cells", -1))


def pytest_sessionfinish(session, exitstatus):
    if not RESULTS:
        return
    # build/faults.json: this run's rows merged by cell into the earlier ones (a partial run's
    # record); the table in docs/ is rendered from a whole run only.
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    try:
        earlier = json.loads(RESULTS_FILE.read_text())
    except (OSError, ValueError):
        earlier = []
    merged = {row.get("id"): row for row in earlier} | {row["id"]: row for row in RESULTS}
    RESULTS_FILE.write_text(json.dumps(list(merged.values()), indent=1))
    if whole_suite_ran(session, exitstatus):
        from tests.faults.table import render  # noqa: PLC0415

        (ROOT / "docs" / "faults.md").write_text(render(RESULTS))
