"""The suite's xdist grouping (tests/conftest.py, tests/README.md) really keeps a module's
tests on one worker when they share a module-scoped fixture, and an explicit xdist_group
together, while the other tests spread: run on a small generated suite with 3 workers, the
way scripts/test runs the real one. (With pytest 9.2, xdist's own `--dist loadgroup` silently
spread grouped tests over workers: this is the check that would have caught it.)

And the real suite's fleet and Swarm are one fixture each, reached by every test that uses
them: the fleet's and the Swarm's tests and their fault cells. (Imported into a module or a
conftest, a fixture function is registered again there with an instance of its own: the
fleet faults started a second fleet, the Swarm faults a second fleet and a second Swarm, on
workers that already had one, four fleets of three hosts with their own dockerd in a run.)"""

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


# Loaded into a collect-only run of the real suite: each test's group (the xdist_group marker
# tests/conftest.py adds) and the FixtureDef its `fleet` and `swarm` resolve to (its identity
# in that one process, and where its function is defined).
FIXTURES_PROBE = '''
import json, os


def pytest_collection_finish(session):
    rows = {}
    for item in session.items:
        marker = item.get_closest_marker("xdist_group")
        row = {"group": marker.args[0] if marker else None}
        for name in ("fleet", "swarm"):
            defs = item._fixtureinfo.name2fixturedefs.get(name)
            if defs and name in item.fixturenames:
                row[name] = [id(defs[-1]), defs[-1].func.__module__]
        rows[item.nodeid] = row
    with open(os.environ["FIXTURES_OUT"], "w") as out:
        json.dump(rows, out)
'''
FLEET_FILES = ["tests/integration/fleet", "tests/faults/test_fleet_faults.py"]
SWARM_FILES = ["tests/integration/swarm", "tests/faults/test_swarm_faults.py"]
OWN_FLEET = ["tests/unit/test_exec.py", "tests/unit/test_tls.py", "tests/unit/test_lifecycle_rules.py"]


def test_the_fleet_and_the_swarm_are_one_fixture_each_for_their_tests_and_fault_cells(tmp_path):
    (tmp_path / "fixtures_probe.py").write_text(FIXTURES_PROBE)
    out = tmp_path / "fixtures.json"
    env = {**os.environ, "FIXTURES_OUT": str(out), "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "fixtures_probe", "-p", "no:cacheprovider", "--collect-only", "-q",
         *FLEET_FILES, *SWARM_FILES, *OWN_FLEET],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads(out.read_text())

    def of(paths: list[str]) -> dict[str, dict]:
        return {node: row for node, row in rows.items() if any(node.startswith(p) for p in paths)}

    fleet_tests, own = of(FLEET_FILES), of(OWN_FLEET)
    swarm_tests = {node: row for node, row in of(SWARM_FILES).items() if "swarm" in row}  # not the checker's
    faults = {"tests/faults/test_fleet_faults.py", "tests/faults/test_swarm_faults.py"}
    # Every test on the fleet in "fleet", fault cells included; every test on the Swarm (they
    # use the fleet too) in "swarm", fault cells included.
    assert {node.split("::")[0] for node in {**fleet_tests, **swarm_tests}} >= faults, sorted(rows)
    assert len(fleet_tests) >= 10 and len(swarm_tests) >= 10, sorted(rows)
    assert all("fleet" in row for row in fleet_tests.values()), fleet_tests
    assert {row["group"] for row in fleet_tests.values()} == {"fleet"}, fleet_tests
    assert {row["group"] for row in swarm_tests.values()} == {"swarm"}, swarm_tests
    # One `fleet` for all of them (what a worker of either group starts once), one `swarm` for
    # the Swarm's tests and its fault cells, both from the plugins tests/conftest.py names.
    fleets = {tuple(row["fleet"]) for row in {**fleet_tests, **swarm_tests}.values()}
    swarms = {tuple(row["swarm"]) for row in swarm_tests.values()}
    assert len(fleets) == 1 and next(iter(fleets))[1] == "tests.support.fleet_fixtures", fleets
    assert len(swarms) == 1 and next(iter(swarms))[1] == "tests.support.swarm_fixtures", swarms
    # A unit test's own `fleet` (fake hosts) stays its own, and puts it in no such group.
    with_own = [row for row in own.values() if "fleet" in row]
    assert with_own and all(tuple(row["fleet"]) not in fleets for row in with_own), own
    assert all(row["group"] not in ("fleet", "swarm") for row in own.values()), own
