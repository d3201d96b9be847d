"""deployctl/interrupts.py: a signal's exception held while a child starts is raised where
the child is cleaned up, never lost, never raised twice."""

from __future__ import annotations

import pytest

from deployctl.interrupts import Hold, raise_or_hold


class Stop(Exception):
    pass


def test_without_a_hold_the_exception_is_raised_at_once():
    with pytest.raises(Stop):
        raise_or_hold(Stop())


def test_a_held_exception_is_raised_by_the_release_and_only_once():
    hold = Hold()
    raise_or_hold(Stop("first"))
    raise_or_hold(Stop("second"))  # a second signal during the hold: the first one is kept
    with pytest.raises(Stop, match="first"):
        hold.release()
    hold.release()  # released already: nothing more
    with pytest.raises(Stop):  # and the next signal is raised at once again
        raise_or_hold(Stop())


def test_a_release_while_an_exception_is_on_its_way_drops_the_held_one():
    hold = Hold()
    raise_or_hold(Stop())
    hold.release(raise_held=False)
    with pytest.raises(Stop, match="later"):
        raise_or_hold(Stop("later"))


def test_nested_holds_raise_at_the_outermost_release():
    outer, inner = Hold(), Hold()
    raise_or_hold(Stop())
    inner.release()  # still held by the outer one
    with pytest.raises(Stop):
        outer.release()


def test_a_hold_taken_outside_the_main_thread_holds_nothing():
    import threading

    holds = []
    worker = threading.Thread(target=lambda: holds.append(Hold()))
    worker.start()
    worker.join()
    with pytest.raises(Stop):  # the main thread's handler raises at once
        raise_or_hold(Stop())
    holds[0].release()  # and its release does nothing


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_sigterm_and_ctrl_c_raise_interrupted_held_while_a_child_starts(signum):
    """Both signals go through the deploy's handler: a Ctrl-C is held like a SIGTERM, so it
    cannot surface inside Popen and leave a hook's process unknown to anyone."""
    import os
    import signal

    from deployctl.cli.deploy import sigterm_interrupts
    from deployctl.services.lifecycle.rollout import Interrupted

    before = signal.getsignal(signal.SIGINT)
    with sigterm_interrupts():
        hold = Hold()
        os.kill(os.getpid(), getattr(signal, signum))  # delivered before kill() returns
        with pytest.raises(Interrupted, match=signum):
            hold.release()
    assert signal.getsignal(signal.SIGINT) is before  # the handlers are put back
