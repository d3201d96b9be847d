"""Calling something on every host at once, for services/rollout.py and its callers: a
host's failure is a value, not a crash (one host cannot hide another's), one error names
every failed host, and events from worker threads reach the renderer one at a time.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

from ..errors import DeployctlError
from ..plan import rollout as plan


def why(exc: BaseException) -> str:
    if isinstance(exc, DeployctlError):
        return exc.message.splitlines()[0]
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"


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
    workers = plan.concurrency(len(items), parallel)
    if workers == 1:
        outcomes = [attempt(fn, item) for item in items]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="host") as pool:
            outcomes = list(pool.map(lambda item: attempt(fn, item), items))
    errors = {getattr(item, "host", str(i)): out for i, (item, out) in enumerate(zip(items, outcomes))
              if isinstance(out, BaseException)}
    if errors:
        raise combined(errors)
    return outcomes
