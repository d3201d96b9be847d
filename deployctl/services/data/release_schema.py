"""The database side of a release (plan/data/schema.py holds the rule): the backup a deploy takes
before its migrations (rollout.backup_before_migrate), the schema version each service's
`schema_version` command prints after them, and the restore `rollback --restore-data` runs
before its switch. Hosts only (this machine's engine and SSH): the Swarm refuses
backup_before_migrate in deploy.toml and --restore-data on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from ...adapters.connector import check
from ...errors import ConfigError, DeployError
from ...events import Emit, Message, Timer
from ...plan.data import backups as bk
from ...plan.lifecycle import docker_commands as dc
from ...plan.lifecycle.names import Names
from . import backups
from ..env import Env

SCHEMA_TIMEOUT = 120.0
VERSION_MAX = 200  # what a history line keeps of the printed version


@dataclass
class ReleaseDatabase:
    """What a deploy's migration step found, for every host's history line: the schema after
    the migrations ({service: version}) and the backup taken before them."""

    schema: dict[str, str] | None = None
    backup: dict[str, Any] | None = None


def check_settings(env: Env) -> None:
    """Before anything changes: rollout.backup_before_migrate names one database accessory
    (exit 3 otherwise) on a target that can back it up (exit 2 on a Swarm)."""
    environment = env.settings
    if not environment.rollout.backup_before_migrate:
        return
    backups.refuse_swarm(env, f"environments.{env.name}.rollout.backup_before_migrate")
    try:
        bk.backup_accessory_for(env.config, env.name)
    except bk.BackupPlanError as exc:
        raise ConfigError([str(exc)]) from None


def backup_before_migrate(env: Env, conn, release: str,  # type: ignore[no-untyped-def]
                          previous: str | None, emit: Emit) -> dict[str, Any] | None:
    """The backup that `rollback --restore-data` to `previous` restores; None when not asked
    for, or on a first deploy (there is no earlier release to go back to). A failed backup
    fails the deploy before any migration ran (exit 6, nothing changed)."""
    if not env.settings.rollout.backup_before_migrate or previous is None:
        return None
    name = bk.backup_accessory_for(env.config, env.name)
    target = backups.target(env, name)
    try:
        manifest = backups.take(env, conn, target, emit, reason=f"before the migrations of {release}")
    except DeployError as exc:
        raise DeployError(f"rollout.backup_before_migrate: {exc.message}",
                          hint="no migration ran and nothing was switched: the previous release still serves") from None
    return {"id": manifest.id, "accessory": name, "to": target.base, "sha256": manifest.sha256}


def schema_commands(config, containers, names: Names, release: str, release_network: str  # type: ignore[no-untyped-def]
                    ) -> Iterator[tuple[str, Sequence[str], tuple[list[str], ...]]]:
    """(service, command, its argvs: remove, create, connect, start) for each service that
    declares schema_version: a one-off container as a migration's (plan/docker_commands)."""
    name = names.migration(release) + "-schema"
    for spec in containers:
        command = config.services[spec.service].schema_version
        if command:
            create, connect, start = dc.run_migration(spec, release_network, names.network, name, command,
                                                      names.labels("migrate", release, spec.service))
            yield spec.service, command, (dc.remove([name]), create, connect, start)


def read_schema(conn, commands, emit: Emit) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """{service: the last line its schema_version command printed}. A command that fails,
    or prints nothing, fails the deploy: a release recorded without its schema could later
    be rolled back to across a migration without a word."""
    found = {}
    for service, command, (clear, create, connect, start) in commands:
        timer = Timer(emit, "schema", host=conn.host, service=service, detail=" ".join(command))
        conn.run(clear)
        check(conn, create)
        check(conn, connect)
        result = conn.run(start, timeout=SCHEMA_TIMEOUT)
        conn.run(clear)
        lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
        if not result.ok or not lines:
            why = f"exited {result.rc}" if not result.ok else "printed nothing"
            timer.failed(why, tuple((result.stdout + result.stderr).strip().splitlines()[-10:]))
            raise DeployError(f"{conn.host}: services.{service}.schema_version (`{' '.join(command)}`) {why}",
                              hint="the migrations ran; nothing was switched: the previous release still serves")
        found[service] = lines[-1][:VERSION_MAX]
        timer.done(found[service])
    return found


def restore_for_rollback(env: Env, conn, backup: dict[str, Any],  # type: ignore[no-untyped-def]
                         emit: Emit) -> None:
    """`rollback --restore-data`: the backup a release's record names, into its accessory,
    under the rollback's lock and before its switch."""
    target = backups.target(env, backup["accessory"], backup.get("to"))
    emit(Message(f"restoring backup {backup['id']} of {backup['accessory']} from {target.store.where} "
                 "(data written since it was taken is replaced)", level="warning", host=conn.host))
    backups.restore(env, conn, target, backup["id"], emit)
