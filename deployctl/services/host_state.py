"""A host's deploy state through its connector: the lock, the history, `current`."""

from __future__ import annotations

import time

from ..errors import LockHeldError, UncertainError
from ..plan.lock import LockRecord, stale_reason
from ..plan.names import StateLayout
from ..plan.releases import BadReleaseId, History, ReleaseRecord, check_release_id

EDITED_HINT = ("the host's deploy state was edited or damaged: look at the file, restore it from a backup "
               "or remove the bad line, before any deploy or rollback")


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
        try:
            return History.parse(raw.decode(errors="replace") if raw else "")
        except BadReleaseId as exc:
            raise self._edited(self.layout.history, exc) from None

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
        self.conn.append_file(self.layout.history, record.to_line().encode(), 0o644)

    def set_current(self, release: str) -> None:
        self.conn.put_file(self.layout.current, f"{release}\n".encode(), 0o644)
