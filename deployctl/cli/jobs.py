"""`deployctl jobs --env ENV`: each scheduled job and its last runs on the environment's first
host (start, duration, exit code). `deployctl jobs run NAME --env ENV`: one run now, in the
live release, under the job's lock; exits with the job's code (125 when it could not start,
75 when its previous run still runs)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from .common import finish, table
from .config import EnvOption
from .context import AppContext
from .exec import write

COLUMNS = ["job", "service", "schedule", "started (UTC)", "seconds", "exit code", "release", "trigger"]

jobs_app = typer.Typer(
    help="Scheduled jobs ([jobs.NAME]) and their last runs; `jobs run NAME` starts one now.",
    invoke_without_command=True, add_completion=False, rich_markup_mode=None,
)


@jobs_app.callback()
def jobs(ctx: typer.Context, env: EnvOption = "local",
         last: Annotated[int, typer.Option("--last", min=1, help="How many runs of each job to show.")] = 5) -> None:
    """Each scheduled job and its last runs on the environment's first host."""
    if ctx.invoked_subcommand is not None:
        return
    from ..services.operate.jobs import job_runs

    app: AppContext = ctx.obj
    statuses = job_runs(app.env(env), last=last)
    if app.mode == "json":
        finish(app, "jobs", {"environment": env, "jobs": [s.to_dict() for s in statuses]})
        return
    rows = []
    for status in statuses:
        runs = status.runs or ({},)
        for run in reversed(runs):
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(run["start"])) if "start" in run else "never"
            code = run.get("exit_code", run.get("outcome", "-"))
            rows.append([status.name, status.service, status.schedule, started,
                         str(run.get("seconds", "-")), str(code), run.get("release", "-"), run.get("trigger", "-")])
    table(app, f"{env}: scheduled jobs (times in UTC)", COLUMNS, rows)


@jobs_app.command("run")
def run(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The job ([jobs.NAME]).")],
        env: EnvOption = "local") -> int:
    """Run a job now in the live release; exits with its code."""
    from ..services.operate.jobs import run_job

    app: AppContext = ctx.obj
    raise typer.Exit(run_job(app.env(env), name, lambda host, stream, data: write(stream, data)))
