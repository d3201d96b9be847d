"""What a `deployctl` command pays when the repository's modules have no bytecode cache:
the same commands from two copies of this tree, one compiled (`compileall`) and one with
PYTHONDONTWRITEBYTECODE set and no `__pycache__` (what every `deployctl` subprocess of the
test suite met where the environment sets that variable: each compiled every module it
imported from source again), interleaved run after run, in CPU seconds (min and median).

Commands: `python -c pass`; `deployctl config --env local` (the configuration loaded,
validated and printed: no engine); `deployctl rollback --env local` up to its first `docker`
call (a `docker` on PATH that fails at once: it stops at its engine check, exit 4).

    .venv/bin/python bench/cli_bytecode.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONSOLE_SCRIPT = "import sys; from deployctl.cli.main import run; sys.argv[0] = 'deployctl'; sys.exit(run())"
# command -> (argv after the interpreter, its exit code: 4 is the engine check failing)
COMMANDS = {
    "python -c pass": (["-c", "pass"], 0),
    "deployctl config --env local": (["-c", CONSOLE_SCRIPT, "config", "--env", "local"], 0),
    "deployctl rollback (to its engine check)": (["-c", CONSOLE_SCRIPT, "rollback", "--env", "local"], 4),
}


def cpu_of(argv: list[str], env: dict[str, str], cwd: Path, expect: int) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert done.returncode == expect, f"{argv[2:]} exited {done.returncode}, not {expect}: {done.stderr[-500:]}"
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cli-bytecode-") as tmp:
        work = Path(tmp)
        failing = work / "bin"
        failing.mkdir()
        (failing / "docker").write_text("#!/bin/sh\nexit 1\n")
        (failing / "docker").chmod(0o755)
        trees = {}
        for name in ("compiled", "no cache"):
            tree = work / name.replace(" ", "-")
            shutil.copytree(ROOT / "deployctl", tree / "deployctl",
                            ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copy(ROOT / "deploy.toml", tree / "deploy.toml")
            trees[name] = tree
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(trees["compiled"] / "deployctl")], check=True)
        base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        base["PATH"] = f"{failing}:{base['PATH']}"
        envs = {"compiled": dict(base), "no cache": dict(base, PYTHONDONTWRITEBYTECODE="1")}
        cpu: dict[tuple[str, str], list[float]] = {}
        loads = []
        for _ in range(args.runs):
            loads.append(os.getloadavg()[0])
            for command, (argv, expect) in COMMANDS.items():
                for name, tree in trees.items():
                    env = dict(envs[name], PYTHONPATH=str(tree))
                    cpu.setdefault((command, name), []).append(cpu_of([sys.executable, *argv], env, tree, expect))
        left = list((trees["no cache"] / "deployctl").rglob("*.pyc"))
        assert not left, f"the uncached tree got bytecode: {left[:3]}"
    print(f"{args.runs} runs interleaved; load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs")
    print(f"{'command':44s} {'tree':10s} {'CPU min':>8s} {'median':>8s}")
    for command in COMMANDS:
        for name in trees:
            xs = cpu[(command, name)]
            print(f"{command:44s} {name:10s} {min(xs):8.3f} {statistics.median(xs):8.3f}")
        extra = statistics.median(cpu[(command, "no cache")]) - statistics.median(cpu[(command, "compiled")])
        print(f"{'':44s} {'no cache costs':>19s} {extra:+.3f} s a command (medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
