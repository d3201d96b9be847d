"""Rollbacks that know the database schema (docs/backups.md, "Rollbacks across a migration").

A deploy records, on its history line, `extra.schema`: what each service's `schema_version`
command printed after the migrations ({service: version}), and, with
rollout.backup_before_migrate, `extra.backup`: the backup taken just before them. A
rollback that went live records the schema the database holds after it. The schema in
effect is the newest record's that carries one.

The rule, for `rollback` and for the guard's and the canary's automatic switch back: going
to a release whose recorded schema differs from the one in effect is refused, naming both,
unless the user accepts it (old code on the new schema) or restores the backup taken before
the migration of the release that replaced the target (only then is the old schema back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..lifecycle.releases import LIVE, History

SCHEMA, BACKUP = "schema", "backup"
PROCEED, RESTORE, REFUSE = "proceed", "restore", "refuse"


def schema_of(history: History, release: str) -> dict[str, str] | None:
    record = history.deployed(release)
    value = record.extra.get(SCHEMA) if record is not None else None
    return dict(value) if isinstance(value, dict) and value else None


def schema_in_effect(history: History) -> dict[str, str] | None:
    """What the newest record carrying a schema says. A deploy records it right after its
    migrations, so whatever its outcome (live, reverted by the guard, failed later) the
    database has had that schema since; a rollback records it once it went live."""
    for record in reversed(history.records):
        if record.action in ("deploy", "rollback") and record.extra.get(SCHEMA):
            return dict(record.extra[SCHEMA])
    return None


def backup_for(history: History, target: str) -> dict[str, Any] | None:
    """The backup taken before the migration of the (newest) release deployed over `target`:
    the data as it was under target's schema. None: none was taken."""
    found = None
    for record in history.records:
        if record.action == "deploy" and record.outcome == LIVE and record.previous == target \
                and isinstance(record.extra.get(BACKUP), dict):
            found = record.extra[BACKUP]
    return found


def differs(a: dict[str, str] | None, b: dict[str, str] | None) -> bool:
    """Unknown on either side (a release from before schema_version) is not a difference:
    nothing recorded, nothing to refuse on."""
    if not a or not b:
        return False
    return any(a[s] != b[s] for s in set(a) & set(b)) or set(a) != set(b)


def show(schema: dict[str, str] | None) -> str:
    if not schema:
        return "unknown"
    return ", ".join(f"{service} {version}" for service, version in sorted(schema.items()))


@dataclass(frozen=True)
class SchemaDecision:
    action: str  # proceed | restore | refuse
    message: str = ""
    backup: dict[str, Any] | None = None  # with RESTORE: the backup record to restore
    schema_after: dict[str, str] | None = None  # what the database holds after the switch


def decide(history: History, target: str, *, accept: bool = False, restore_data: bool = False,
           automatic: bool = False) -> SchemaDecision:
    """May a switch to `target` go ahead, given the schema now in effect? `automatic`: the
    guard's or canary's switch back (no flags; a refusal there keeps the new release)."""
    live, wanted = schema_in_effect(history), schema_of(history, target)
    if not differs(live, wanted):
        return SchemaDecision(PROCEED, schema_after=live or wanted)
    both = f"the database schema is {show(live)}; {target} was recorded with {show(wanted)}"
    if restore_data:
        backup = backup_for(history, target)
        if backup is None:
            return SchemaDecision(REFUSE, f"{both}, and no backup was taken before the migration that followed "
                                          f"{target} (set rollout.backup_before_migrate = true for later deploys); "
                                          "--accept-schema runs the old code on the new schema")
        return SchemaDecision(RESTORE, f"{both}: restoring backup {backup.get('id')} (taken before that migration)",
                              backup=backup, schema_after=wanted)
    if accept:
        return SchemaDecision(PROCEED, f"{both}: going ahead (--accept-schema: old code on the new schema)",
                              schema_after=live)
    if automatic:
        return SchemaDecision(REFUSE, f"{both}: not switching back automatically (old code on a newer schema); "
                                      "the new release keeps serving")
    return SchemaDecision(REFUSE, f"{both}: refused, nothing changed; --accept-schema if the old code works on "
                                  "the new schema, --restore-data to restore the backup taken before the migration")
