"""Rollbacks that know the schema (plan/data/schema.py) through the whole deploy/rollback on the
fake host (tests/support/fake_host.py): the schema recorded after the migrations, a
rollback across a change refused with both versions and nothing changed, --accept-schema,
--restore-data without a backup, and the guard that cannot switch back firing on_revert."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from deployctl.adapters.connector import CommandResult
from deployctl.config import LoadedConfig, parse_config
from deployctl.errors import ExitCode, RollbackError, UncertainError
from deployctl.events import Recorder
from deployctl.plan.lifecycle.releases import History
from deployctl.secrets import Secret
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.hosts import layout_for
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.lifecycle.rollback import rollback
from deployctl.services.env import Env
from tests.support.fake_host import FakeHost, Fault, failing_access_log
from tests.unit.test_lifecycle_rules import virtual_time  # noqa: F401 - the fixture: health waits in microseconds

CONFIG = """
app = "shop"
[services.backend]
context = "backend"
migrate = ["python", "-m", "migrate"]
schema_version = ["python", "-m", "schema_version"]
[services.backend.healthcheck]
timeout = 2
[services.frontend]
context = "frontend"
routed = true
[services.frontend.healthcheck]
timeout = 2
[hooks]
on_revert = ["%s", "-c", "import os, sys; open(sys.argv[1], 'a').write(os.environ['DEPLOYCTL_OUTCOME'] + '\\\\n')", "%s"]

[environments.local]
target = "local"
proxy_port = 8080
state_dir = "/srv/state"
[environments.local.rollout]
drain = 0
guard_window = 0
warm_window = 0

[environments.guarded]
target = "local"
proxy_port = 8080
state_dir = "/srv/state"
[environments.guarded.rollout]
drain = 0
guard_window = 30
warm_window = 0
"""
T0 = 1_780_000_000
PROXY_IMAGE = "nginx:1.27-alpine"


class SchemaSite:
    """One local environment on a fake host whose schema_version prints `self.version`."""

    def __init__(self, env: str, tmp: Path) -> None:
        self.hook_log = tmp / "on_revert.log"
        self.loaded = LoadedConfig(tmp / "deploy.toml", parse_config(CONFIG % (sys.executable, self.hook_log)))
        self.env, self.emit, self.n, self.version = env, Recorder(), 0, "1"
        self.layout = layout_for(self.loaded, env)
        images = [f"sha256:{s}{n}" for s in ("back", "front") for n in range(1, 5)] + [PROXY_IMAGE]
        self.host = FakeHost("local", Fault("run", r"^docker start --attach shop-\w+-migrate-\S+-schema$", times=0,
                                            effect=lambda argv: CommandResult(0, f"INFO upgrading\n{self.version}\n",
                                                                              "")),
                             images=images)

    def deploy(self, version: str) -> str:
        self.n, self.version = self.n + 1, version
        images = ReleaseImages({"backend": f"sha256:back{self.n}", "frontend": f"sha256:front{self.n}"}, f"{self.n:07d}")
        return deploy(Env.resolve(self.loaded, self.env), images, {}, self.emit, connectors=[self.host],
                      now=T0 + 60 * self.n).release

    def rollback(self, **kwargs):  # type: ignore[no-untyped-def]
        return rollback(Env.resolve(self.loaded, self.env), self.emit, connectors=[self.host], **kwargs)

    def history(self) -> History:
        return History.parse(self.host.text(self.layout.history) or "")

    def current(self) -> str:
        return (self.host.text(self.layout.current) or "").strip()


@pytest.fixture
def site(tmp_path):
    return SchemaSite("local", tmp_path)


def test_the_schema_is_recorded_after_the_migrations_from_the_last_line_printed(site):
    r1 = site.deploy("1")
    record = site.history().deployed(r1)
    assert record is not None and record.extra["schema"] == {"backend": "1"}


def test_a_rollback_across_a_schema_change_is_refused_naming_both_and_changes_nothing(site):
    r1, r2 = site.deploy("1"), site.deploy("2")
    lines = len(site.history().records)
    with pytest.raises(RollbackError) as info:
        site.rollback()
    error = info.value
    assert error.exit_code == ExitCode.DEPLOY_FAILED
    assert f"rollback to {r1}" in error.message and "backend 2" in error.message and "backend 1" in error.message
    assert "--accept-schema" in error.message and "--restore-data" in error.message
    assert site.current() == r2 and site.host.serving() == r2
    assert len(site.history().records) == lines  # not even a history line
    assert site.layout.lock_dir not in site.host.dirs


def test_accept_schema_goes_back_and_records_the_schema_the_database_still_has(site):
    r1, _ = site.deploy("1"), site.deploy("2")
    site.rollback(accept_schema=True)
    assert site.current() == r1
    last = site.history().records[-1]
    assert (last.action, last.release, last.extra["schema"]) == ("rollback", r1, {"backend": "2"})


def test_restore_data_without_a_backup_before_the_migration_is_refused(site):
    site.deploy("1")
    r2 = site.deploy("2")
    with pytest.raises(RollbackError) as info:
        site.rollback(restore_data=True)
    assert "backup_before_migrate" in info.value.message and site.current() == r2


def test_the_same_schema_rolls_back_without_a_word(site):
    r1 = site.deploy("1")
    site.deploy("1")
    site.rollback()
    assert site.current() == r1


def test_the_guard_that_cannot_switch_back_for_the_schema_says_so_and_fires_on_revert(tmp_path):
    site = SchemaSite("guarded", tmp_path)
    site.deploy("1")
    layout = site.layout

    failing_log = failing_access_log(site.host, layout.lock_info)

    site.host.faults += [Fault("run", r"^date \+%s\.%N$", times=0,
                               effect=lambda argv: CommandResult(0, f"{time.time():.9f}\n", "")),
                         Fault("run", r"^docker logs --timestamps --since ", times=0, effect=failing_log)]
    with pytest.raises(UncertainError) as info:
        site.deploy("2")
    assert info.value.exit_code == ExitCode.ROLLBACK_FAILED
    assert "the guard could not switch back" in info.value.message and "backend 2" in info.value.message
    r2 = site.history().records[-1].release
    assert site.current() == r2 and site.host.serving() == r2  # the new release keeps serving
    assert site.hook_log.read_text().split() == ["revert-refused-schema"]
    assert layout.lock_dir not in site.host.dirs
