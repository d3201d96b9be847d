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


def pytest_collection_modifyitems(session, config, items):
    session.fault_cells = sum(1 for item in items if "tests/faults/" in str(item.fspath))


def pytest_sessionfinish(session, exitstatus):
    if not RESULTS:
        return
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(RESULTS, indent=1))
    if len(RESULTS) == getattr(session, "fault_cells", -1) and exitstatus == 0:
        from tests.faults.table import render  # noqa: PLC0415

        (ROOT / "docs" / "faults.md").write_text(render(RESULTS))
