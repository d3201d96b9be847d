"""Scheduled jobs on an environment's first host (plan/operate/jobs.py has the files and argvs).

A deploy calls `job_steps` for its first host: the release's job files (its schedule sets
and one-off container scripts) and the scheduler, started or recreated only when what it
runs changed. `register_job` is how other code adds a job to a deploy's config. An
accessory's backup schedule is a job too (`backup-NAME`, plan/data/backup_schedule.py): its
`.run` script dumps the accessory on the host instead of starting a one-off container.
`job_runs` reads the runs the host recorded; `run_job` starts one now, through the
scheduler's own runner and lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ...adapters.connector import check
from ...config.models import Config, Job
from ...errors import ConfigError, ExecNotStarted
from ...plan.data import backup_schedule as scheduled_backup
from ...plan.operate import jobs as plan
from ...plan.pipeline.images import scheduler_image
from ...plan.lifecycle.containers import ContainerSpec
from ...plan.lifecycle.names import Names, StateLayout
from ...plan.lifecycle.steps import PlannedStep, Step
from ...plan.lifecycle.target_limits import refuse
from ..lifecycle.host_state import HostState
from ..env import Env

Output = Callable[[str, str, bytes], None]


def register_job(config: Config, name: str, service: str, command: list[str], schedule: str) -> Config:
    """`config` with one more job, validated as deploy.toml's `[jobs.NAME]` would be (a bad
    schedule raises ValueError naming `jobs.NAME.schedule`). For code that declares its own
    job (a backup schedule): the deploy then writes and schedules it like any other."""
    if name in config.jobs:
        raise ValueError(f"jobs.{name}: a job of that name exists already")
    from pydantic import ValidationError

    try:
        job = Job(service=service, command=command, schedule=schedule)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"jobs.{name}.{where}: {first['msg'].removeprefix('Value error, ')}") from None
    if service not in config.services:
        raise ValueError(f"jobs.{name}.service: no service {service!r} (services: {', '.join(config.services)})")
    return config.model_copy(update={"jobs": {**config.jobs, name: job}})


def refuse_on_swarm(config: Config, env_name: str) -> None:
    """A Swarm has no `exec --new` one-off containers for a job to reuse yet, and deployctl
    does not reach an accessory's pinned node to dump it: both refused by name."""
    if config.jobs:
        refuse("swarm", env_name, "jobs", ", ".join(config.jobs))
    for name in scheduled_backup.scheduled(config, env_name):
        refuse("swarm", env_name, "backups", f"accessories.{name}.backup.schedule")


@dataclass(frozen=True)
class BackupJob:
    """An accessory's backup schedule as a job of the scheduler (plan/data/backup_schedule.py)."""

    name: str
    accessory: str
    schedule: str
    script: str


def backup_jobs(env: Env, host: str) -> list[BackupJob]:
    """The environment's scheduled backups, their scripts written for `host` (the first)."""
    from ...plan.data import backups as bk
    from ..data.accessories import specs_for

    out = []
    for name, schedule in scheduled_backup.scheduled(env.config, env.name).items():
        [spec] = specs_for(env, [name])
        accessory = env.config.accessories[name]
        try:
            kind = bk.dump_kind(name, accessory, spec.image)
        except bk.BackupPlanError as exc:
            raise ConfigError([str(exc)]) from None
        assert accessory.backup is not None
        script = scheduled_backup.ScheduledBackup(
            env.config.app, env.name, name, kind, tuple(bk.dump_argv(spec.container, kind, accessory)),
            env.layout, host, accessory.backup.keep).script()
        out.append(BackupJob(scheduled_backup.job_name(name), name, schedule, script))
    return out


