"""How long `deployctl build` takes for an unchanged tree (Docker's layer cache) next to a cold
build of the same images (`--no-cache`), measured side by side in one run.

Run: .venv/bin/python bench/build_cache.py [--runs 3] [--config deploy.toml]
Builds every image deploy.toml names (both services with their test stages, and the proxy)
through the real CLI, as a pipeline would. Cold and no-op builds are interleaved so machine
noise hits both alike; prints medians and the ratio. Target: a no-op rebuild under 3 s.

Each round is: a cold build, one unmeasured cached build, then the measured no-op build.
The middle build is there because right after a --no-cache build the classic builder can
pick, for steps several images share (ENV, useradd, WORKDIR), the newest of several
identical cache entries, and redo what follows; a no-op rebuild means "nothing changed
since the last build of this tree", which is what the third build is.

Base images are the stand-ins (docs/TEAM-CONTRACT.md), passed as build args; the builds use
their own tag and artifacts file, and the images they made are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

TARGET_SECONDS = 3.0
STANDINS = {"python": "deployctl-standin/python:3.11-bookworm", "nginx": "deployctl-standin/nginx:bookworm"}


def build(exe: str, config: str, tag: str, artifacts: Path, cold: bool) -> tuple[float, dict]:
    argv = [exe, "--config", config, "build", "--tag", tag, "--artifacts", str(artifacts),
            "--build-arg", f"BASE_IMAGE={STANDINS['python']}", "--build-arg", f"proxy:BASE_IMAGE={STANDINS['nginx']}"]
    if cold:
        argv.append("--no-cache")
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"build failed ({'cold' if cold else 'no-op'}), exit {done.returncode}:\n{done.stderr[-3000:]}")
    return seconds, json.loads(artifacts.read_text())


def image_ids(artifacts: dict) -> set[str]:
    ids = set()
    for image in artifacts["images"].values():
        ids.add(image["image_id"])
        if image.get("test_image"):
            ids.add(image["test_image"]["image_id"])
    return ids


def cleanup(tag: str, artifacts: dict, made: set[str]) -> None:
    """Untag our references, then remove every image our builds made (cold builds leave whole
    chains of new layers behind). Shared parents are kept by the engine itself."""
    for image in artifacts.get("images", {}).values():
        for reference in (f"{image['repository']}:{tag}", (image.get("test_image") or {}).get("reference")):
            if reference:
                subprocess.run(["docker", "rmi", reference], capture_output=True)
    for image_id in made:
        subprocess.run(["docker", "rmi", image_id], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "deploy.toml"))
    args = parser.parse_args()
    exe = shutil.which("deployctl", path=str(Path(sys.executable).parent)) or "deployctl"
    tag = f"bench-{uuid.uuid4().hex[:8]}"
    samples: dict[str, list[float]] = {"cold (--no-cache)": [], "no-op rebuild": []}
    made: set[str] = set()
    last: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = Path(tmp) / "build.json"
        try:
            _, last = build(exe, args.config, tag, artifacts, cold=False)  # fill the cache once
            made |= image_ids(last)
            for _ in range(args.runs):
                seconds, last = build(exe, args.config, tag, artifacts, cold=True)
                samples["cold (--no-cache)"].append(seconds)
                made |= image_ids(last)
                _, last = build(exe, args.config, tag, artifacts, cold=False)  # settle the cache
                made |= image_ids(last)
                seconds, last = build(exe, args.config, tag, artifacts, cold=False)
                samples["no-op rebuild"].append(seconds)
                made |= image_ids(last)
        finally:
            cleanup(tag, last, made)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    images = ", ".join(last["images"])
    print(f"deployctl build of {images} (with test stages); {args.runs} runs each, interleaved; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end")
    print(f"{'build':<20} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, values in samples.items():
        print(f"{name:<20} {medians[name]:9.2f} {min(values):7.2f} {max(values):7.2f}")
    cold, noop = medians["cold (--no-cache)"], medians["no-op rebuild"]
    print(f"ratio cold / no-op: {cold / noop:.1f}x")
    verdict = "meets" if noop < TARGET_SECONDS else "MISSES"
    print(f"target: no-op rebuild under {TARGET_SECONDS:g} s -> {verdict} ({noop:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
