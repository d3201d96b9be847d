"""Zero-downtime benchmark: deployctl's release switch vs `docker-compose up -d`.

Both run the same two probe services (tests/integration/probe_app) behind nginx (deployctl:
its built-in proxy; docker-compose: the project's nginx image), under the same continuous
traffic through nginx (bounded, 127.0.0.1 only):

  deployctl:       deploy v1 (untimed), deploy v2, rollback to v1, failing deploy v3
  docker-compose:  up v1 (untimed), up -d with v2 (recreates the containers), up -d with v1

    .venv/bin/python bench/deploy_zero_downtime.py [--workers 4]

Needs the Docker engine and the stand-in images (scripts/testenv.sh up).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployctl.config import load_config  # noqa: E402
from deployctl.errors import DeployError  # noqa: E402
from deployctl.events import Recorder  # noqa: E402
from deployctl.secrets import Secret  # noqa: E402
from deployctl.services.lifecycle.deploy import deploy  # noqa: E402
from deployctl.services.lifecycle.release_images import ReleaseImages  # noqa: E402
from deployctl.services.lifecycle.rollback import rollback  # noqa: E402
from deployctl.services.env import Env  # noqa: E402
from tests.integration.deploy_fixtures import (build_probe_images, docker, free_port, probe_config,  # noqa: E402
                                               remove_app, unique_app)
from tests.support.traffic import Traffic  # noqa: E402

from compose_baseline import compose_site, wait_for  # noqa: E402

STANDINS = {"python": "deployctl-standin/python:3.11-bookworm", "nginx": "deployctl-standin/nginx:bookworm"}
SECRETS = {"PROBE_DB_PASSWORD": Secret("bench-password-value")}


def timed(fn):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def bench_deployctl(probe, workers: int) -> dict:
    app, port = unique_app(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        loaded = load_config(probe_config(Path(tmp), app, port=port, drain=1.0, health_timeout=5))

        def release(revision, frontend=None):
            return ReleaseImages({"backend": probe.good, "frontend": frontend or probe.good, "proxy": probe.proxy},
                                 revision)

        try:
            deploy(Env.resolve(loaded, "local"), release("1111111a"), SECRETS, Recorder())
            out = {}
            with Traffic(f"http://127.0.0.1:{port}/version", workers=workers, max_seconds=300) as traffic:
                time.sleep(1)
                out["deploy"] = timed(lambda: deploy(Env.resolve(loaded, "local"), release("2222222b"), SECRETS, Recorder()))
                time.sleep(1)
                outcome = []
                out["rollback"] = timed(lambda: outcome.extend(rollback(Env.resolve(loaded, "local"), Recorder())))
                out["rollback_switch"] = outcome[0].seconds
                time.sleep(1)
                try:
                    deploy(Env.resolve(loaded, "local"), release("3333333c", probe.broken), SECRETS, Recorder())
                    out["failed_deploy"] = "WRONGLY SUCCEEDED"
                except DeployError:
                    out["failed_deploy"] = "refused (exit 6)"
                time.sleep(1)
            out["report"] = traffic.report
            return out
        finally:
            remove_app(app)


def bench_compose(probe, workers: int) -> dict:
    with compose_site(probe) as (port, up):
        up("compose-v1")
        wait_for(port)
        out = {}
        with Traffic(f"http://127.0.0.1:{port}/version", workers=workers, max_seconds=300) as traffic:
            time.sleep(1)
            out["deploy"] = timed(lambda: (up("compose-v2"), wait_for(port, "compose-v2")))
            time.sleep(1)
            out["rollback"] = timed(lambda: (up("compose-v1"), wait_for(port, "compose-v1")))
            time.sleep(1)
        out["report"] = traffic.report
        out["failed_deploy"] = "not attempted (compose has no health gate)"
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    docker("info", "--format", "{{.ServerVersion}}")
    probe = build_probe_images(STANDINS)
    ours = bench_deployctl(probe, args.workers)
    seed = bench_compose(probe, args.workers)
    rows = [
        ("requests sent", ours["report"].total, seed["report"].total),
        ("failed requests", len(ours["report"].failures), len(seed["report"].failures)),
        ("deploy time (s)", f"{ours['deploy']:.1f}", f"{seed['deploy']:.1f}"),
        ("rollback time (s)", f"{ours['rollback']:.1f} (switch {ours['rollback_switch']:.2f})", f"{seed['rollback']:.1f}"),
        ("failing deploy", ours["failed_deploy"], seed["failed_deploy"]),
    ]
    print(f"{'':<20}{'deployctl':<32}{'docker-compose up -d':<24}")
    for label, a, b in rows:
        print(f"{label:<20}{str(a):<32}{str(b):<24}")
    failed = seed["report"].failures[:3]
    if failed:
        print("compose failures, e.g.:", "; ".join(f"{f.status} {(f.error or '')[:60]!r}" for f in failed))


if __name__ == "__main__":
    main()
