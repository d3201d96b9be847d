"""The lock-breaking flags of deploy and rollback, and the question `--force-unlock-live` asks.

`--force-unlock-live` is a flag of its own rather than a value of `--force-unlock`
(`--force-unlock=live`): click cannot give one option both a bare and a valued form
cleanly, and a separate name keeps the everyday `--force-unlock` in scripts and CI a plain
boolean that can only ever break a stale lock; breaking a live one is always spelled out."""

from __future__ import annotations

import sys
import threading
from typing import Annotated, Callable

import typer

from ..plan.lifecycle.lock import Unlock

ForceUnlock = Annotated[bool, typer.Option(
    "--force-unlock", help="Break the lock only when it is shown STALE: its holder's process is gone (holder on this "
                           "machine) or it has been held past its time limit.")]
ForceUnlockLive = Annotated[bool, typer.Option(
    "--force-unlock-live", help="Also break a LIVE lock: names its holder and asks first (--yes answers for CI). "
                                "If the holder still runs, two deploys then run at once.")]
Yes = Annotated[bool, typer.Option("--yes", help="Answer yes to --force-unlock-live's (and rollback --restore-data's) question (CI).")]


def unlock_policy(force_unlock: bool, force_unlock_live: bool, yes: bool, *,
                  ask: Callable[[str], bool] | None = None, interactive: bool | None = None) -> Unlock:
    """What the service may break. The question is asked when a live lock is met, per host,
    one at a time (hosts are locked in parallel): the holder named is the one broken."""
    from ..errors import UsageError

    if not force_unlock_live:
        return Unlock("stale" if force_unlock else "none")
    if yes:
        return Unlock("live", confirm=lambda holder: True)
    if not (sys.stdin.isatty() if interactive is None else interactive):
        raise UsageError("--force-unlock-live asks before it breaks a live lock, and no one can answer here",
                         hint="add --yes where no one can type (CI)")
    question = ask or (lambda text: typer.confirm(text, default=False, err=True))
    one_at_a_time = threading.Lock()

    def confirm(holder: str) -> bool:
        with one_at_a_time:
            return bool(question(f"The deploy lock on {holder} is LIVE as far as deployctl can tell. "
                                 "Break it anyway?"))

    return Unlock("live", confirm=confirm)
