"""A host's deploy state through its connector: the lock, the history, `current`."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import replace
from typing import Iterator

from ...errors import LockHeldError, RemoteCommandError, UncertainError
from ...events import Emit, Message
from ...plan.lifecycle.lock import RELEASE_NOT_OURS, RELEASE_OP_BUSY, LockRecord, Unlock, break_verdict, release_command, stale_reason
from ...plan.lifecycle.names import StateLayout
from ...plan.lifecycle.releases import BadReleaseId, History, ReleaseRecord, check_release_id
from ...secrets import redactor


UNKNOWN = "an unknown holder (no info.json)"
# The release/break section is a read, a remove and a write: far under this, even over SSH.
OP_WAIT = 15.0
# The tokens of the locks this process holds now: a lock naming this process's pid whose
# token is not here was left by an earlier job of this process (see HostState._stale).
_HELD: set[str] = set()
EDITED_HINT = ("the host's deploy state was edited or damaged: look at the file, restore it from a backup "
               "or remove the bad line, before any deploy or rollback")


class HostState:
    def __init__(self, conn, layout: StateLayout, emit: Emit | None = None) -> None:  # conn: Connector
        self.conn, self.layout, self.emit = conn, layout, emit
        self._token: str | None = None  # the token of the lock this object took
        self._said: set[tuple[int, str]] = set()  # history lines already warned about

    def prepare(self) -> None:
        """The state directory (first deploy on a bare host creates it)."""
        self.conn.mkdir(self.layout.root, mode=0o700)
        self.conn.mkdir(self.layout.proxy_dir, mode=0o755)

    # -- lock ------------------------------------------------------------------------------
    #
    # Taking the lock is an atomic mkdir. Releasing it and breaking it are read-compare-
    # remove sequences, which no filesystem does atomically: both run under a second mkdir
    # lock (`lock.op`, held for a read, a remove and a write) so that a holder releasing
    # and another process breaking the same lock cannot interleave (A reads its own token,
    # B breaks and re-takes, A deletes B's lock).

    def holder(self) -> LockRecord | None:
        return LockRecord.parse(self.conn.read_file(self.layout.lock_info))

    def _stale(self, holder: LockRecord) -> str | None:
        from ..hosts import machine, process_alive

        if holder.pid == os.getpid() and holder.host == machine() and holder.token not in _HELD:
            # This very process wrote it and no longer holds it (its release failed, e.g. the
            # connection dropped): the process is alive, yet nothing of it runs under the lock.
            return f"left by this deployctl process (pid {holder.pid}), which no longer holds it"
        return stale_reason(holder, machine(), process_alive, now=time.time())

    def holder_text(self) -> str | None:
        """Who holds the lock, said for a person (with STALE when it is shown stale), or
        None when it is free."""
        holder = self.holder()
        if holder is None:
            return UNKNOWN if self.locked() else None
        return holder.describe(self._stale(holder))

    def locked(self) -> bool:
        return self.conn.read_file(self.layout.lock_info) is not None

    def acquire(self, record: LockRecord, *, force: Unlock | bool = False) -> LockRecord | None:
        """Takes the lock (atomic mkdir) with a fresh owner token. A held lock is broken only
        as `force` allows (plan.lock.break_verdict); returns the broken holder, if any."""
        unlock = Unlock.of(force)
        record = replace(record, token=record.token or secrets.token_hex(16))
        self.conn.mkdir(self.layout.root, mode=0o700)
        holder = None
        for attempt in range(11):
            if self.conn.mkdir(self.layout.lock_dir, mode=0o700, exclusive=True):
                self._write_info(record)
                return None
            holder = self.holder()
            if holder is not None or attempt == 10:
                break
            # No info.json: taken this instant (its info.json follows the mkdir), or being
            # released (removing info.json comes first): look again, mkdir included.
            time.sleep(0.1)
        stale = self._stale(holder) if holder is not None else None
        who = holder.describe(stale) if holder is not None else UNKNOWN
        verdict = break_verdict(stale, unlock)
        host = self.conn.host
        if verdict == "refuse" and unlock.mode == "none":
            raise LockHeldError(
                f"{host}: the deploy lock is held by {who}",
                hint=f"rerun with --force-unlock to break it ({stale})" if stale else
                "wait for it to finish; --force-unlock breaks it once it is stale (its process gone, or held "
                "past its time limit); --force-unlock-live breaks a live one after naming it")
        if verdict == "refuse":
            raise LockHeldError(
                f"{host}: the deploy lock is held by {who}, which is not shown stale: --force-unlock left it",
                hint="wait for it to finish; if you know its holder is gone, --force-unlock-live breaks it "
                     "after naming it and asking (--yes in CI)")
        if verdict == "confirm" and not (unlock.confirm is not None and unlock.confirm(f"{host}: {who}")):
            raise LockHeldError(f"{host}: the deploy lock held by {who} was not broken: not confirmed")
        broken = self._break(holder, record)
        if broken is not None and self.emit is not None:
            kind = "a stale" if stale else "a LIVE"
            self.emit(Message(f"broke {kind} lock held by {who}", level="warning", host=host))
        return broken

    def _break(self, judged: LockRecord | None, record: LockRecord) -> LockRecord | None:
        """Replaces the lock judged breakable by ours, if it is still that one."""
        with self._op():
            if self.conn.mkdir(self.layout.lock_dir, mode=0o700, exclusive=True):
                self._write_info(record)  # released meanwhile: simply taken
                return None
            now = self.holder()
            if now != judged:
                raise LockHeldError(
                    f"{self.conn.host}: the deploy lock changed hands while it was being broken; now held by "
                    f"{now.describe(self._stale(now)) if now is not None else UNKNOWN}: not broken",
                    hint="rerun to see the new holder")
            self.conn.remove_tree(self.layout.lock_dir)
            if not self.conn.mkdir(self.layout.lock_dir, mode=0o700, exclusive=True):
                raise LockHeldError(f"{self.conn.host}: someone took the lock while it was being broken")
            self._write_info(record)
        return judged or LockRecord(who="unknown", when="unknown", action="unknown")

    def _write_info(self, record: LockRecord) -> None:
        try:
            self.conn.put_file(self.layout.lock_info, record.to_json().encode(), 0o644)
        except BaseException:
            # A lock without its info.json would refuse every later deploy as "an unknown
            # holder" although nobody holds it (found with a full disk: tests/faults).
            try:
                self.conn.remove_tree(self.layout.lock_dir)
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise
        self._token = record.token
        _HELD.add(record.token or "")

    def removed_with_state(self) -> None:
        """The lock went with the whole state root (`deployctl remove`, services/operate/remove.py):
        nothing is left to release, and a release now would create the root again (its op lock)."""
        token, self._token = self._token, None
        _HELD.discard(token or "")

    def release(self) -> None:
        """Removes the lock only while info.json carries our token; a lock that is no longer
        ours (someone broke it) is left to its holder, with a warning."""
        token, self._token = self._token, None
        _HELD.discard(token or "")  # from here on this process does not hold it, whatever happens below
        if token is None:
            return  # never taken by this HostState: not ours to remove
        # One command on the host (plan/lifecycle/lock.release_command): the op lock, the token
        # compared, the lock removed, the op lock removed.
        argv = release_command(self.layout.lock_dir + ".op", self.layout.lock_dir, self.layout.lock_info, token)
        deadline = time.monotonic() + OP_WAIT
        while (result := self.conn.run(argv)).rc == RELEASE_OP_BUSY:
            if time.monotonic() > deadline:
                raise self._op_stuck(self.layout.lock_dir + ".op")
            time.sleep(0.02)
        if result.ok:
            return
        if result.rc != RELEASE_NOT_OURS:
            raise RemoteCommandError(self.conn.host, argv, result.rc, redactor(result.stderr or result.stdout))
        holder = LockRecord.parse(result.stdout.encode()) if result.stdout.strip() else None
        if self.emit is not None:
            now = f"it is held by {holder.describe()}" if holder is not None else "it is gone"
            self.emit(Message(f"our deploy lock was broken while we held it ({now}); left it as it is",
                              level="warning", host=self.conn.host))

    @contextlib.contextmanager
    def _op(self) -> Iterator[None]:
        """The short lock around releasing and breaking (see above)."""
        path = self.layout.lock_dir + ".op"
        deadline = time.monotonic() + OP_WAIT
        while not self.conn.mkdir(path, mode=0o700, exclusive=True):
            if time.monotonic() > deadline:
                raise self._op_stuck(path)
            time.sleep(0.02)
        try:
            yield
        finally:
            self.conn.remove_tree(path)

    def _op_stuck(self, path: str) -> LockHeldError:
        return LockHeldError(
            f"{self.conn.host}: {path} is still there after {OP_WAIT:g}s: a deployctl died while "
            "releasing or breaking the deploy lock",
            hint=f"check that no deployctl is releasing this host's lock, then remove {path}")

    # -- history ---------------------------------------------------------------------------

    def history(self) -> History:
        """The history's valid records; each line left out is said once (with emit)."""
        raw = self.conn.read_file(self.layout.history)
        history = History.parse(raw.decode(errors="replace") if raw else "")
        for number, why in history.skipped:
            if self.emit is not None and (number, why) not in self._said:
                self._said.add((number, why))
                self.emit(Message(f"{self.layout.history} line {number} skipped: {why}", level="warning",
                                  host=self.conn.host))
        return history

    def current(self) -> str | None:
        raw = self.conn.read_file(self.layout.current)
        text = raw.decode(errors="replace").strip() if raw else ""
        if not text:
            return None
        try:
            return check_release_id(text, "release")
        except BadReleaseId as exc:
            raise self._edited(self.layout.current, exc) from None

    def _edited(self, path: str, exc: BadReleaseId) -> UncertainError:
        # Exit 7: what the host serves cannot be told from its state, so nothing acts on it.
        return UncertainError(f"{self.conn.host}: {path}: {exc}", hint=EDITED_HINT)

    def record(self, record: ReleaseRecord) -> None:
        # Its texts through the redactor: error and message quote what failed (a command's
        # output), and the history is world-readable and kept for good. Not the whole line:
        # a secret made of digits would eat digits out of the times and the digests.
        record = replace(record, error=redactor(record.error), message=redactor(record.message))
        self.conn.append_file(self.layout.history, record.to_line().encode(), 0o644)

    def set_current(self, release: str) -> None:
        self.conn.put_file(self.layout.current, f"{release}\n".encode(), 0o644)
