"""The deploy lock's record (who holds it, since when, for which release and why, and the
token that proves ownership) and the rules for breaking it."""

from __future__ import annotations

import calendar
import json
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Literal

# How long a lock may be held before `--force-unlock` may call it stale, on top of the
# configured waits (plan.lock.lock_timeout): pulls, health checks and migrations.
WORK_SECONDS = 3600.0


@dataclass(frozen=True)
class LockRecord:
    who: str
    when: str  # RFC 3339, UTC
    action: str  # deploy | rollback
    release: str | None = None
    message: str = ""
    pid: int | None = None  # the deployctl process holding it
    host: str | None = None  # the machine deployctl ran on (not the host it deploys to)
    # A random value only the holder knows: it releases the lock only while info.json still
    # carries it, so a holder whose lock was broken never deletes its successor's.
    token: str | None = None
    timeout: float | None = None  # seconds after `when` past which the lock counts as stale

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True) + "\n"

    @classmethod
    def parse(cls, text: str | bytes | None) -> "LockRecord | None":
        """The record, or None when info.json is missing or not a record (wrong types
        included: a holder that cannot be read is never judged stale from bad data)."""
        if not text:
            return None
        try:
            data: Any = json.loads(text)
            record = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (ValueError, TypeError, KeyError):
            return None
        strings = (record.who, record.when, record.action, record.message)
        optional = {record.release: str, record.host: str, record.token: str}
        if (not all(isinstance(s, str) for s in strings)
                or not all(v is None or isinstance(v, t) for v, t in optional.items())
                or not (record.pid is None or (isinstance(record.pid, int) and not isinstance(record.pid, bool)))
                or not (record.timeout is None or (isinstance(record.timeout, (int, float))
                                                   and not isinstance(record.timeout, bool)))):
            return None
        return record

    def started(self) -> float | None:
        try:
            return float(calendar.timegm(time.strptime(self.when, "%Y-%m-%dT%H:%M:%SZ")))
        except (ValueError, TypeError):
            return None

    def describe(self, stale: str | None = None) -> str:
        what = f"{self.action} of {self.release}" if self.release else self.action
        where = f" from {self.host}" + (f" pid {self.pid}" if self.pid is not None else "") if self.host else ""
        note = f" ({self.message})" if self.message else ""
        return f"{self.who}{where} since {self.when}: {what}{note}" + (f" [STALE: {stale}]" if stale else "")


def lock_timeout(rollout: Any) -> float:
    """How long a deploy or rollback may hold the lock: an hour for the work itself plus
    every wait the rollout configures (shadow window, canary, guard, drain). Past it the holder
    counts as stale even when its process cannot be checked (another machine, the Swarm manager)."""
    return WORK_SECONDS + rollout.shadow_window + rollout.canary_window + rollout.guard_window + rollout.drain


def stale_reason(record: LockRecord, machine: str, alive: Callable[[int], bool],
                 now: float | None = None) -> str | None:
    """Why a lock is stale, or None when its holder may still run.

    Shown stale: a holder on this machine whose process is gone, or any holder older than
    the timeout it wrote (`now` given). A holder on another machine within its timeout is
    never called stale: guessing wrong would let two deploys run at once."""
    if record.pid is not None and record.host == machine and not alive(record.pid):
        return f"its process {record.pid} on {machine} is gone"
    started = record.started()
    if now is not None and record.timeout is not None and started is not None and now - started > record.timeout:
        return f"held for {_duration(now - started)}, longer than its {_duration(record.timeout)} limit"
    return None


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


UnlockMode = Literal["none", "stale", "live"]


@dataclass(frozen=True)
class Unlock:
    """What the caller allows when the lock is taken: `stale` breaks a lock shown stale only;
    `live` also breaks a live one, once `confirm(holder description)` says yes (the CLI asks,
    or `--yes` answers for CI). A plain bool is read as before: True is `stale`."""

    mode: UnlockMode = "none"
    confirm: Callable[[str], bool] | None = None

    def __bool__(self) -> bool:
        return self.mode != "none"

    @classmethod
    def of(cls, value: "Unlock | bool | None") -> "Unlock":
        if isinstance(value, Unlock):
            return value
        return cls("stale" if value else "none")


Verdict = Literal["break", "confirm", "refuse"]


def break_verdict(stale: str | None, unlock: Unlock) -> Verdict:
    """Whether a held lock may be broken: a stale one with any force, a live one only with
    `live` and a confirmation."""
    if unlock.mode == "none":
        return "refuse"
    if stale is not None:
        return "break"
    return "confirm" if unlock.mode == "live" else "refuse"


# Releasing the lock in one command on the host (was four round trips over SSH: the op
# lock's mkdir, the read of info.json, the remove, the op lock's remove: 1.1-1.5 s against
# 0.7-0.9 s for the rest of a warm rollback). The same steps, in the same order, under the
# same `lock.op` mkdir lock: the lock directory goes only while info.json carries our token
# (a random hex string: found in the file, it is ours). Exit 0: released; OP_BUSY: another
# process holds lock.op (the caller waits and asks again); NOT_OURS: info.json (printed) has
# another token, or no info.json / no lock at all (nothing printed): left as it is.
RELEASE_OP_BUSY, RELEASE_NOT_OURS = 75, 3
RELEASE_SCRIPT = ('mkdir -m 700 -- "$1" 2>/dev/null || exit 75; '
                  'if grep -qsF -- "$4" "$3"; then rm -rf -- "$2"; r=0; else cat -- "$3" 2>/dev/null; r=3; fi; '
                  'rm -rf -- "$1"; exit $r')


def release_command(op_dir: str, lock_dir: str, info: str, token: str) -> list[str]:
    return ["sh", "-c", RELEASE_SCRIPT, "sh", op_dir, lock_dir, info, token]
