"""A Swarm warm rollback, two deployctl trees interleaved on one stand-in Swarm (issue 26):
where each tree's seconds go, per step, under the same load drift.

Two releases are deployed once (by the first tree); then each pair of rounds rolls back
`--to` the other release (always warm: rollout.warm_window keeps it running) once with each
tree, which tree goes first alternating, each command's `--json` events stamped as they
arrive (bench/step_profile.py). Medians per tree: the whole command, the CLI's start-up,
the connect, the gap between the connect and the rollback step, the rollback step, its
verify, and what follows it.

    PYTHONPATH=$PWD .venv/bin/python bench/swarm_rollback_ab.py --a $PWD --b /work/main [--pairs 6]

Needs the Docker engine, the stand-in images and docker-registry (scripts/testenv.sh up);
starts its own 3-node stand-in Swarm, as bench/swarm_deploy.py.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fleet_deploy import new_variant  # noqa: E402
from bench.step_profile import Profile, profiled  # noqa: E402
from tests.integration.deploy_fixtures import DEPLOYCTL, build_probe_images  # noqa: E402
from tests.integration.fleet.site import ENV  # noqa: E402
from tests.integration.swarm.site import SECRET_ENV, SwarmImages, SwarmSite  # noqa: E402
from tests.support.engine import STANDIN_IMAGES  # noqa: E402
from tests.support.fleet import start_fleet  # noqa: E402
from tests.support.registry import start_registry  # noqa: E402
from tests.support.swarm import make_swarm  # noqa: E402

PARTS = ("whole", "start-up", "connect", "between", "rollback", "verify", "to exit")


def parts(profile: Profile) -> dict[str, float]:
    """The command's seconds by part (the rows bench/step_profile.Profile.table prints)."""
    steps = {step: (at, took or 0.0) for step, _, at, took in profile.steps}
    start = profile.first_event or 0.0
    connect_at, connect = steps.get("connect", (start, 0.0))
    rollback_at, rollback = steps.get("rollback", (connect_at + connect, 0.0))
    return {"whole": profile.wall, "start-up": start, "connect": connect,
            "between": rollback_at - (connect_at + connect), "rollback": rollback,
            "verify": steps.get("verify", (0.0, 0.0))[1], "to exit": profile.wall - (rollback_at + rollback)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, help="a deployctl tree (its root: PYTHONPATH for its CLI)")
    parser.add_argument("--b", required=True, help="the other tree")
    parser.add_argument("--pairs", type=int, default=6)
    args = parser.parse_args()
    trees = {"a": str(Path(args.a).resolve()), "b": str(Path(args.b).resolve())}
    print(f"a = {trees['a']}, b = {trees['b']}; load average at start: "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cores)", flush=True)
    rows: dict[str, dict[str, list[float]]] = {name: {part: [] for part in PARTS} for name in trees}
    loads: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry")
        fleet = swarm = None
        try:
            probe = build_probe_images(STANDIN_IMAGES)
            fleet = start_fleet(work / "fleet", 3, host_image=STANDIN_IMAGES["host"],
                                nginx_image=STANDIN_IMAGES["nginx"], registry_port=registry.port)
            swarm = make_swarm(fleet)
            good = fleet.publish(probe.good_checked, "fleet/probe", "good")
            proxy = fleet.publish(STANDIN_IMAGES["nginx"], "fleet/nginx", "standin")
            (work / "swarm-site").mkdir()
            site = SwarmSite.new(swarm, SwarmImages(good, good, proxy), work / "swarm-site", 8301)
            env = {**SECRET_ENV, "TERM": "dumb", "PYTHONPATH": trees["a"]}
            for revision, image in (("0000000a", None), ("0000000b", new_variant(fleet, probe.good_checked))):
                site.artifacts(revision, image)
                done = profiled([DEPLOYCTL, "--config", str(site.config), "deploy", "--env", ENV, "--json"], env=env)
                if done.returncode != 0:
                    raise SystemExit(f"deploy {revision}: exit {done.returncode}: {(done.stdout + done.stderr)[-400:]}")
            releases = [r.release for r in site.history().records if r.action == "deploy" and r.outcome == "succeeded"]
            first, second = releases[-2], releases[-1]
            for pair in range(args.pairs):
                order = ("a", "b") if pair % 2 == 0 else ("b", "a")
                loads.append(os.getloadavg()[0])
                for name in order:
                    target = first if site.current() == second else second
                    done = profiled([DEPLOYCTL, "--config", str(site.config), "rollback", "--env", ENV, "--to", target,
                                     "--json"], env={**env, "PYTHONPATH": trees[name]})
                    if done.returncode != 0 or site.current() != target:
                        raise SystemExit(f"{name}: rollback to {target}: exit {done.returncode}: "
                                         f"{(done.stdout + done.stderr)[-400:]}")
                    got = parts(done)
                    for part in PARTS:
                        rows[name][part].append(got[part])
                    print(f"pair {pair + 1} (load {loads[-1]:.1f}) {name}: "
                          + ", ".join(f"{part} {got[part]:.2f}" for part in PARTS), flush=True)
        finally:
            if swarm is not None:
                swarm.leave()
            if fleet is not None:
                fleet.close()
            registry.stop()
    print(f"\nmedians over {args.pairs} rollbacks each (load average: median {statistics.median(loads):.1f}, "
          f"max {max(loads):.1f}; 2 cores shared)")
    print(f"{'':<10}" + "".join(f"{part:>10}" for part in PARTS))
    for name in trees:
        print(f"{name:<10}" + "".join(f"{statistics.median(rows[name][part]):>10.2f}" for part in PARTS))


if __name__ == "__main__":
    main()
