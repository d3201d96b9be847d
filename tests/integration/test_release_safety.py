"""Issue 15's release safety on this machine's engine: `deployctl stats` end to end after real
deploys and a rollback (table, --json, --html)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from deployctl.config import load_config
from deployctl.events import Recorder
from deployctl.secrets import Secret
from deployctl.services.deploy import deploy
from deployctl.services.release_images import ReleaseImages
from deployctl.services.rollback import rollback
from tests.integration.deploy_fixtures import (DEPLOYCTL, ROOT, build_probe_images, free_port, probe_config,
                                               remove_app, unique_app)

pytestmark = pytest.mark.integration
SECRETS = {"PROBE_DB_PASSWORD": Secret("probe-password-value")}


@pytest.fixture(scope="session")
def probe_images(standin_images):
    return build_probe_images(standin_images)


def images(probe, revision):
    return ReleaseImages({"backend": probe.good, "frontend": probe.good, "proxy": probe.proxy}, revision)


def head_revisions(n: int) -> list[str]:
    """Real commits of this repository, so lead time has commit times to read."""
    out = subprocess.run(["git", "-C", str(ROOT), "log", f"-{n}", "--format=%H"], capture_output=True, text=True)
    revs = out.stdout.split()
    if len(revs) < n:
        pytest.skip("needs deployctl's git history (a shallow clone has too few commits)")
    return revs


def run_cli(config, *args, cwd=ROOT):
    return subprocess.run([DEPLOYCTL, "--config", str(config), *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "NO_COLOR": "1"}, timeout=120)


def test_stats_after_two_deploys_and_a_rollback(tmp_path, probe_images):
    app, port = unique_app(), free_port()
    config = probe_config(tmp_path, app, port=port)
    loaded = load_config(config)
    rev1, rev2 = head_revisions(2)
    try:
        v1 = deploy(loaded, "local", images(probe_images, rev1), SECRETS, Recorder()).release
        deploy(loaded, "local", images(probe_images, rev2), SECRETS, Recorder())
        [back] = rollback(loaded, "local", Recorder())
        assert back.release == v1

        html = tmp_path / "stats.html"
        done = run_cli(config, "--json", "stats", "--env", "local", "--since", "1d", "--html", str(html))
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["command"] == "stats" and result["hosts"] == ["localhost"]
        assert (result["deploys"], result["succeeded"], result["rollbacks"]) == (2, 2, 1)
        assert result["change_failures"] == 1 and result["change_failure_rate"] == 0.5  # v2 was rolled back from
        assert len(result["lead_times"]) == 2 and result["unknown_revisions"] == 0
        assert [r["how"] for r in result["restores"]] == ["rollback"]
        assert 0 < result["restores"][0]["seconds"] < 60
        page = html.read_text()
        assert "<svg" in page and "50.0%" in page and "<script" not in page

        table = run_cli(config, "stats", "--env", "local", "--since", "1d", cwd=tmp_path)  # no git here
        assert table.returncode == 0, table.stderr
        assert "change failure rate" in table.stdout and "50.0%" in table.stdout
        assert "2 unknown revisions skipped" in table.stdout
    finally:
        remove_app(app)
