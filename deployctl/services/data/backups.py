"""Backups of a database accessory (plan/data/backups.py decides argv, names, retention):
take one (dumped in the accessory's container, streamed back to this machine, gzip and
sha256 on the way, then stored in a folder or on S3), list them, restore one (checksum
first; with `verify`, loaded into a throwaway container on a fresh volume before the
running accessory is touched), prune past `keep`.

One host: the accessory runs on each host of an environment; a backup is of one of them
(the first, or the one named). A Swarm environment is refused by name (docs/backups.md).
"""

from __future__ import annotations

import gzip
import hashlib
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from ...adapters.backup_store import BackupStore, HostStore, open_store
from ...config.models import Accessory
from ...adapters.connector import ConnectionLost
from ...errors import ConnectError, DeployError, UsageError
from ...events import Emit, Message, Timer
from ...plan.data import accessories as acc
from ...plan.data import backups as bk
from ...plan.pipeline.build import rfc3339
from ...plan.lifecycle.target_limits import refuse
from ...secrets import redactor
from . import accessories
from ..lifecycle.host_state import HostState
from ..env import Env

CHUNK = 1 << 20
RESTORE_TIMEOUT = 3600.0


class BackupError(DeployError):
    """A backup or restore did not happen; what was there before is as it was (exit 6)."""


@dataclass(frozen=True)
class Target:
    """One accessory's backups: its spec, how it is dumped, where its backups live."""

    name: str
    spec: acc.AccessorySpec
    kind: str
    store: BackupStore
    base: str  # the location given (--to, backup.to or the default), before app/env/accessory
    keep: int | None
    accessory: Accessory  # its deploy.toml table (backup.command, restore_command)


def refuse_swarm(env: Env, what: str) -> None:
    refuse(env.settings.target, env.name, "backups", what)


def target(env: Env, name: str, to: str | None = None) -> Target:
    config = env.config
    if name not in config.accessories:
        accessories.select(env, name)  # the usual "no accessory NAME (defined: ...)"
    [spec] = accessories.specs_for(env, [name])
    accessory = config.accessories[name]
    try:
        kind = bk.dump_kind(name, accessory, spec.image)
        base = bk.base_location(config, name, to)
        location = bk.location(config, env.name, name, base)
    except bk.BackupPlanError as exc:
        from ...errors import ConfigError

        raise ConfigError([str(exc)]) from None
    store = open_store(location, env.loaded.root, env.settings.aws_region)
    return Target(name, spec, kind, store, base, accessory.backup.keep if accessory.backup else None, accessory)


def has_schedule(env: Env, name: str) -> bool:
    from ...plan.data.backup_schedule import scheduled

    return env.settings.target != "swarm" and name in scheduled(env.config, env.name)


def scheduled_target(env: Env, name: str, first) -> Target | None:  # type: ignore[no-untyped-def]
    """The backups the environment's scheduler took of `name` (plan/data/backup_schedule.py), in
    the state directory of the scheduler's host (`first`, the environment's first host,
    connected by the caller); None when `name` has no schedule there."""
    from ...plan.data import backup_schedule

    if not has_schedule(env, name):
        return None
    t = target(env, name)
    folder = backup_schedule.folder(env.layout, name)
    return replace(t, store=HostStore(first, folder), base=folder)


def listing(env: Env, name: str, to: str | None = None
            ) -> tuple[str, str | None, list[tuple[bk.Manifest, str]]]:
    """`backup list`: where `to` (or backup.to, or the default) is, where the scheduled
    backups are (None: no schedule, or `to` given), and every complete backup of both with
    where it is, oldest first. Connects to the first host only for the scheduled ones."""
    t = target(env, name, to)
    found = [(m, t.store.where) for m in manifests(t.store)]
    if to is not None or not has_schedule(env, name):
        return t.store.where, None, found
    first = connector(env)
    try:
        first.connect()
        scheduled = scheduled_target(env, name, first)
        assert scheduled is not None
        found += [(m, scheduled.store.where) for m in manifests(scheduled.store)]
    finally:
        first.close()
    return t.store.where, scheduled.store.where, sorted(found, key=lambda pair: pair[0].id)


def find(env: Env, name: str, bid: str, to: str | None, first) -> Target:  # type: ignore[no-untyped-def]
    """Where backup `bid` of `name` is: `--to` when given; else the scheduled backups on the
    first host when it is one of them; else backup.to (or the default)."""
    if to is None:
        scheduled = scheduled_target(env, name, first)
        if scheduled is not None and bk.is_backup_id(bid) and scheduled.store.read(bid + bk.MANIFEST) is not None:
            return scheduled
    return target(env, name, to)