@dataclass
class HostJobs:
    """The first host's part of a deploy: this release's job files, then the scheduler."""

    conn: Any
    config: Config
    names: Names
    layout: StateLayout
    release: str
    network: str
    containers: list[ContainerSpec]
    backups: list[BackupJob] = field(default_factory=list)

    @property
    def files(self) -> plan.JobFiles:
        return plan.JobFiles(self.layout)

    def release_files(self) -> dict[str, str]:
        specs = {spec.service: spec for spec in self.containers}
        out = {}
        for name, job in self.config.jobs.items():
            spec = specs[job.service]
            out[self.files.when(self.release, name)] = plan.when_line(job)
            out[self.files.run(self.release, name)] = plan.run_script(
                spec, spec.image, self.network, self.names.network, self.names, self.release, name, job.command)
        for backup in self.backups:
            out[self.files.when(self.release, backup.name)] = scheduled_backup.when_line(backup.schedule)
            out[self.files.run(self.release, backup.name)] = backup.script
        return out

    def scripts(self) -> dict[str, str]:
        return {self.files.scheduler: plan.scheduler_script(self.files),
                self.files.runner: plan.runner_script(self.files, self.names)}

    def digest(self) -> str:
        scripts = self.scripts()
        return plan.scheduler_hash(scheduler_image(self.config), scripts[self.files.scheduler],
                                   scripts[self.files.runner])

    def steps(self) -> list[Step]:
        files = self.files
        rows = [PlannedStep("jobs", f"write {path}") for path in self.release_files()]
        rows.append(PlannedStep("jobs", f"write {files.scheduler} and {files.runner}"))
        run = tuple(plan.run_scheduler(self.names, files, scheduler_image(self.config), self.digest()))
        rows.append(PlannedStep("jobs", "the scheduler, unless it runs this very script and image (else it is "
                                        "replaced; a run in progress finishes in its own container)", run))
        return [Step("jobs", tuple(rows), self.apply)]

    def apply(self) -> None:
        for path, text in {**self.release_files(), **self.scripts()}.items():
            self.conn.put_file(path, text.encode(), mode=0o600)
        digest = self.digest()
        found = self.conn.run(plan.scheduler_state(self.names))
        if found.ok and found.stdout.strip() == f"running|{digest}":
            return
        if found.ok:
            self.conn.run(plan.remove_scheduler(self.names))
        check(self.conn, plan.run_scheduler(self.names, self.files, scheduler_image(self.config), digest))


# -- `deployctl jobs` ---------------------------------------------------------------------------

@dataclass(frozen=True)
class JobStatus:
    name: str
    service: str
    schedule: str
    command: tuple[str, ...]
    runs: tuple[dict[str, Any], ...]  # the last ones, oldest first

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "service": self.service, "schedule": self.schedule,
                "command": list(self.command), "runs": list(self.runs)}


def declared(env: Env) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(name, service, schedule, command) of each job the environment's scheduler runs:
    [jobs.NAME], then each accessory's backup schedule (`backup-NAME`)."""
    rows = [(name, job.service, job.schedule, tuple(job.command)) for name, job in env.config.jobs.items()]
    rows += [(scheduled_backup.job_name(name), scheduled_backup.SERVICE_LABEL.format(name=name), schedule,
              ("accessory", "backup", name))
             for name, schedule in scheduled_backup.scheduled(env.config, env.name).items()]
    return rows


def _first_host(env: Env, connectors: list | None):  # type: ignore[no-untyped-def]
    environment = env.settings
    refuse(environment.target, env.name, "jobs")
    if not declared(env):
        raise ConfigError(f"deploy.toml has no [jobs.NAME] tables and no backup schedule for environments.{env.name}'s "
                          "accessories", hint="docs/jobs.md")
    conns = connectors if connectors is not None else env.connectors()
    if not conns:
        raise ConfigError(f"environments.{env.name} has no hosts")
    for other in conns[1:]:
        other.close()
    return conns[0]


def job_runs(env: Env, *, last: int = 5, connectors: list | None = None) -> list[JobStatus]:
    """Each job of deploy.toml with its last runs on the environment's first host."""
    conn = _first_host(env, connectors)
    try:
        conn.connect()
        text = conn.read_file(plan.JobFiles(env.layout).runs)
    finally:
        conn.close()
    runs = plan.parse_runs(text.decode(errors="replace") if text else "")
    return [JobStatus(name, service, schedule, command, tuple([r for r in runs if r.get("job") == name][-last:]))
            for name, service, schedule, command in declared(env)]


def run_job(env: Env, name: str, output: Output, *,
            connectors: list | None = None) -> int:
    """The job now, in the live release (the scheduler's runner: the same lock and record);
    its exit code, plan.BUSY when its previous run still runs. What stops it from starting is
    ExecNotStarted (125), as for `exec`: never a code the job could have returned."""
    known = [row[0] for row in declared(env)]
    if name not in known:
        raise ExecNotStarted(f"no job {name!r} (jobs: {', '.join(known) or 'none'})")
    conn = _first_host(env, connectors)
    names = env.names
    layout = env.layout
    try:
        conn.connect()
        if HostState(conn, layout).current() is None:
            raise ExecNotStarted(f"{conn.host}: nothing is deployed to {env.name}: no live release to run {name} in")
        state = conn.run(plan.scheduler_state(names))
        if not state.ok or not state.stdout.startswith("running|"):
            raise ExecNotStarted(f"{conn.host}: the scheduler {plan.scheduler_name(names)} is not running",
                                 hint="deploy (that starts it), then run the job again")
        return conn.stream(plan.run_now(names, plan.JobFiles(layout), name),
                           on_stdout=lambda data: output(conn.host, "stdout", data),
                           on_stderr=lambda data: output(conn.host, "stderr", data))
    finally:
        conn.close()
