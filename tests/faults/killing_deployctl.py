"""deployctl's own CLI with a fault point in the process, for the cells that must signal it at
an exact moment no event marks (after the proxy config is written but before the reload;
after the reload but before the verify's first request):

    python -m tests.faults.killing_deployctl CALL PATTERN SIGNAL deployctl-args...

CALL is `run`, `put_file` or `http_get` of the connectors (local and SSH); when the first
call matching PATTERN (a regex, on the argv / path / "address:port/path") is about to be
made, the process sends itself SIGNAL. SIGKILL ends it there; after a SIGTERM (handled in
the main thread) it waits 0.5 s, so the handler has run, then makes the call: the signal
arrived between the previous call and this one."""

from __future__ import annotations

import os
import re
import signal
import sys
import time

from deployctl.adapters.local import LocalConnector
from deployctl.adapters.ssh import SSHConnector

TEXT = {
    "run": lambda argv, *a, **k: " ".join(argv),
    "put_file": lambda path, *a, **k: path,
    "http_get": lambda address, port, path, *a, **k: f"{address}:{port}{path}",
}


def arm(call: str, pattern: str, sig: signal.Signals) -> None:
    fired = []
    for cls in (LocalConnector, SSHConnector):
        original = getattr(cls, call)

        def wrapper(self, *args, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            if not fired and re.search(pattern, TEXT[call](*args, **kwargs)):
                fired.append(True)
                sys.stderr.write(f"killing_deployctl: {sig.name} before {call} {TEXT[call](*args, **kwargs)}\n")
                sys.stderr.flush()
                os.kill(os.getpid(), sig)
                time.sleep(0.5)
            return _original(self, *args, **kwargs)

        setattr(cls, call, wrapper)


if __name__ == "__main__":
    call, pattern, name, *args = sys.argv[1:]
    arm(call, pattern, signal.Signals[name])
    from deployctl.cli.main import run

    sys.argv = ["deployctl", *args]
    run()
