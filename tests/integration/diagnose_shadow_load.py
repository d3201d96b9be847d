"""Diagnosis, not collected by the suite (no test_ prefix): why does a healthy release's
shadow window see 5xx on a loaded machine? Run it by name while loading the machine:

    SHADOW_ROUNDS=6 .venv/bin/python -m pytest tests/integration/diagnose_shadow_load.py -p no:xdist -s

Deploys v1, then SHADOW_ROUNDS healthy releases one after the other, each with a 30 s shadow
window under 4 workers of GET /version (test_shadow.py's settings). For each window it prints
the load average, every copy's 5xx with its kind (status, upstream status, upstream time) and
the proxy's error-log reason, the live answers at or over shadow_timeout at the same time, and
the verdict replayed from the log every second of the window by the rules before 2026-12-06
(no bar, no chance test) and by today's (plan/judging/shadow.py): a false stop of either shows
as `stop`. A healthy release the window stops fails the run (today's rules)."""

from __future__ import annotations

import os
import re
import subprocess
import time

from deployctl.config import load_config
from deployctl.events import Recorder, StepDone, StepFailed
from deployctl.plan.judging.access_log import _epoch, parse_lines
from deployctl.plan.judging.canary import WAIT, board, canary_verdict
from deployctl.plan.judging.shadow import SHADOW_P95_FLOOR_MS, shadow_spec
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.judging.shadow import ShadowStopped
from deployctl.services.env import Env
from tests.integration.deploy_fixtures import free_port, probe_config, remove_app, unique_app
from tests.integration.test_release_safety import SECRETS, images
from tests.integration.test_shadow import SHADOW
from tests.support.traffic import Traffic


def proxy_log(app: str) -> list[str]:
    names = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=^{app}-local-proxy"], capture_output=True,
                           text=True).stdout.split()
    lines: list[str] = []
    for name in names:
        done = subprocess.run(["docker", "logs", "--timestamps", name], capture_output=True, text=True)
        lines += (done.stdout + done.stderr).splitlines()
    return lines


def first_stop(entries, spec, new: str, live: str, since: float, until: float, *, old: bool) -> str:
    """The first decision other than wait, judging the log as it stood each second."""
    t = since + 1.0
    while t <= until + 1.0:
        seen = {"h": [e for e in entries if e.at < t and e.method in spec.methods]}
        if old:  # before 2026-12-06: no bar on the live side, no chance test
            b = board(seen, new, live, since=since, max_routes=spec.routes.max_routes)
            v = canary_verdict(b.new, b.live, max_error_rate=spec.max_error_rate, max_p95_ms=SHADOW_P95_FLOOR_MS,
                               min_requests=spec.min_requests, final=b.new.requests >= spec.min_requests,
                               max_p95_ratio=spec.max_p95_ratio, keys="shadow", routes=b.routes,
                               route_rule=spec.routes)
        else:
            v = spec.judge(spec.board(seen, new, live, since), left=spec.window - (t - since))
        if v.decision != WAIT:
            return f"{v.decision} at +{t - since:.0f}s ({v.new.errors}/{v.new.requests} vs {v.live.errors}/" \
                   f"{v.live.requests}; cut off {v.new.cut_off} vs as slow {v.live.cut_off})"
        t += 1.0
    return "wait"


def test_diagnose(tmp_path, probe_images):
    rounds = int(os.environ.get("SHADOW_ROUNDS", "4"))
    app, port = unique_app(), free_port()
    config = load_config(probe_config(tmp_path, app, port=port, rollout=SHADOW))
    spec = shadow_spec(config.environment("local").rollout)
    stopped_today = []
    try:
        live = deploy(Env.resolve(config, "local"), images(probe_images, "1111111aaaa"), SECRETS, Recorder()).release
        for i in range(rounds):
            load = open("/proc/loadavg").read().split()[0]
            events = Recorder()
            with Traffic(f"http://127.0.0.1:{port}/version", workers=4, max_seconds=120):
                time.sleep(0.5)
                try:
                    new = deploy(Env.resolve(config, "local"), images(probe_images, f"{i + 2:07d}abcd"), SECRETS, events).release
                except ShadowStopped as exc:
                    new, why = None, exc.message
                    stopped_today.append(why)
                time.sleep(0.3)
            mirrored = next(e.at for e in events.events if isinstance(e, StepDone) and e.step == "mirror")
            judged = next(e.at for e in events.events if isinstance(e, (StepDone, StepFailed)) and e.step == "shadow")
            lines = proxy_log(app)
            entries = [e for e in parse_lines(lines) if e.at >= mirrored]
            copy = new or next(e.release for e in reversed(entries) if e.release != live)
            window = [e for e in entries if e.at <= judged + spec.timeout + 0.5]
            print(f"\nround {i}, load {load}: verdict {judged - mirrored:.1f}s after the mirror; "
                  f"{'passed' if new else 'STOPPED: ' + why}")
            for e in window:
                if e.release == copy and e.error:
                    print(f"  copy {e.status} after {e.seconds:.3f}s at +{e.at - mirrored:.2f}s")
                if e.release == live and e.over(spec.timeout):
                    print(f"  live {e.status} after {e.seconds:.3f}s at +{e.at - mirrored:.2f}s")
            reasons = {re.sub(r".*upstream (timed out \(110: [^)]*\) while [a-z ]+|prematurely closed[a-z ]+).*",
                              r"\1", line) for line in lines if "/.deployctl-shadow" in line and "[error]" in line
                       and line[:4].isdigit() and _epoch(line.split()[0]) >= mirrored}
            print(f"  error log of the copies: {sorted(reasons) or 'none'}")
            for old in (True, False):
                print(f"  replayed, {'before' if old else 'today'}: "
                      f"{first_stop(window, spec, copy, live, mirrored, judged, old=old)}")
            if new:
                live = new
    finally:
        remove_app(app)
    assert stopped_today == [], stopped_today
