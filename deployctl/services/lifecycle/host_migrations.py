"""A deploy's migrations on the host that runs them (docs/transaction.md, `migrate`: once
per rollout, before any new container starts): the backup `rollback --restore-data` needs,
each service's one-off migration container, and the schema recorded with the release.

What runs and what `--dry-run` prints come from one generator (`_migrations`); the deploy
(services/lifecycle/deploy.HostDeploy.migrate) says when it runs and what a failure means.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Callable, Protocol

from ...adapters.connector import check
from ...errors import DeployError, RemoteCommandError
from ...events import Emit, Timer
from ...plan.lifecycle import docker_commands as dc
from ...plan.lifecycle.containers import ContainerSpec
from ...plan.lifecycle.release_spec import ReleaseSpec
from ...plan.lifecycle.steps import PlannedStep
from ...plan.lifecycle.switch_plan import SwitchPlan
from ...secrets import redactor
from ..data.release_schema import ReleaseDatabase, backup_before_migrate, read_schema, schema_commands
from ..env import Env
from .switch import HostSwitch


class MigratedDeploy(Protocol):
    """What the migrations use of the host's deploy: `database` is the rollout's one (every
    host's record names what the migrations found), `previous` the release live here."""

    env: Env
    conn: Any
    emit: Emit
    release: str
    previous: str | None
    containers: list[ContainerSpec]
    spec: ReleaseSpec
    plan: SwitchPlan
    switch: HostSwitch
    database: ReleaseDatabase


class HostMigrations:
    """`run` what `rows` prints: the backup, the migrations, the schema read."""

    def __init__(self, deploy: MigratedDeploy) -> None:
        self.deploy = deploy

    def any(self) -> bool:
        return any(True for _ in self._migrations())

    def rows(self) -> list[PlannedStep]:
        """What `run` runs (on the rollout's first host), as the dry run prints it."""
        d = self.deploy
        rows = []
        if d.env.settings.rollout.backup_before_migrate and self.any():
            rows.append(PlannedStep("backup", "before the migrations, when a release is live: `deployctl accessory "
                                              "backup` of the database accessory, its id recorded with the release"))
        for _, command, (clear, create, connect, start) in self._migrations():
            rows += [PlannedStep("migrate", "", tuple(create)),
                     PlannedStep("migrate", "only when a leftover of a killed run holds the name: it goes, then the "
                                            "create again", tuple(clear)),
                     *(PlannedStep("migrate", "", tuple(argv)) for argv in (connect, start)),
                     PlannedStep("migrate", "the one-off container goes, whatever it exited with", tuple(clear))]
        for _, command, (clear, create, connect, start) in schema_commands(
                d.env.config, d.containers, d.env.names, d.release, d.spec.network):
            rows += [PlannedStep("schema", "its last line is recorded with the release", tuple(argv))
                     for argv in (clear, create, connect, start, clear)]
        return rows

    def run(self, before: Callable[[], object] | None = None) -> None:
        """`before` (the pre_migrate hook) first when there is a migration to run."""
        d = self.deploy
        migrates = self.any()
        if before is not None and migrates:
            before()
        if migrates:
            d.database.backup = backup_before_migrate(d.env, d.conn, d.release, d.previous, d.emit)
        if not migrates or not d.plan.create:
            self._run_migrations()
        else:
            # The new containers are created (not started) meanwhile: independent of the
            # migration, and a second or more of engine calls off the deploy's path (issue 26).
            # Both end before anything else happens; a failure of either is this step's.
            with ThreadPoolExecutor(max_workers=1) as pool:
                created = pool.submit(d.switch.create, d.plan)
                try:
                    self._run_migrations()
                finally:
                    wait([created])
            created.result()
        d.database.schema = read_schema(d.conn, schema_commands(
            d.env.config, d.containers, d.env.names, d.release, d.spec.network), d.emit) or None

    def _migrations(self):  # type: ignore[no-untyped-def]
        """(service, command, its argvs: remove, create, connect, start) for each service that
        migrates: what `_run_migrations` runs and `rows` prints."""
        d = self.deploy
        names = d.env.names
        name = names.migration(d.release)
        for spec in d.containers:
            command = d.env.config.services[spec.service].migrate
            if command:
                create, connect, start = dc.run_migration(spec, d.spec.network, names.network, name, command,
                                                          names.labels("migrate", d.release, spec.service))
                yield spec.service, command, (dc.remove([name]), create, connect, start)

    def _run_migrations(self) -> None:
        conn, emit = self.deploy.conn, self.deploy.emit
        for service, command, (clear, create, connect, start) in self._migrations():
            timer = Timer(emit, "migrate", host=conn.host, service=service, detail=" ".join(command))
            create_clearing_leftover(conn, create, clear)
            check(conn, connect)
            result = conn.run(start, timeout=600)
            conn.run(clear)
            if not result.ok:
                output = tuple((result.stdout + result.stderr).strip().splitlines()[-20:])
                timer.failed(f"exited {result.rc}", output)
                raise DeployError(f"{conn.host}: migration `{' '.join(command)}` exited {result.rc}",
                                  hint="nothing was switched; the previous release is still serving")
            timer.done()


def create_clearing_leftover(conn, create: list[str], clear: list[str]) -> None:  # type: ignore[no-untyped-def]
    """`docker create` of a one-off container; only when a leftover of a killed run holds its
    name (the release-scoped name Docker refuses as "already in use"), that one goes and the
    create runs again. The create first: the `docker rm` that cleared the name before every
    create found nothing on all but a killed run's retry (a docker process per deploy, issue 26)."""
    result = conn.run(create)
    if result.ok:
        return
    if "already in use" not in result.stderr:
        raise RemoteCommandError(conn.host, create, result.rc, redactor(result.stderr or result.stdout))
    conn.run(clear)
    check(conn, create)
