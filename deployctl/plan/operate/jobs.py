"""Scheduled jobs (`[jobs.NAME]`): what deployctl writes on an environment's first host and
the scheduler container that runs them there (docs/jobs.md). Pure: text and argv as data.

The host keeps, under its state directory:
  jobs/scheduler.sh     the scheduler's loop: each minute, the live release (`current`) and
                        its jobs' `.when` sets; a job that is due runs through run.sh
  jobs/run.sh           one run: a lock (flock: never twice at once, gone with its process,
                        so a reboot leaves none), the live release's `.run`, a record
  jobs/runs.jsonl       one line when a run starts and one when it ends (`deployctl jobs`)
  jobs/logs/NAME.log    the output of the last scheduled run that ended
  secrets/<release>/jobs/NAME.when, NAME.run
                        written by that release's deploy: its schedule (plan/cron.py's
                        sets) and its one-off container (exec --new's argv). A rollback
                        finds them unchanged; prune removes them with the release.
The scheduler is a container (`--restart unless-stopped`, `--init`) of `scheduler.image`
with the engine's socket and the state directory mounted at the same path: dockerd brings
it back after a reboot, it needs no deployctl running, and it follows `current`, so a deploy
or rollback changes what it runs without touching it.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import shlex
from dataclasses import dataclass
from typing import Any, Sequence

from ...config.cron import parse_cron
from ...config.models import Job
from ..lifecycle.containers import ContainerSpec
from .exec import one_off
from ..lifecycle.names import Names, StateLayout

SCHEDULER_ROLE = "scheduler"
JOB_ROLE = "job"
SCHEDULER_LABEL = "io.deployctl.scheduler"  # the hash of what the scheduler runs: a change recreates it
DOCKER_SOCKET = "/var/run/docker.sock"
NAME_SLOT = "DEPLOYCTL_JOB_CONTAINER"  # replaced by "$1" in a .run script
BUSY = 75  # run.sh's exit code when the job's previous run still holds its lock (EX_TEMPFAIL)
KEEP_RUNS = 2000  # runs.jsonl is cut to its last KEEP_RUNS // 2 lines beyond this


@dataclass(frozen=True)
class JobFiles:
    """Paths of the jobs' files on a host (see the module's text)."""

    layout: StateLayout

    @property
    def root(self) -> str:
        return posixpath.join(self.layout.root, "jobs")

    @property
    def scheduler(self) -> str:
        return posixpath.join(self.root, "scheduler.sh")

    @property
    def runner(self) -> str:
        return posixpath.join(self.root, "run.sh")

    @property
    def runs(self) -> str:
        return posixpath.join(self.root, "runs.jsonl")

    def log(self, job: str) -> str:
        return posixpath.join(self.root, "logs", f"{job}.log")

    def release_dir(self, release: str) -> str:
        return posixpath.join(self.layout.release_secrets(release), "jobs")

    def when(self, release: str, job: str) -> str:
        return posixpath.join(self.release_dir(release), f"{job}.when")

    def run(self, release: str, job: str) -> str:
        return posixpath.join(self.release_dir(release), f"{job}.run")


def scheduler_name(names: Names) -> str:
    return f"{names.prefix}-scheduler"


def job_container_prefix(names: Names, job: str) -> str:
    return f"{names.prefix}-job-{job}"


def run_script(spec: ContainerSpec, image: str, release_network: str, app_network: str, names: Names,
               release: str, job: str, command: Sequence[str]) -> str:
    """A job's one-off container, exactly as `exec --new` makes one (plan/operate/exec.one_off: the
    release's env, env file, secret mounts, hardening, networks), its name given as $1."""
    argvs = one_off(spec, image, release_network, app_network, NAME_SLOT, command,
                    {**names.labels(JOB_ROLE, release, spec.service), "io.deployctl.job": job})
    lines = [shlex.join(argv).replace(NAME_SLOT, '"$1"') for argv in argvs]
    create, connect, start = lines
    return (f"# {job} of {release} (written by deployctl deploy; run by ../../../jobs/run.sh)\n"
            f"{create} >/dev/null || exit 125\n{connect} >/dev/null || exit 125\nexec {start}\n")


def when_line(job: Job) -> str:
    return parse_cron(job.schedule).table_line() + "\n"


