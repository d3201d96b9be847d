"""Workers and scheduled jobs (docs/jobs.md): the model's rules, cron, the plans as data, and
the switch's worker rules on a fake host (tests/support/fake_host.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from deployctl.config import LoadedConfig, parse_config
from deployctl.config.cron import CronError, parse_cron
from deployctl.errors import ConfigError, DeployctlError, ExitCode, UsageError
from deployctl.events import Recorder
from deployctl.plan.operate import jobs as plan_jobs
from deployctl.plan.lifecycle.names import Names
from deployctl.secrets import Secret
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.hosts import layout_for
from deployctl.services.operate.jobs import register_job
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.lifecycle.rollback import rollback
from deployctl.services.env import Env
from tests.support.fake_host import FakeHost, Fault
from tests.support.virtual_time import virtual_time

BASE = """
app = "shop"
registry = {{ server = "registry.example" }}
[services.web]
context = "web"
routed = true
[services.web.healthcheck]
timeout = 2
[services.consumer]
context = "web"
worker = true
command = ["python", "-m", "consume"]
secrets = ["DB_PASSWORD"]
stop_first = {stop_first}
[services.consumer.healthcheck]
grace = 2
timeout = 5
[jobs.tick]
service = "web"
command = ["python", "-m", "tick", "--now"]
schedule = "*/15 * * * *"

[environments.local]
target = "local"
proxy_port = 8080
state_dir = "/srv/state"
[environments.local.rollout]
drain = 0
guard_window = 0
warm_window = {warm}

