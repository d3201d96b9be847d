"""Issue 14, a full disk under the state directory, on the local target: the state dir is a
real 4 MB tmpfs, filled for real (`dd` until ENOSPC) before the deploy, or at the moment the
switch writes the proxy's configuration. The site keeps serving the previous release, the
error names the disk (not "connection failed"), no lock is left behind, the history holds no
torn line, and once there is space again the next deploy converges."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from deployctl.adapters.local import LocalConnector
from deployctl.plan.lifecycle.releases import ReleaseRecord
from tests.integration.deploy_fixtures import free_port, probe_config, remove_app, unique_app

from .cells import Site, attempt, run_cell

pytestmark = pytest.mark.integration

SIZE = "4m"


@pytest.fixture(scope="module")
def site(tmp_path_factory, probe_images):
    tmp = tmp_path_factory.mktemp("disk-full")
    state = tmp / "state"
    state.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(state)],
                             capture_output=True, text=True)
    assert mounted.returncode == 0, f"mount of a tmpfs failed (CI runs as root): {mounted.stderr}"
    app, port = unique_app(), free_port()
    config = probe_config(tmp, app, port=port, health_timeout=4, drain=0.5, rollout={"warm_window": 0},
                          state_dir=str(state))
    site = Site(app, port, config, probe_images)
    site.disk = state  # type: ignore[attr-defined]
    try:
        site.deploy()
        yield site
    finally:
        remove_app(app)
        subprocess.run(["umount", "-l", str(state)], check=False)


def fill(disk: Path) -> None:
    """Every free byte of the tmpfs taken by one file (dd stops at ENOSPC)."""
    subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'filler'}", "bs=64k"], capture_output=True)
    assert os.statvfs(disk).f_bavail == 0


def freed(site: Site, *, message: str):  # type: ignore[no-untyped-def]
    """Checks before the next deploy: the error named the disk; no torn history line; then
    the filler goes (an operator frees space)."""
    def check(tried: str | None) -> None:
        assert message in site.last_error, site.last_error  # type: ignore[attr-defined]
        history = site.disk / site.app / "local" / "releases.jsonl"  # type: ignore[attr-defined]
        for line in history.read_text().splitlines():
            ReleaseRecord.from_dict(__import__("json").loads(line))  # every line whole
        (site.disk / "filler").unlink()  # type: ignore[attr-defined]
    return check


def remembered(site: Site, call):  # type: ignore[no-untyped-def]
    def run():  # type: ignore[no-untyped-def]
        result = attempt(call)
        site.last_error = result.error  # type: ignore[attr-defined]
        return result
    return run


class FillsDiskAt(LocalConnector):
    """The real LocalConnector; the disk fills up just before the first write of a path
    ending in `suffix` (the moment is the fault; the full disk is real)."""

    def __init__(self, disk: Path, suffix: str) -> None:
        self.disk, self.suffix, self.fired = disk, suffix, False

    def put_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        if not self.fired and path.endswith(self.suffix):
            self.fired = True
            fill(self.disk)
        super().put_file(path, data, mode)


def test_disk_full_before_the_deploy(site):
    run_cell(site, "the state dir's disk full (a real tmpfs)", "before the lock",
             remembered(site, site.deploy), before=lambda: fill(site.disk),
             exit=4, outcome=None, live="previous",
             after=freed(site, message="no space left on the disk during taking the lock"),
             note="named as a full disk (not a connection failure), exit 4: nothing changed; the lock "
                  "directory is removed again when its info.json cannot be written")


def test_disk_full_when_the_switch_writes_the_proxy_config(site):
    run_cell(site, "the state dir's disk fills up", "switch (staging the new nginx.conf)",
             remembered(site, lambda: site.deploy(FillsDiskAt(site.disk, "/proxy/nginx.conf.next"))),
             exit=6, outcome=("reverted", None), live="previous",
             after=freed(site, message="no space left on the disk during switch"),
             note="nginx.conf is unchanged (the new one is only staged, by rename of a whole file), so nothing "
                  "is written back; "
                  "the record is appended whole or not at all (a short write is cut off), as the disk allows")
