"""How long `deployctl --help` takes next to a bare `python -c pass`, measured side by side.

Run: .venv/bin/python bench/help_startup.py [--runs 15]
Interleaves the two commands so machine noise hits both alike; prints medians and the
difference (deployctl's own cost) and the ratio. Target: deployctl --help under 0.08 s
(python -c pass is about 0.023 s here; the root --help imports Typer and no verb module).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 0.08


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    exe = shutil.which("deployctl", path=str(Path(sys.executable).parent)) or "deployctl"
    commands = {"python -c pass": [sys.executable, "-c", "pass"], "deployctl --help": [exe, "--help"]}
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for name, argv in commands.items():  # warm the page cache once each
        timed(argv)
    for _ in range(args.runs):
        for name, argv in commands.items():
            samples[name].append(timed(argv))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base, ours = medians["python -c pass"], medians["deployctl --help"]
    print(f"{'command':<20} {'median s':>9} {'min s':>7} {'max s':>7}   ({args.runs} runs each, interleaved)")
    for name, values in samples.items():
        print(f"{name:<20} {medians[name]:9.3f} {min(values):7.3f} {max(values):7.3f}")
    print(f"deployctl's own start-up cost: {ours - base:.3f} s; ratio to bare python: {ours / base:.1f}x")
    verdict = "meets" if ours < TARGET_SECONDS else "MISSES"
    print(f"target: --help under {TARGET_SECONDS} s -> {verdict} ({ours:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
