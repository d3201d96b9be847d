"""Where `deployctl rollback` spends its start-up, stage by stage, in CPU seconds (what a
loaded machine stretches least), for one or more source trees side by side.

Each stage runs in a fresh interpreter and includes the ones above it:

1. `python -c pass`
2. Typer imported, the `rollback` verb registered and its options parsed (Typer's coercion
   imports pydantic and builds a TypeAdapter per option)
3. `deploy.toml` loaded and validated (pydantic), the environment resolved
4. `deployctl rollback --env local` up to its first `docker` call (a `docker` on PATH that
   fails at once: the command stops at its engine check, exit 4)

Stages and trees are interleaved run after run so machine noise hits all alike; the minimum
is the figure to compare (the median beside it). The floor of the whole command is stage 3
plus its engine round trips: `bench/rollback_command.py` measures the whole command.

    .venv/bin/python bench/rollback_startup.py [--runs 10] [TREE ...]

TREE: a source tree of deployctl (default: this one), put first on PYTHONPATH; its own
deploy.toml is the one validated.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PARSED = ("from deployctl.cli.app import build_app\n"
          "group = build_app(['rollback'])\n"
          "root = group.make_context('deployctl', ['rollback'])\n"
          "group.commands['rollback'].make_context('rollback', ['--env', 'local'], parent=root)\n")
STAGES = {
    "1 python -c pass": "pass",
    "2 + typer, the verb parsed": PARSED,
    "3 + deploy.toml validated": PARSED + ("from deployctl.config import load_config\n"
                                           "from deployctl.services.env import Env\n"
                                           "Env.resolve(load_config('deploy.toml'), 'local')\n"),
    # as the console script runs it: run() (its collector settings, its exit) around main()
    "4 + to the first docker call": ("import sys\n"
                                     "sys.argv = ['deployctl', 'rollback', '--env', 'local', '--config', 'deploy.toml']\n"
                                     "from deployctl.cli.main import run\n"
                                     "run()\n"),
}


def children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("trees", nargs="*", default=[str(ROOT)])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fake = Path(tmp) / "docker"
        fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
        fake.chmod(0o755)
        # As a user's shell runs it: with bytecode caches (see bench/rollback_command.py).
        base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        base["PATH"] = f"{tmp}{os.pathsep}{base.get('PATH', '')}"
        cpu: dict[tuple[str, str], list[float]] = {}
        wall: dict[tuple[str, str], list[float]] = {}
        loads = []
        for n in range(args.runs + 1):  # the first round writes the bytecode caches: not counted
            for stage, code in STAGES.items():
                for tree in args.trees:
                    env = dict(base, PYTHONPATH=tree)
                    before, started = children_cpu(), time.perf_counter()
                    subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True)
                    if n:
                        wall.setdefault((stage, tree), []).append(time.perf_counter() - started)
                        cpu.setdefault((stage, tree), []).append(children_cpu() - before)
            loads.append(os.getloadavg()[0])
    print(f"{args.runs} runs interleaved; load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs")
    print(f"{'stage':<32}{'tree':<28}{'CPU min':>8}{'median':>8}{'wall min':>10}")
    for (stage, tree), values in cpu.items():
        print(f"{stage:<32}{tree[-27:]:<28}{min(values):8.3f}{statistics.median(values):8.3f}"
              f"{min(wall[(stage, tree)]):10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
