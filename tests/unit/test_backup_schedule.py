"""`[accessories.NAME.backup] schedule` as the host scheduler's job `backup-NAME`
(plan/data/backup_schedule.py, services/operate/jobs.py): its cron line, the files a deploy writes on the
first host (and only there), the keys refused by name, a Swarm refused by name, and the job
listed and run like any other. The script itself runs for real in
tests/integration/test_backups.py (a MariaDB accessory, this machine's engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.config import LoadedConfig, parse_config
from deployctl.errors import ConfigError, ExitCode, UsageError
from deployctl.events import Recorder
from deployctl.plan.data import backup_schedule as bs
from deployctl.plan.operate import jobs as plan_jobs
from deployctl.secrets import Secret
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.hosts import layout_for
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.adapters.connector import CommandResult
from deployctl.services.env import Env
from tests.support.fake_host import FakeHost, Fault
from tests.support.virtual_time import virtual_time

CONFIG = """
app = "shop"
registry = {{ server = "registry.example" }}
[services.web]
context = "web"
routed = true
[services.web.healthcheck]
timeout = 2
[accessories.db]
image = "mariadb:11"
secrets = ["ROOT_PW"]
[accessories.db.env]
MARIADB_ROOT_PASSWORD_FILE = "/run/secrets/ROOT_PW"
[accessories.db.backup]
schedule = "{schedule}"
keep = {keep}
{extra}
[environments.local]
target = "local"
proxy_port = 8080
state_dir = "/srv/state"
accessories = ["db"]
[environments.local.rollout]
drain = 0
guard_window = 0
warm_window = 0
[environments.swarm]
target = "swarm"
manager = "m1"
accessories = ["db"]
"""
SECRETS = {"ROOT_PW": Secret("r00t-pw-value")}
T0 = 1_780_000_000
DAILY = ",0,|,0,|," + ",".join(map(str, range(1, 32))) + ",|," + ",".join(map(str, range(1, 13))) + \
    ",|,0,1,2,3,4,5,6,|and\n"


def loaded(schedule: str = "30 3 * * *", keep: int = 3, extra: str = "") -> LoadedConfig:
    return LoadedConfig(Path("/project/deploy.toml"), parse_config(CONFIG.format(schedule=schedule, keep=keep,
                                                                                  extra=extra)))


def test_the_cron_line_of_a_backup_schedule_and_its_macros():
    assert bs.when_line("30 3 * * *") == DAILY.replace(",0,|,0,|", ",30,|,3,|", 1)
    assert bs.when_line("@daily") == bs.when_line("@midnight") == DAILY
    assert bs.when_line("@hourly").startswith(",0,|," + ",".join(map(str, range(24))) + ",|")
    assert loaded("@weekly").config.accessories["db"].backup.schedule == "@weekly"


@pytest.mark.parametrize("extra, words", [
    ('to = "s3://bucket/db"', ["accessories.db.backup", "schedule: a scheduled backup is written on the host",
                               "AWS credentials"]),
    ('[jobs.backup-db]\nservice = "web"\ncommand = ["true"]\nschedule = "* * * * *"',
     ["jobs.backup-db: that name is the job of accessories.db.backup.schedule"]),
])
def test_keys_a_scheduled_backup_cannot_have_are_named(extra, words):
    with pytest.raises(ConfigError) as info:
        loaded(extra=extra)
    assert all(word in info.value.message for word in words), info.value.message


def test_a_schedule_that_is_not_cron_names_the_field():
    with pytest.raises(ConfigError) as info:
        loaded("30 25 * * *")
    assert "accessories.db.backup.schedule" in info.value.message and "25 is out of range (0-23)" in info.value.message


# -- on a fake host ----------------------------------------------------------------------------

virtual_time = pytest.fixture(autouse=True)(virtual_time)


@pytest.fixture(autouse=True)
def accessories_up(monkeypatch):
    """The fake host has no model of an accessory's boot (tests/unit/test_accessories_plan.py
    has its rules); the deploy's other steps are what these tests are about."""
    monkeypatch.setattr("deployctl.services.lifecycle.deploy.ensure_accessories", lambda *args, **kwargs: None)


