"""A pytest fixture body: time.sleep advances time.monotonic instead of waiting, so health
waits, verify loops and the switch back's wait run their full course in microseconds on a
fake host. Use as `virtual_time = pytest.fixture(autouse=True)(virtual_time)` in a module."""

from __future__ import annotations

import threading
import time


def virtual_time(monkeypatch):  # type: ignore[no-untyped-def]
    real_sleep, real_monotonic = time.sleep, time.monotonic
    offset, lock = [0.0], threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            offset[0] += max(0.0, seconds)
        real_sleep(0)  # still lets the other threads run

    monkeypatch.setattr(time, "sleep", sleep)
    monkeypatch.setattr(time, "monotonic", lambda: real_monotonic() + offset[0])
