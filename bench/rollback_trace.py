"""Where a warm `deployctl rollback` spends its time: a local app with two releases and a warm
window, then N rollbacks between them, each run as a user runs it (bytecode caches on) inside a
wrapper that prints every subprocess the command starts (its `docker` calls) with its start
and end, in seconds from the command's start, and when the imports ended and the process exited;
the command's own --json events follow.

    .venv/bin/python bench/rollback_trace.py [N]        # N rollbacks, 3 by default
    IMPT=1 .venv/bin/python bench/rollback_trace.py 1   # and python -X importtime's lines

Needs the Docker engine and the stand-in images (scripts/testenv.sh up). A trace, not a
benchmark: bench/rollback_command.py measures; this says where the seconds go.
"""
import os, sys, subprocess, tempfile, time
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]; sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "bench"))
from deployctl.config import load_config
from deployctl.events import Recorder
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.env import Env
from tests.integration.deploy_fixtures import build_probe_images, free_port, probe_config, remove_app, unique_app
from deploy_zero_downtime import STANDINS
from release_speed import SECRETS
USER_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
WRAP = r'''
import sys, time, subprocess, os
T0 = float(os.environ["T0"])
_orig = subprocess.Popen.__init__
_log = []
def init(self, args, *a, **k):
    s = time.perf_counter()
    _orig(self, args, *a, **k)
    self._t = (s, args)
_ow = subprocess.Popen.wait
def wait(self, *a, **k):
    r = _ow(self, *a, **k)
    if hasattr(self, "_t"):
        s, args = self._t
        _log.append((s - T0, time.perf_counter() - T0, " ".join(map(str, args))[:150] if not isinstance(args, str) else args[:150]))
        del self._t
    return r
subprocess.Popen.__init__ = init
subprocess.Popen.wait = wait
import atexit
def dump():
    print(f"exit at {time.perf_counter()-T0:.3f}", file=sys.stderr)
    for s, e, a in sorted(_log):
        print(f"{s:6.3f} {e:6.3f} {e-s:5.3f}  {a}", file=sys.stderr)
atexit.register(dump)
print(f"imports start {time.perf_counter()-T0:.3f}", file=sys.stderr)
from deployctl.cli.main import run
print(f"imports done {time.perf_counter()-T0:.3f}", file=sys.stderr)
sys.argv = ["deployctl"] + sys.argv[1:]
sys.exit(run())
'''
probe = build_probe_images(STANDINS)
app, port = unique_app(), free_port()
with tempfile.TemporaryDirectory() as tmp:
    config = probe_config(Path(tmp), app, port=port, drain=3.0, health_timeout=30, rollout={"warm_window": 600})
    loaded = load_config(config)
    try:
        releases = [deploy(Env.resolve(loaded, "local"), ReleaseImages({"backend": probe.good, "frontend": probe.good, "proxy": probe.proxy}, f"{n:07x}b"), SECRETS, Recorder()).release for n in (1, 2)]
        for n in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
            target = releases[n % 2]
            env = dict(USER_ENV); t0 = time.perf_counter(); env["T0"] = repr(t0)
            # perf_counter is per-process monotonic CLOCK_MONOTONIC on Linux: comparable across processes
            done = subprocess.run([sys.executable, *(["-X", "importtime"] if os.environ.get("IMPT") else []), "-c", WRAP, "--config", str(config), "--json", "rollback", "--env", "local", "--to", target], capture_output=True, text=True, env=env)
            print(f"--- rollback to {target}: rc={done.returncode} wall {time.perf_counter()-t0:.3f}")
            print(done.stderr)
            print(done.stdout[-600:])
    finally:
        remove_app(app)
