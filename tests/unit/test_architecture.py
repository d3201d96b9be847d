"""The layers of docs/design hold, read from the source by scripts/import_graph.py: no import
circle (services/testing <-> services/test_command was one), no arrow up the layers
(config/resolve imported plan/; it is plan/resolved_config now), and plan/ stays pure."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "import_graph.py"


def load():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_no_import_circle_and_no_arrow_up_the_layers():
    graph = load()
    edges = graph.graph()
    assert graph.circles(edges) == []
    assert graph.upward(edges) == []
    assert graph.main([]) == 0


def test_plan_imports_no_adapter_and_no_service():
    edges = load().graph()
    impure = sorted((a, b) for a, t in edges.items() if a.startswith("deployctl.plan.") for b in t
                    if b.startswith(("deployctl.adapters", "deployctl.services", "deployctl.cli")))
    assert impure == []
