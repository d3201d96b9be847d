"""Scheduled backups (`[accessories.NAME.backup] schedule`) as jobs of the host's scheduler
(plan/operate/jobs.py): a job `backup-NAME` whose `.run` script dumps the accessory where it runs,
on the scheduler's host, into that host's state directory. Pure: text as data.

Why on the host, not streamed back as `deployctl accessory backup` does: a schedule must
fire with no deployctl running anywhere (the jobs' rule), so the dump cannot travel to the
machine that runs deployctl. It stays beside the rest of deployctl's state on the host:
`<state_dir>/<app>/<env>/backups/NAME/ID.sql.gz` and, written last, `ID.json` (the same
manifest as a manual backup's), so a run cut short (the dump fails, the scheduler or the
host goes down) leaves at most a dot-prefixed `.part` file, never a listed backup.
Not to S3: the host would need AWS credentials kept there (or on the scheduler's argv),
which deployctl never puts on a host; the config refuses `to = "s3://..."` with a schedule.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...config.cron import parse_schedule
from ..lifecycle.names import StateLayout

if TYPE_CHECKING:
    from ...config.models import Config

JOB_PREFIX = "backup-"
# What the scheduled job shows as its "service" and "command" in `deployctl jobs`.
SERVICE_LABEL = "accessory {name}"


def job_name(accessory: str) -> str:
    return JOB_PREFIX + accessory


def scheduled(config: Config, env_name: str) -> dict[str, str]:
    """{accessory: schedule} of the environment's accessories that have a backup schedule."""
    out = {}
    for name in config.environments[env_name].accessories:
        backup = config.accessories[name].backup
        if backup is not None and backup.schedule:
            out[name] = backup.schedule
    return out


def folder(layout: StateLayout, accessory: str) -> str:
    """Where the scheduled backups of `accessory` are kept on the scheduler's host."""
    return posixpath.join(layout.root, "backups", accessory)


def when_line(schedule: str) -> str:
    """The schedule's sets for the scheduler (macros such as @daily as their five fields)."""
    return parse_schedule(schedule).table_line() + "\n"


@dataclass(frozen=True)
class ScheduledBackup:
    """Everything the host's script needs, written into it at deploy time."""

    app: str
    env: str
    accessory: str
    kind: str  # plan/backups' dump kind
    dump: tuple[str, ...]  # plan/data/backups.dump_argv: `docker exec CONTAINER ...`, no password in it
    layout: StateLayout
    host: str  # the scheduler's host, as the manifest names it
    keep: int | None

    def script(self) -> str:
        """A `.run` script for jobs/run.sh (its "$1", a container name, is not used: the dump
        runs in the accessory's own container). Exits non-zero, storing nothing, when the dump
        or its compression fails; prints the backup's id when it is stored."""
        q = shlex.quote
        where = folder(self.layout, self.accessory)
        manifest = ('{"accessory": "%s", "app": "%s", "created": "%s", "env": "%s", "host": "%s", "id": "%s", '
                    '"kind": "%s", "reason": "schedule", "release": %s, "sha256": "%s", "size": %s}\\n')
        args = (f'{q(self.accessory)} {q(self.app)} "$created" {q(self.env)} {q(self.host)} "$id" {q(self.kind)} '
                '"$release" "$sha" "$size"')
        prune = "" if self.keep is None else f"""
# Retention (backup.keep): the newest {self.keep} stay; one a release's record names (for
# `rollback --restore-data`) is never removed. The manifest goes first: never a listed
# backup without its dump.
ls "$dir" | grep -E '^[0-9]{{8}}-[0-9]{{6}}--.+\\.json$' | sort -r | tail -n +{self.keep + 1} | while read -r m; do
    old=${{m%.json}}
    grep -qF -- "\\"$old\\"" {q(self.layout.history)} 2>/dev/null && continue
    rm -f "$dir/$m" && rm -f "$dir/$old.sql.gz" && echo "backup $old removed (keep = {self.keep})"
done"""
        return f"""# scheduled backup of accessory {self.accessory} (written by deployctl deploy; run by jobs/run.sh)
dir={q(where)}
umask 077
mkdir -p "$dir" || exit 1
# The scheduler runs as root; the folder and files go to the state directory's owner (the
# SSH user deployctl connects as), or `backup list` and `restore` could not read them.
owner=$(stat -c %u:%g {q(self.layout.root)}) || exit 1
chown "$owner" "${{dir%/*}}" "$dir" || exit 1
rm -f "$dir"/.*.part "$dir"/.*.rc  # what a run cut short left (runs of this job never overlap: run.sh's lock)
live=$(cat {q(self.layout.current)} 2>/dev/null)
id="$(date -u +%Y%m%d-%H%M%S)--${{live:-no-release}}"
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if [ -n "$live" ]; then release="\\"$live\\""; else release=null; fi
part="$dir/.$id.sql.gz.part"
# No pipefail in every sh: the dump's own exit code goes through a file.
{{ {shlex.join(self.dump)}; echo $? >"$dir/.$id.rc"; }} | gzip -c >"$part"
zipped=$?
rc=$(cat "$dir/.$id.rc" 2>/dev/null || echo 1)
rm -f "$dir/.$id.rc"
if [ "$rc" != 0 ] || [ "$zipped" != 0 ]; then
    rm -f "$part"
    echo "the dump of accessory {self.accessory} failed (exit $rc, gzip $zipped): nothing was stored" >&2
    [ "$rc" != 0 ] && exit "$rc"
    exit 1
fi
sha=$(sha256sum "$part" | cut -d' ' -f1)
size=$(wc -c <"$part" | tr -d ' ')
chown "$owner" "$part" && mv -f "$part" "$dir/$id.sql.gz" || exit 1
printf '{manifest}' {args} >"$dir/.$id.json.part" && chown "$owner" "$dir/.$id.json.part" &&
    mv -f "$dir/.$id.json.part" "$dir/$id.json" || exit 1
echo "backup $id of {self.accessory} in {where} ($size bytes, sha256 $sha)"{prune}
"""
