"""A host's deploy state through its connector: the lock, the history, `current`."""

from __future__ import annotations

import time
from dataclasses import replace

from ..errors import LockHeldError
from ..plan.lock import LockRecord, stale_reason
from ..plan.names import StateLayout
from ..plan.releases import History, ReleaseRecord
from ..secrets import redactor


class HostState:
    def __init__(self, conn, layout: StateLayout) -> None:  # conn: Connector
        self.conn, self.layout = conn, layout

    def prepare(self) -> None:
        """The state directory (first deploy on a bare host creates it)."""
        self.conn.mkdir(self.layout.root, mode=0o700)
        self.conn.mkdir(self.layout.proxy_dir, mode=0o755)

    # -- lock ------------------------------------------------------------------------------

    def holder(self) -> LockRecord | None:
        return LockRecord.parse(self.conn.read_file(self.layout.lock_info))

    def holder_text(self) -> str | None:
        """Who holds the lock, said for a person (with STALE when its process is gone), or
        None when it is free."""
        holder = self.holder()
        if holder is None:
            return "an unknown holder (no info.json)" if self.locked() else None
        from .hosts import machine, process_alive

        return holder.describe(stale_reason(holder, machine(), process_alive))

    def locked(self) -> bool:
        return self.conn.read_file(self.layout.lock_info) is not None

    def acquire(self, record: LockRecord, *, force: bool = False) -> LockRecord | None:
        """Takes the lock (atomic mkdir). Returns the broken holder when `force` broke one."""
        self.conn.mkdir(self.layout.root, mode=0o700)
        broken = None
        if not self.conn.mkdir(self.layout.lock_dir, mode=0o700, exclusive=True):
            holder = self.holder()
            for _ in range(10):  # taken this instant: its info.json follows the mkdir
                if holder is not None or force:
                    break
                time.sleep(0.1)
                holder = self.holder()
            if not force:
                who = self.holder_text() or "an unknown holder (no info.json)"
                raise LockHeldError(
                    f"{self.conn.host}: the deploy lock is held by {who}",
                    hint="rerun with --force-unlock: its holder died" if "[STALE" in who else
                    "wait for it to finish; if it is stale (the holder died), rerun with --force-unlock",
                )
            broken = holder or LockRecord(who="unknown", when="unknown", action="unknown")
            self.conn.remove_tree(self.layout.lock_dir)
            if not self.conn.mkdir(self.layout.lock_dir, mode=0o700, exclusive=True):
                raise LockHeldError(f"{self.conn.host}: someone took the lock while it was being broken")
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
        return broken

    def release(self) -> None:
        self.conn.remove_tree(self.layout.lock_dir)

    # -- history ---------------------------------------------------------------------------

    def history(self) -> History:
        raw = self.conn.read_file(self.layout.history)
        return History.parse(raw.decode(errors="replace") if raw else "")

    def current(self) -> str | None:
        raw = self.conn.read_file(self.layout.current)
        return raw.decode().strip() or None if raw else None

    def record(self, record: ReleaseRecord) -> None:
        # Its texts through the redactor: error and message quote what failed (a command's
        # output), and the history is world-readable and kept for good. Not the whole line:
        # a secret made of digits would eat digits out of the times and the digests.
        record = replace(record, error=redactor(record.error), message=redactor(record.message))
        self.conn.append_file(self.layout.history, record.to_line().encode(), 0o644)

    def set_current(self, release: str) -> None:
        self.conn.put_file(self.layout.current, f"{release}\n".encode(), 0o644)
