"""Calling something on every host at once, for services/lifecycle/rollout.py and its callers: a
host's failure is a value, not a crash (one host cannot hide another's), one error names
every failed host, and events from worker threads reach the renderer one at a time.
"""

from __future__ import annotations

import errno
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

from ...adapters.connector import ConnectionLost
from ...errors import ConnectError, DeployctlError, DeployError, UncertainError
from ...plan.lifecycle import rollout as plan

# What a connector raises when the host went away or a transfer broke (paramiko's own
# errors are turned into ConnectionLost by adapters/ssh.py).
CONNECTION_FAILURES = (OSError, EOFError)
# Among those OSErrors, a full disk under the state directory (a local target's, or an SSH
# host's where the error keeps its errno) is named as such, with the same exit codes.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)

# Where the site stands when a connection failure struck, and so the exit code:
UNCHANGED = "unchanged"  # before the lock: nothing was touched (4)
PREVIOUS = "previous"  # the previous release serves, whatever else was left (6)
UNKNOWN = "unknown"  # after the switch, before its outcome was recorded (7)


def why(exc: BaseException) -> str:
    if isinstance(exc, DeployctlError):
        return exc.message.splitlines()[0]
    if isinstance(exc, ConnectionLost):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"


def connection_failure(exc: BaseException) -> bool:
    return isinstance(exc, CONNECTION_FAILURES) and not isinstance(exc, DeployctlError)


def host_error(host: str, step: str, exc: BaseException, site: str) -> DeployctlError:
    """A connector's failure (SSH dropped, a reset, a broken SFTP transfer) as the error the
    user reads: the host, the step, what broke, where the site stands and what to do."""
    detail = str(exc) or type(exc).__name__
    if detail.startswith(f"{host}: "):
        detail = detail[len(host) + 2:]
    if not isinstance(exc, ConnectionLost) and type(exc).__name__ not in detail:
        detail = f"{type(exc).__name__}: {detail}"
    full = isinstance(exc, OSError) and exc.errno in DISK_FULL
    if full:
        # Not the connection: the host (or this machine, for a local target) is out of space
        # where deployctl keeps its state; "rerun when reachable" would send on-call astray.
        message = f"{host}: no space left on the disk during {step}: {detail}"
        first = "free space on the host's disk under the state directory (state_dir); "
    else:
        message = f"{host}: connection failed during {step}: {detail}"
        first = ""
    again = "rerun once there is space" if full else "rerun when the host is reachable"
    if site == UNCHANGED:
        return ConnectError(message, hint=f"{first}nothing was changed on the host; {again}")
    if site == PREVIOUS:
        return DeployError(message, hint=f"{first}the previous release is still serving; {again} "
                                         "(a lock left behind shows its holder in `deployctl status`; "
                                         "--force-unlock clears it)")
    return UncertainError(message, hint=f"{first}the host's state is uncertain: check `deployctl status --env ...` "
                                       "when it is reachable, then deploy or `deployctl rollback` to converge")


def mapped(host: str, step: str, exc: BaseException, site: str) -> BaseException:
    """host_error for a connection failure; any other exception as it is."""
    return host_error(host, step, exc, site) if connection_failure(exc) else exc


def attempt(fn: Callable[[Any], Any], item: Any) -> Any:
    """fn(item), or the exception it raised: a worker's failure is a value, not a crash."""
    try:
        return fn(item)
    except BaseException as exc:  # noqa: BLE001 - every failure belongs to that host's outcome
        return exc


def combined(errors: dict[str, BaseException]) -> BaseException:
    """One error for several hosts' failures, naming each; a single one is kept as it is."""
    if len(errors) == 1:
        return next(iter(errors.values()))
    failures = list(errors.values())
    known = [e for e in failures if isinstance(e, DeployctlError)]
    if len(known) < len(failures):
        return next(e for e in failures if not isinstance(e, DeployctlError))  # a bug: show it
    error = DeployctlError("\n".join(e.message for e in known), hint=known[0].hint)
    error.exit_code = known[0].exit_code
    return error


def on_every_host(items: Sequence[Any], fn: Callable[[Any], Any], parallel: int | None) -> list[Any]:
    """fn on every item (up to `parallel` at once); results in item order. When any failed,
    raises one error naming every failed host (after all have finished: never half a check)."""
    outcomes = every_outcome(items, fn, parallel)
    errors = failures(items, outcomes)
    if errors:
        raise combined(errors)
    return outcomes


def every_outcome(items: Sequence[Any], fn: Callable[[Any], Any], parallel: int | None) -> list[Any]:
    """fn on every item (up to `parallel` at once): its result or the exception it raised, in item order."""
    workers = plan.concurrency(len(items), parallel)
    if workers == 1:
        return [attempt(fn, item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="host") as pool:
        return list(pool.map(lambda item: attempt(fn, item), items))


def failures(items: Sequence[Any], outcomes: Sequence[Any]) -> dict[str, BaseException]:
    """host -> the exception, for the items whose outcome is one (in item order)."""
    return {getattr(item, "host", str(i)): out for i, (item, out) in enumerate(zip(items, outcomes))
            if isinstance(out, BaseException)}


def each_host_result(conns: Sequence[Any], one: Callable[[Any], Any], *, limit: int = 16) -> list[Any]:
    """`one(conn)` on every host at once (up to `limit`), for commands whose `one` turns a
    host's failure into its result (an object with `host` and `error`): maintenance, remove."""
    with ThreadPoolExecutor(max_workers=max(1, min(len(conns), limit)), thread_name_prefix="host") as pool:
        return list(pool.map(one, conns))


def not_everywhere(results: Sequence[Any], headline: str, exit_code: int, *, done: str, again: str) -> None:
    """Raises one RolloutError naming each host whose result has an `error` (none: returns):
    the headline, a line per failed host, and a hint naming the hosts that were `done`."""
    from ...errors import ExitCode, RolloutError

    failed = [r for r in results if r.error]
    if not failed:
        return
    finished = [r.host for r in results if not r.error]
    raise RolloutError("\n".join([headline] + [f"{r.host}: {r.error}" for r in failed]), exit_code=ExitCode(exit_code),
                       hosts=list(results), hint=(f"{done}: {', '.join(finished)}; " if finished else f"no host {done}; ")
                       + again)