def connector(env: Env, host: str | None = None):  # type: ignore[no-untyped-def]
    """The connector of the host whose accessory is meant: `host`, else the first."""
    conns = env.connectors()
    chosen = [c for c in conns if host is None or c.host == host]
    if not chosen:
        raise UsageError(f"no host {host!r} in environment {env.name!r} ({', '.join(c.host for c in conns)})")
    return chosen[0]


def backup_now(env: Env, name: str, emit: Emit, *, to: str | None = None,
               host: str | None = None, reason: str = "manual") -> tuple[bk.Manifest, str]:
    """One backup of accessory `name` (connect, take, close): what `deployctl accessory backup`
    runs, and the one call for a scheduler (the jobs feature: reason="schedule").
    Returns the manifest and where it was stored."""
    refuse_swarm(env, "accessory backup")
    t = target(env, name, to)
    conn = connector(env, host)
    try:
        conn.connect()
        return take(env, conn, t, emit, reason=reason), t.store.where
    finally:
        conn.close()


def _running(conn, t: Target) -> None:  # type: ignore[no-untyped-def]
    accessories.require_running(conn, t.spec)


def take(env: Env, conn, t: Target, emit: Emit, *, reason: str = "manual",
         protected: Sequence[str] = (), now: float | None = None) -> bk.Manifest:
    """Dumps, compresses, checksums and stores one backup, then prunes past `keep`. A dump
    that fails (or is cut off) stores nothing: the backups before it are untouched."""
    _running(conn, t)
    config = env.config
    state = HostState(conn, env.layout)
    release = state.current()
    # A backup a release's record names is what `rollback --restore-data` restores: never pruned.
    protected = [*protected, *recorded_backups(state.history())]
    bid = bk.backup_id(time.time() if now is None else now, release)
    timer = Timer(emit, "backup", host=conn.host, service=t.name, detail=f"{t.kind} dump of {t.spec.container}")
    errors: list[bytes] = []
    with tempfile.TemporaryDirectory(prefix="deployctl-backup-") as folder:
        path = Path(folder) / (bid + bk.SUFFIX)
        try:
            with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as packed:
                rc = conn.stream(bk.dump_argv(t.spec.container, t.kind, t.accessory),
                                 on_stdout=packed.write, on_stderr=errors.append)
        except ConnectionLost as exc:
            timer.failed(str(exc))
            raise ConnectError(f"{conn.host}: the connection went during the dump of {t.name}: {exc}",
                               hint="nothing was stored; earlier backups are as they were") from None
        if rc != 0:
            why = redactor(b"".join(errors).decode(errors="replace").strip())[-500:] or f"exit {rc}"
            timer.failed(why)
            raise BackupError(f"{conn.host}: the dump of accessory {t.name} failed (exit {rc}): {why}",
                              hint="nothing was stored; earlier backups are as they were")
        digest, size = _sha256(path)
        manifest = bk.Manifest(id=bid, app=config.app, env=env.name, accessory=t.name, kind=t.kind, release=release,
                               created=rfc3339(time.time()), sha256=digest, size=size, host=conn.host, reason=reason)
        t.store.put(bid + bk.SUFFIX, path)
        t.store.put_bytes(bid + bk.MANIFEST, manifest.to_json())  # last: marks it complete
    timer.done(f"{bid} ({size} bytes, sha256 {digest[:12]}) in {t.store.where}")
    for old in bk.to_prune(list_ids(t.store), t.keep, [*protected, bid]):
        t.store.delete(old + bk.MANIFEST)  # first: a half-deleted backup is not listed
        t.store.delete(old + bk.SUFFIX)
        emit(Message(f"backup {old} removed (keep = {t.keep})", host=conn.host))
    return manifest


def recorded_backups(history) -> list[str]:  # type: ignore[no-untyped-def]
    from ...plan.data.schema import BACKUP

    return [r.extra[BACKUP]["id"] for r in history.records
            if isinstance(r.extra.get(BACKUP), dict) and r.extra[BACKUP].get("id")]


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def list_ids(store: BackupStore) -> list[str]:
    """Complete backups (those with a manifest), oldest first."""
    return sorted(n[:-len(bk.MANIFEST)] for n in store.names()
                  if n.endswith(bk.MANIFEST) and bk.is_backup_id(n[:-len(bk.MANIFEST)]))


