"""Holding back the exception a signal handler raises, for the few statements that start a
child process: a SIGTERM that lands inside `subprocess.Popen` after the fork raises out of
Popen before it returns, and the child (a hook's whole process group) is then known to no
one and outlives deployctl (a CI rehearsal's fault cell left `sleep` running that way).

The CLI's SIGTERM handler calls `raise_or_hold`; code that starts a child takes a `Hold`
before it and releases it inside the try whose `finally` kills the child, so a signal that
came in between is raised where it is cleaned up. Signal handlers run in the main thread
only, so module state is enough.
"""

from __future__ import annotations

import threading

_holds = 0
_held: BaseException | None = None


def raise_or_hold(exc: BaseException) -> None:
    """From a signal handler: raise `exc` now, or keep it for the end of the current hold."""
    global _held
    if _holds:
        _held = _held or exc
        return
    raise exc


class Hold:
    """Holds in the main thread only: that is where the handler raises. A child started from
    another thread (pre_migrate inside a rollout worker) is not interrupted by the signal at
    all; the main thread's exception cancels the rollout as before."""

    def __init__(self) -> None:
        global _holds
        self._open = threading.current_thread() is threading.main_thread()
        if self._open:
            _holds += 1

    def release(self, *, raise_held: bool = True) -> None:
        """Ends the hold (once; later calls do nothing) and raises what a signal left, unless
        `raise_held` is false (an exception is already on its way out)."""
        global _holds, _held
        if not self._open:
            return
        self._open = False
        _holds -= 1
        if _holds == 0 and _held is not None:
            exc, _held = _held, None
            if raise_held:
                raise exc
