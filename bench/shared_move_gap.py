"""The gap of a single host's move to the shared proxy (docs/proxy.md, "Moving an app to the
shared proxy"), on this machine's engine: the probe app deployed with its own proxy on a port,
then deployed with `shared_proxy` on that port under continuous traffic straight to it (no
load balancer to retry elsewhere). Prints the requests refused, the window they fell in, and
the gap deployctl measured itself (cut command to the shared proxy's first answer), per run.

    .venv/bin/python bench/shared_move_gap.py [--runs 3] [--workers 4]

Needs the Docker engine and the stand-in images (scripts/testenv.sh up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployctl.config import load_config  # noqa: E402
from deployctl.events import Recorder, StepDone  # noqa: E402
from deployctl.services.lifecycle.deploy import deploy  # noqa: E402
from deployctl.services.lifecycle.release_images import ReleaseImages  # noqa: E402
from deployctl.services.env import Env  # noqa: E402
from tests.integration.deploy_fixtures import (build_probe_images, docker, free_port, probe_config,  # noqa: E402
                                               remove_app, unique_app)
from tests.support.traffic import Traffic  # noqa: E402

from deploy_zero_downtime import SECRETS, STANDINS  # noqa: E402 - the same stand-ins and probe secret


def one_move(probe, workers: int) -> dict:  # type: ignore[no-untyped-def]
    app, port, own = unique_app(), free_port(), free_port()
    shared = f"b{app}"
    with tempfile.TemporaryDirectory() as tmp:
        path = probe_config(Path(tmp), app, port=port, drain=0.3, health_timeout=5)

        def release(revision: str) -> ReleaseImages:
            return ReleaseImages({"backend": probe.good, "frontend": probe.good, "proxy": probe.proxy}, revision)

        try:
            deploy(Env.resolve(load_config(path), "local"), release("1111111a"), SECRETS, Recorder())
            text = path.read_text().replace("[proxy]\n", f'[proxy]\nhosts = ["{app}.test"]\n', 1)
            path.write_text(text.replace(f"proxy_port = {port}\n", f'proxy_port = {own}\nshared_proxy = "{shared}"\n'
                                         f"shared_proxy_port = {port}\n", 1))
            events = Recorder()
            with Traffic(f"http://127.0.0.1:{port}/version", workers=workers, max_requests=50_000, max_seconds=120,
                         host_header=f"{app}.test") as traffic:
                time.sleep(1)
                deploy(Env.resolve(load_config(path), "local"), release("2222222b"), SECRETS, events)
                time.sleep(0.5)
            failed = traffic.report.failures
            move = next(e for e in events.of(StepDone) if e.step == "move")
            return {"requests": traffic.report.total, "failed": len(failed),
                    "window": (max(s.finished for s in failed) - min(s.started for s in failed)) if failed else 0.0,
                    "errors": sorted({s.error.split(":")[0] or str(s.status) for s in failed}),
                    "deployctl": move.detail}
        finally:
            remove_app(app)
            docker("rm", "-f", f"deployctl-shared-proxy-{shared}", check=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    probe = build_probe_images(STANDINS)
    print(f"load average before: {os.getloadavg()}")
    runs = [one_move(probe, args.workers) for _ in range(args.runs)]
    for n, run in enumerate(runs, 1):
        print(f"run {n}: {run['failed']} of {run['requests']} requests failed within {run['window']:.3f}s "
              f"({', '.join(run['errors']) or 'none'}); deployctl: {run['deployctl']}")
    print(f"median: {statistics.median(r['failed'] for r in runs)} requests failed, failure window "
          f"{statistics.median(r['window'] for r in runs):.3f}s ({args.workers} workers, one connection per request)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