[environments.swarm]
target = "swarm"
manager = "m1"
"""
SECRETS = {"DB_PASSWORD": Secret("s3cret")}
PROXY_IMAGE = "nginx:1.27-alpine"
T0 = 1_780_000_000


def loaded(stop_first: bool = True, warm: int = 0) -> LoadedConfig:
    text = BASE.format(stop_first=str(stop_first).lower(), warm=warm)
    return LoadedConfig(Path("/project/deploy.toml"), parse_config(text))


def bad(change: str, stop_first: bool = False) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE.format(stop_first=str(stop_first).lower(), warm=0).replace(*change.split("=>")))
    return info.value.message


# -- the model ---------------------------------------------------------------------------------

def test_a_worker_has_no_port_and_is_checked_by_staying_up():
    config = loaded().config
    consumer = config.services["consumer"]
    assert consumer.health.kind == "running" and consumer.health.grace == 2
    assert config.services["web"].health.kind == "http"


@pytest.mark.parametrize("change, words", [
    ('worker = true\n=>worker = true\nport = 9000\n', "services.consumer"),
    ('worker = true\n=>worker = true\nrouted = true\n', "cannot be routed"),
    ('[services.consumer.healthcheck]\n=>[services.consumer.healthcheck]\ntype = "http"\n', "no port to check"),
    ('worker = true\n=>worker = false\n', "stop_first is for workers"),
    ('service = "web"=>service = "nope"', "jobs.tick.service: no service 'nope'"),
    ('schedule = "*/15 * * * *"=>schedule = "*/15 * * *"', "jobs.tick.schedule"),
    ('schedule = "*/15 * * * *"=>schedule = "0 25 * * *"', "the hour field '25': 25 is out of range (0-23)"),
    ('schedule = "*/15 * * * *"=>schedule = "0 0 * * mon"', "'mon' is not a number"),
    ('command = ["python", "-m", "consume"]=>command = "python -m consume"', "services.consumer.command"),
])
def test_bad_worker_and_job_keys_are_named(change, words):
    message = bad(change, stop_first="worker = false" in change)  # stop_first without a worker
    assert words in message, message


def test_a_worker_cannot_be_given_an_address():
    message = bad('[services.web.healthcheck]=>[services.web.env]\nQ = "{{ consumer.url }}"\n'
                  '[services.web.healthcheck]')
    assert "services.web.env.Q" in message and "is a worker" in message


def test_register_job_adds_a_validated_job_for_other_code():
    config = loaded().config
    more = register_job(config, "backup", "consumer", ["backup"], "0 3 * * *")
    assert more.jobs["backup"].schedule == "0 3 * * *" and "backup" not in config.jobs
    with pytest.raises(ValueError, match=r"^jobs.nightly.schedule: the hour field '24': 24 is out of range"):
        register_job(config, "nightly", "web", ["x"], "0 24 * * *")
    with pytest.raises(ValueError, match="jobs.tick: a job of that name exists"):
        register_job(config, "tick", "web", ["x"], "0 3 * * *")


# -- cron --------------------------------------------------------------------------------------

def test_cron_fields_expand_as_vixie_cron_reads_them():
    cron = parse_cron("*/15 9-17/4 1,15 * 1-5")
    assert sorted(cron.minutes) == [0, 15, 30, 45] and sorted(cron.hours) == [9, 13, 17]
    assert cron.table_line().startswith(",0,15,30,45,|,9,13,17,|,1,15,|,1,2,3,4,5,6,7,8,9,10,11,12,|,1,2,3,4,5,|or")
    assert sorted(parse_cron("5/20 * * * 7").minutes) == [5, 25, 45]
    assert parse_cron("0 0 * * 7").weekdays == {0}  # 7 is Sunday too
    monday_9 = dt.datetime(2026, 12, 7, 9, 15)  # a Monday, not the 1st or 15th: the day rule is "or"
    assert cron.matches(monday_9) and not cron.matches(monday_9.replace(minute=16))
    assert not cron.matches(dt.datetime(2026, 12, 6, 9, 15))  # a Sunday, not the 1st or 15th
    assert parse_cron("* * * * *").matches(dt.datetime(2026, 1, 1, 0, 0))
    assert not parse_cron("0 0 1 * *").matches(dt.datetime(2026, 12, 7, 0, 0))  # dom only: "and" with any weekday


@pytest.mark.parametrize("expression, words", [
    ("* * * *", "has 4 field(s)"), ("@daily", "macros"), ("*/0 * * * *", "positive number"),
    ("60 * * * *", "out of range (0-59)"), ("5-1 * * * *", "runs backwards"), ("0 0 ? * *", "not a number"),
    ("0 0 * jan *", "not a number"), ("0 0 32 * *", "out of range (1-31)"),
])
def test_bad_cron_expressions_say_which_field(expression, words):
    with pytest.raises(CronError, match=None) as info:
        parse_cron(expression)
    assert words in str(info.value)


# -- plans as data -----------------------------------------------------------------------------

def test_a_workers_command_follows_its_image_and_the_scheduler_is_one_argv():
    names = Names("shop", "local")
    files = plan_jobs.JobFiles(layout_for(loaded(), "local"))
    assert plan_jobs.run_scheduler(names, files, "docker:27-cli", "abc") == [
        "docker", "run", "--detach", "--name", "shop-local-scheduler", "--restart", "unless-stopped", "--init",
        "--log-opt", "max-size=1m",
        "--label", "io.deployctl.app=shop", "--label", "io.deployctl.env=local", "--label", "io.deployctl.role=scheduler",
        "--label", "io.deployctl.scheduler=abc",
        "-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", "/srv/state/shop/local:/srv/state/shop/local",
        "--entrypoint", "sh", "docker:27-cli", "/srv/state/shop/local/jobs/scheduler.sh"]
    assert plan_jobs.run_now(names, files, "tick") == [
        "docker", "exec", "shop-local-scheduler", "sh", "/srv/state/shop/local/jobs/run.sh", "tick", "manual"]


def test_runs_merge_their_start_and_end_lines():
    text = ('{"id":"1-9","job":"tick","start":1,"outcome":"running"}\nnot json\n'
            '{"id":"2-3","job":"tick","start":2,"outcome":"skipped"}\n'
            '{"id":"1-9","job":"tick","start":1,"seconds":4,"exit_code":3,"outcome":"exited"}\n')
    assert plan_jobs.parse_runs(text) == [
        {"id": "1-9", "job": "tick", "start": 1, "seconds": 4, "exit_code": 3, "outcome": "exited"},
        {"id": "2-3", "job": "tick", "start": 2, "outcome": "skipped"}]


# -- on a fake host ----------------------------------------------------------------------------

virtual_time = pytest.fixture(autouse=True)(virtual_time)


class Site:
    def __init__(self, config: LoadedConfig) -> None:
        self.config, self.n, self.emit = config, 0, Recorder()
        images = [f"sha256:{s}{n}" for s in ("web", "consumer") for n in range(1, 5)] + [PROXY_IMAGE, "docker:27-cli"]
        self.host = FakeHost("local", images=images)

    def deploy(self) -> str:
        self.n += 1
        images = ReleaseImages({"web": f"sha256:web{self.n}", "consumer": f"sha256:consumer{self.n}"}, f"{self.n:07d}")
        return deploy(Env.resolve(self.config, "local"), images, SECRETS, self.emit, connectors=[self.host],
                      now=T0 + 60 * self.n).release

    def running(self, service: str) -> list[str]:
        return sorted(c.name for c in self.host.containers.values()
                      if c.status == "running" and c.labels.get("io.deployctl.service") == service)

    def ran(self) -> list[str]:
        return [text for call, text in self.host.calls if call == "run"]


def test_stop_first_stops_the_old_worker_before_the_new_one_starts_and_an_undo_starts_it_again():
    site = Site(loaded(stop_first=True))
    r1 = site.deploy()
    worker1 = f"shop-local-consumer-{r1}"
    assert site.running("consumer") == [worker1]
    created = next(c for c in site.host.containers.values() if c.name == worker1)
    assert created.args == ["python", "-m", "consume"]  # `command` after the image
    before = len(site.host.calls)
    r2 = site.deploy()
    calls = [text for call, text in site.host.calls[before:] if call == "run"]
    stop_at = calls.index(f"docker stop --time 10 {worker1}")
    start_at = next(i for i, t in enumerate(calls) if t.startswith("docker start") and f"consumer-{r2}" in t)
    assert stop_at < start_at
    assert site.running("consumer") == [f"shop-local-consumer-{r2}"]
    # A new release whose web never gets healthy: its worker goes, the stopped one runs again.
    site.host.faults.append(Fault("http_get", r"^(?!127\.0\.0\.1:)", times=0))
    with pytest.raises(DeployctlError) as info:
        site.deploy()
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED
    assert site.running("consumer") == [f"shop-local-consumer-{r2}"]


def test_a_crashing_worker_fails_the_health_wait_and_the_live_one_keeps_running():
    site = Site(loaded(stop_first=False))
    r1 = site.deploy()
    site.host.faults.append(Fault("run", r"docker start shop-local-consumer-", effect=lambda *a: _crash(site)))
    with pytest.raises(DeployctlError) as info:
        site.deploy()
    assert "consumer" in info.value.message and info.value.exit_code == ExitCode.DEPLOY_FAILED
    assert site.running("consumer") == [f"shop-local-consumer-{r1}"]


def _crash(site):  # type: ignore[no-untyped-def]
    from deployctl.adapters.connector import CommandResult

    for container in site.host.containers.values():
        if container.labels.get("io.deployctl.service") == "consumer" and container.status == "created":
            container.status, container.exit_code = "exited", 1
    return CommandResult(0, "", "")


def test_a_warm_release_keeps_its_web_containers_but_never_its_worker_and_rollback_brings_it_back():
    site = Site(loaded(stop_first=False, warm=600))
    r1 = site.deploy()
    r2 = site.deploy()
    assert site.running("consumer") == [f"shop-local-consumer-{r2}"]
    assert f"shop-local-web-{r1}" in site.running("web")  # warm
    rollback(Env.resolve(site.config, "local"), site.emit, connectors=[site.host])
    assert site.running("consumer") == [f"shop-local-consumer-{r1}"]


def test_the_first_deploy_writes_the_release_jobs_and_starts_the_scheduler_once():
    site = Site(loaded())
    r1 = site.deploy()
    files = plan_jobs.JobFiles(layout_for(site.config, "local"))
    assert site.host.text(files.when(r1, "tick")) == ",0,15,30,45,|," + ",".join(map(str, range(24))) + ",|," + \
        ",".join(map(str, range(1, 32))) + ",|," + ",".join(map(str, range(1, 13))) + ",|,0,1,2,3,4,5,6,|and\n"
    script = site.host.text(files.run(r1, "tick"))
    assert f'docker create --rm --name "$1" --network shop-local-{r1}' in script
    assert "sha256:web1 python -m tick --now" in script and "s3cret" not in script
    runs = [t for t in site.ran() if t.startswith("docker run --detach --name shop-local-scheduler")]
    assert len(runs) == 1
    r2 = site.deploy()  # the same scheduler script and image: left running
    assert len([t for t in site.ran() if t.startswith("docker run --detach --name shop-local-scheduler")]) == 1
    assert site.host.text(files.when(r2, "tick")) is not None


def test_jobs_are_refused_by_name_on_a_swarm():
    from deployctl.services.swarm.swarm_deploy import deploy_env as swarm_deploy

    with pytest.raises(UsageError) as info:
        swarm_deploy(Env.resolve(loaded(), "swarm"), ReleaseImages({"web": "r/web@sha256:1", "consumer": "r/c@sha256:1"}, "1"),
               SECRETS, Recorder(), manager=object())
    assert info.value.exit_code == ExitCode.USAGE and "jobs" in info.value.message and "Swarm" in info.value.message


def test_a_worker_on_a_swarm_is_a_service_with_its_command_and_no_port_check():
    from deployctl.plan.swarm import services as sw
    from deployctl.plan.lifecycle.release_spec import release_spec

    config = loaded(stop_first=False)
    spec = release_spec(config.config, "swarm", "20261206-000000-aaaaaaa", None,
                        {"web": "r/web@sha256:1", "consumer": "r/c@sha256:2"}, "nginx@sha256:3")
    services = {s.service: s for s in sw.release_services(config.config, config.environment("swarm"), "swarm", spec,
                                                           layout_for(config, "swarm"))}
    argv = sw.create_service(services["consumer"], "shop-swarm")
    assert argv[-5:] == ["--no-healthcheck", "r/c@sha256:2", "python", "-m", "consume"]
    assert "--publish" not in argv and sw.create_service(services["web"], "shop-swarm")[-1] == "r/web@sha256:1"


def test_stop_first_is_refused_by_name_on_a_swarm():
    from deployctl.services.swarm.swarm_deploy import deploy_env as swarm_deploy

    text = BASE.format(stop_first="true", warm=0)
    jobs = text[text.index("[jobs.tick]"):text.index("[environments.local]")]
    config = LoadedConfig(Path("/p/deploy.toml"), parse_config(text.replace(jobs, "")))
    with pytest.raises(UsageError) as info:
        swarm_deploy(Env.resolve(config, "swarm"), ReleaseImages({"web": "r/web@sha256:1", "consumer": "r/c@sha256:1"}, "1"),
                     SECRETS, Recorder(), manager=object())
    assert info.value.message.startswith("stop_first (services.NAME.stop_first) is not available on "
                                         "environments.swarm (target = \"swarm\") yet (asked by "
                                         "services.consumer.stop_first): ")


def test_jobs_lists_each_jobs_last_runs_from_the_first_host_and_run_needs_the_scheduler():
    from deployctl.errors import ExecNotStarted
    from deployctl.services.operate.jobs import job_runs, run_job

    site = Site(loaded())
    site.deploy()
    files = plan_jobs.JobFiles(layout_for(site.config, "local"))
    lines = [f'{{"id":"{n}-1","job":"tick","start":{n},"seconds":1,"exit_code":0,"outcome":"exited"}}' for n in range(7)]
    site.host.put_file(files.runs, ("\n".join(lines) + "\n").encode())
    [status] = job_runs(Env.resolve(site.config, "local"), last=3, connectors=[site.host])
    assert (status.name, status.schedule, [r["start"] for r in status.runs]) == ("tick", "*/15 * * * *", [4, 5, 6])
    with pytest.raises(ExecNotStarted, match="no job 'nope'"):
        run_job(Env.resolve(site.config, "local"), "nope", lambda *a: None, connectors=[site.host])
    site.host.containers.pop("shop-local-scheduler")
    with pytest.raises(ExecNotStarted, match="the scheduler shop-local-scheduler is not running") as info:
        run_job(Env.resolve(site.config, "local"), "tick", lambda *a: None, connectors=[site.host])
    assert info.value.exit_code == ExitCode.EXEC_NOT_STARTED