def manifests(store: BackupStore) -> list[bk.Manifest]:
    out = []
    for bid in list_ids(store):
        data = store.read(bid + bk.MANIFEST)
        if data is not None:
            out.append(bk.Manifest.from_json(data))
    return out


def _load(t: Target, bid: str, folder: Path) -> bytes:
    """The dump, uncompressed, after its checksum matched its manifest."""
    if not bk.is_backup_id(bid):
        raise UsageError(f"{bid!r} is not a backup id (see `deployctl accessory backup list {t.name}`)")
    data = t.store.read(bid + bk.MANIFEST)
    if data is None:
        raise UsageError(f"no backup {bid} of {t.name} in {t.store.where}",
                         hint=f"`deployctl accessory backup list {t.name}` lists them")
    manifest = bk.Manifest.from_json(data)
    path = folder / (bid + bk.SUFFIX)
    try:
        t.store.fetch(bid + bk.SUFFIX, path)
    except FileNotFoundError:
        raise BackupError(f"backup {bid}: its manifest is in {t.store.where} but its dump is not") from None
    digest, _ = _sha256(path)
    if digest != manifest.sha256:
        raise BackupError(f"backup {bid}: checksum mismatch (sha256 {digest[:16]}..., its manifest says "
                          f"{manifest.sha256[:16]}...): the file is damaged; nothing was restored")
    return gzip.decompress(path.read_bytes())


def restore(env: Env, conn, t: Target, bid: str, emit: Emit, *,  # type: ignore[no-untyped-def]
            verify: bool = False) -> None:
    """Loads backup `bid` into the running accessory (after its checksum, and with `verify`
    after it loaded into a throwaway copy). A failed load is reported with the client's
    words; what it had already applied stays (a dump restores whole databases: run it again)."""
    _running(conn, t)
    try:
        argv = bk.restore_argv(t.name, t.spec.container, t.kind, t.accessory)
    except bk.BackupPlanError as exc:
        from ...errors import ConfigError

        raise ConfigError([str(exc)]) from None
    with tempfile.TemporaryDirectory(prefix="deployctl-restore-") as folder:
        dump = _load(t, bid, Path(folder))
    if verify:
        _verify(conn, t, bid, dump, emit)
    timer = Timer(emit, "restore", host=conn.host, service=t.name, detail=f"{bid} into {t.spec.container}")
    result = conn.run(argv, stdin=dump, timeout=RESTORE_TIMEOUT)
    if not result.ok:
        why = redactor((result.stderr or result.stdout).strip())[-500:]
        timer.failed(why)
        raise BackupError(f"{conn.host}: restoring {bid} into {t.name} failed (exit {result.rc}): {why}")
    timer.done()


def _verify(conn, t: Target, bid: str, dump: bytes, emit: Emit) -> None:  # type: ignore[no-untyped-def]
    """A throwaway container of the accessory's image, env and secrets on a fresh volume and
    no network: it must come up healthy and load the dump. Removed with its volume after."""
    suffix = "verify-" + uuid.uuid4().hex[:8]
    scratch = replace(t.spec, container=f"{t.spec.container}-{suffix}",
                      volumes=tuple((f"{v}-{suffix}", p) for v, p in t.spec.volumes))
    timer = Timer(emit, "restore verify", host=conn.host, service=t.name, detail=f"{bid} into {scratch.container}")
    try:
        for volume, _ in scratch.volumes:
            conn.run(acc.volume_create(scratch, volume))
        started = conn.run(acc.run(scratch, "none", alias=False, restart="no"))
        if not started.ok:
            raise BackupError(f"{conn.host}: the throwaway container to verify {bid} did not start: "
                              f"{redactor(started.stderr.strip())[:300]}")
        accessories.wait_healthy(conn, scratch, emit)
        argv = bk.restore_argv(t.name, scratch.container, t.kind, t.accessory)
        result = conn.run(argv, stdin=dump, timeout=RESTORE_TIMEOUT)
        if not result.ok:
            why = redactor((result.stderr or result.stdout).strip())[-500:]
            timer.failed(why)
            raise BackupError(f"backup {bid} does not load (exit {result.rc}): {why}",
                              hint=f"the running accessory {t.name} was not touched")
        timer.done("the dump loads")
    finally:
        conn.run(acc.remove(scratch))
        if scratch.volumes:
            conn.run(acc.volume_remove([v for v, _ in scratch.volumes]))

