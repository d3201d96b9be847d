"""The suite's xdist grouping (tests/conftest.py, tests/README.md) really keeps a module's
tests on one worker when they share a module-scoped fixture, and an explicit xdist_group
together, while the other tests spread: run on a small generated suite with 3 workers, the
way scripts/test runs the real one. (With pytest 9.2, xdist's own `--dist loadgroup` silently
spread grouped tests over workers: this is the check that would have caught it.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.integration.deploy_fixtures import ROOT

SUITE = '''
import json, os, time
from pathlib import Path
import pytest

OUT = Path(os.environ["GROUPS_OUT"])


def ran(name):
    (OUT / f"{name}.json").write_text(json.dumps(os.environ["PYTEST_XDIST_WORKER"]))


@pytest.fixture(scope="module")
def module_site():
    return object()


@pytest.mark.parametrize("i", range(4))
def test_shares_a_module_fixture(module_site, i):
    time.sleep(0.3)
    ran(f"module-{i}")


@pytest.mark.xdist_group("pinned")
@pytest.mark.parametrize("i", range(3))
def test_pinned(i):
    time.sleep(0.3)
    ran(f"pinned-{i}")


@pytest.mark.parametrize("i", range(8))
def test_free(i):
    time.sleep(0.3)
    ran(f"free-{i}")
'''


def test_grouped_tests_share_one_worker_and_the_rest_spread(tmp_path):
    (tmp_path / "test_generated.py").write_text(SUITE)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "GROUPS_OUT": str(out), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-c", os.devnull,
         "--rootdir", str(tmp_path), "-q", "-n", "3", "--dist", "loadgroup", "--no-loadscope-reorder",
         str(tmp_path / "test_generated.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    workers = {path.stem: json.loads(path.read_text()) for path in out.glob("*.json")}
    assert len(workers) == 15, workers
    assert len({workers[f"module-{i}"] for i in range(4)}) == 1, workers
    assert len({workers[f"pinned-{i}"] for i in range(3)}) == 1, workers
    assert len({workers[f"free-{i}"] for i in range(8)}) > 1, workers  # the rest is not serialised