def deploy_to(hosts: list[FakeHost], config: LoadedConfig, n: int = 1) -> str:
    return deploy(Env.resolve(config, "local"), ReleaseImages({"web": f"sha256:web{n}"}, f"{n:07d}"), SECRETS, Recorder(),
                  connectors=hosts, now=T0 + 60 * n).release


def fake_host(name: str = "local") -> FakeHost:
    return FakeHost(name, images=["sha256:web1", "sha256:web2", "nginx:1.27-alpine", "docker:27-cli", "mariadb:11"])


def test_a_deploy_writes_the_backup_job_beside_the_releases_jobs_and_starts_the_scheduler():
    host = fake_host()
    config = loaded()
    release = deploy_to([host], config)
    files = plan_jobs.JobFiles(layout_for(config, "local"))
    assert host.text(files.when(release, "backup-db")) == DAILY.replace(",0,|,0,|", ",30,|,3,|", 1)
    script = host.text(files.run(release, "backup-db"))
    root = layout_for(config, "local").root
    assert "docker exec shop-local-db sh -c " in script and "MYSQL_PWD" in script
    assert f"dir={root}/backups/db\n" in script and "tail -n +4" in script  # keep = 3
    assert f"owner=$(stat -c %u:%g {root})" in script  # readable by the user deployctl connects as
    assert "r00t-pw-value" not in script and "ROOT_PW" not in script.replace("/run/secrets/ROOT_PW", "")
    assert [t for _, t in host.calls if t.startswith("docker run --detach --name shop-local-scheduler")]


def test_without_keep_nothing_is_pruned_and_a_release_without_a_schedule_writes_no_job():
    host = fake_host()
    config = LoadedConfig(Path("/p/deploy.toml"), parse_config(CONFIG.format(schedule="@daily", keep=1, extra="")
                                                                .replace("keep = 1\n", "")))
    release = deploy_to([host], config)
    files = plan_jobs.JobFiles(layout_for(config, "local"))
    assert "removed (keep" not in host.text(files.run(release, "backup-db"))
    plain = LoadedConfig(Path("/p/deploy.toml"), parse_config(CONFIG.format(schedule="@daily", keep=1, extra="")
                                                               .replace('schedule = "@daily"\n', "")))
    other = fake_host()
    deploy_to([other], plain)
    assert not [t for _, t in other.calls if "scheduler" in t]


def test_a_scheduled_backup_is_refused_by_name_on_a_swarm():
    from deployctl.services.swarm.swarm_deploy import deploy_env as swarm_deploy

    with pytest.raises(UsageError) as info:
        swarm_deploy(Env.resolve(loaded(), "swarm"), ReleaseImages({"web": "r/web@sha256:1"}, "1"), SECRETS, Recorder(),
                     manager=object())
    assert info.value.exit_code == ExitCode.USAGE
    assert info.value.message.startswith("accessory backups (") and "environments.swarm (target = \"swarm\")" in \
        info.value.message and "(asked by accessories.db.backup.schedule)" in info.value.message


def test_the_backup_job_is_listed_and_run_like_any_job():
    from deployctl.services.operate.jobs import job_runs, run_job

    host = fake_host()
    config = loaded()
    deploy_to([host], config)
    files = plan_jobs.JobFiles(layout_for(config, "local"))
    host.put_file(files.runs, b'{"id":"5-1","job":"backup-db","start":5,"seconds":2,"exit_code":0,"outcome":"exited"}\n')
    [status] = job_runs(Env.resolve(config, "local"), connectors=[host])
    assert (status.name, status.service, status.schedule, status.command) == \
        ("backup-db", "accessory db", "30 3 * * *", ("accessory", "backup", "db"))
    assert [r["exit_code"] for r in status.runs] == [0]
    host.faults.append(Fault("run", r"^docker exec shop-local-scheduler sh \S+/jobs/run\.sh backup-db manual$",
                             effect=lambda argv: CommandResult(0, "backup 1 of db\n", "")))
    out: list[bytes] = []
    assert run_job(Env.resolve(config, "local"), "backup-db", lambda host, stream, data: out.append(data), connectors=[host]) == 0
    assert out == [b"backup 1 of db\n"]