def runner_script(files: JobFiles, names: Names) -> str:
    """Arguments: NAME TRIGGER (schedule | manual); the paths are written in. Exits with the
    job's code (BUSY when its previous run still holds the lock). The lock stays with the
    run's `docker start --attach` too (fd 9 is inherited), so a runner killed mid-run does
    not free it while the job's client still waits on the container."""
    q = shlex.quote
    return f"""#!/bin/sh
# deployctl's job runner (plan/operate/jobs.py): run.sh NAME TRIGGER
name=$1 trigger=$2
jobs={q(files.root)}
record() {{
    exec 8>>"$jobs/runs.lock"; flock 8
    printf '%s\\n' "$1" >>"$jobs/runs.jsonl"
    if [ "$(wc -l <"$jobs/runs.jsonl")" -gt {KEEP_RUNS} ]; then
        tail -n {KEEP_RUNS // 2} "$jobs/runs.jsonl" >"$jobs/runs.jsonl.tmp" && mv "$jobs/runs.jsonl.tmp" "$jobs/runs.jsonl"
    fi
    exec 8>&-
}}
start=$(date -u +%s)
id="$start-$$"
mkdir -p "$jobs/logs"
exec 9>>"$jobs/$name.lock"
if ! flock -n 9; then
    record "{{\\"id\\":\\"$id\\",\\"job\\":\\"$name\\",\\"trigger\\":\\"$trigger\\",\\"start\\":$start,\\"outcome\\":\\"skipped\\"}}"
    echo "$name: its previous run is still running; not started" >&2
    exit {BUSY}
fi
live=$(cat {q(files.layout.current)} 2>/dev/null)
script={q(files.layout.root)}/secrets/$live/jobs/$name.run
if [ -z "$live" ] || [ ! -f "$script" ]; then
    record "{{\\"id\\":\\"$id\\",\\"job\\":\\"$name\\",\\"release\\":\\"$live\\",\\"trigger\\":\\"$trigger\\",\\"start\\":$start,\\"outcome\\":\\"missing\\"}}"
    echo "$name: the live release (${{live:-none}}) has no such job" >&2
    exit 1
fi
record "{{\\"id\\":\\"$id\\",\\"job\\":\\"$name\\",\\"release\\":\\"$live\\",\\"trigger\\":\\"$trigger\\",\\"start\\":$start,\\"outcome\\":\\"running\\"}}"
container={q(names.prefix)}-job-$name-$id
if [ "$trigger" = manual ]; then
    sh "$script" "$container"; rc=$?
else
    # Its own file while it runs, then renamed over NAME.log: a run of the next minute that
    # starts meanwhile never truncates the output of the last one that ended.
    sh "$script" "$container" >"$jobs/logs/$name.$id.log" 2>&1; rc=$?
    mv -f "$jobs/logs/$name.$id.log" "$jobs/logs/$name.log"
fi
docker rm --force "$container" >/dev/null 2>&1
end=$(date -u +%s)
record "{{\\"id\\":\\"$id\\",\\"job\\":\\"$name\\",\\"release\\":\\"$live\\",\\"trigger\\":\\"$trigger\\",\\"start\\":$start,\\"seconds\\":$((end - start)),\\"exit_code\\":$rc,\\"outcome\\":\\"exited\\"}}"
exit $rc
"""


def scheduler_script(files: JobFiles) -> str:
    """Each minute (UTC): the live release's `.when` files, each a job's sets as
    `,M,|,H,|,DOM,|,MON,|,DOW,|or|and`; a due job runs in the background (its own lock keeps
    a slow one from overlapping itself)."""
    q = shlex.quote
    return f"""#!/bin/sh
# deployctl's job scheduler (plan/operate/jobs.py): reads the live release each minute.
jobs={q(files.root)}
last=
while :; do
    now=$(date -u +%Y%m%d%H%M)
    if [ "$now" != "$last" ]; then
        last=$now
        live=$(cat {q(files.layout.current)} 2>/dev/null)
        set -- $(date -u '+%M %H %d %m %w')
        M=${{1#0}} H=${{2#0}} D=${{3#0}} N=${{4#0}} W=$5
        for when in {q(files.layout.root)}/secrets/"$live"/jobs/*.when; do
            [ -n "$live" ] && [ -f "$when" ] || continue
            IFS='|' read -r fm fh fd fn fw rule <"$when"
            case "$fm" in *",$M,"*) ;; *) continue ;; esac
            case "$fh" in *",$H,"*) ;; *) continue ;; esac
            case "$fn" in *",$N,"*) ;; *) continue ;; esac
            dm=0; case "$fd" in *",$D,"*) dm=1 ;; esac
            wm=0; case "$fw" in *",$W,"*) wm=1 ;; esac
            if [ "$rule" = or ]; then [ $((dm + wm)) -gt 0 ] || continue; else [ $((dm * wm)) -eq 1 ] || continue; fi
            name=${{when##*/}}; name=${{name%.when}}
            sh "$jobs/run.sh" "$name" schedule </dev/null >/dev/null 2>&1 &
        done
    fi
    s=$(date -u +%S); sleep $((61 - ${{s#0}}))
done
"""


def scheduler_hash(image: str, scheduler: str, runner: str) -> str:
    return hashlib.sha256("\0".join((image, scheduler, runner)).encode()).hexdigest()[:16]


def run_scheduler(names: Names, files: JobFiles, image: str, digest: str) -> list[str]:
    """The scheduler on the host: restarted by dockerd (a reboot, a crash), `--init` reaping
    the runs it starts; the state directory at its own path, so the env files' paths in the
    `.run` scripts are the host's; the engine's socket, so each run is a sibling container."""
    root = files.layout.root
    return ["docker", "run", "--detach", "--name", scheduler_name(names), "--restart", "unless-stopped", "--init",
            "--log-opt", "max-size=1m",
            *[arg for k, v in sorted({**names.labels(SCHEDULER_ROLE), SCHEDULER_LABEL: digest}.items())
              for arg in ("--label", f"{k}={v}")],
            "-v", f"{DOCKER_SOCKET}:{DOCKER_SOCKET}", "-v", f"{root}:{root}",
            "--entrypoint", "sh", image, files.scheduler]


def scheduler_state(names: Names) -> list[str]:
    """`status|hash` of the scheduler (exit 1 when there is none)."""
    return ["docker", "container", "inspect", "--format",
            f'{{{{.State.Status}}}}|{{{{index .Config.Labels "{SCHEDULER_LABEL}"}}}}', scheduler_name(names)]


def remove_scheduler(names: Names) -> list[str]:
    return ["docker", "rm", "--force", scheduler_name(names)]


def run_now(names: Names, files: JobFiles, job: str) -> list[str]:
    """`deployctl jobs run NAME`: the same runner, in the scheduler, so the same lock holds."""
    return ["docker", "exec", scheduler_name(names), "sh", files.runner, job, "manual"]


def parse_runs(text: str) -> list[dict[str, Any]]:
    """runs.jsonl as one entry per run (its start line updated by its end line), oldest first.
    A line that is not JSON (cut by a full disk) is skipped."""
    runs: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            runs.setdefault(entry["id"], {}).update(entry)
    return sorted(runs.values(), key=lambda r: (r.get("start", 0), r["id"]))
