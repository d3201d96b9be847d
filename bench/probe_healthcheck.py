"""What the test probe image's Docker HEALTHCHECK costs in CPU, side by side: containers of the
probe (tests/integration/probe_app) with the check of its *_checked variants (bash /dev/tcp,
probe_app/checked.Dockerfile), with the python urllib check it had before 2026-12-07, and with
none (the plain probe's since then), all running at the same time for the same seconds.

Run: .venv/bin/python bench/probe_healthcheck.py [--containers 4] [--seconds 40]
(needs the Docker engine and the stand-in python image: scripts/testenv.sh up)

Counted per variant: the containers' cgroup CPU (the check's own process runs in it) plus each
container's containerd-shim with the processes it reaped (runc exec of every check). dockerd and
containerd are left out (machine-wide; in the runs so far they did not tell the variants apart).
Every probe container of the suite runs its check every second for as long as it is up (the
fleet's and Swarm's inner engines too), so this is a cost per container-second of the suite.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.deploy_fixtures import PROBE, build_image, docker  # noqa: E402
from tests.support.engine import STANDIN_IMAGES  # noqa: E402

PYTHON_CHECK = ('HEALTHCHECK --interval=1s --timeout=5s --start-period=1s --retries=3 CMD ["python", "-c", '
                '"import urllib.request as u; u.urlopen(\'http://127.0.0.1:8000/healthz\', timeout=4)"]')
HZ = os.sysconf("SC_CLK_TCK")


def cgroup_ms(cid: str) -> float:
    v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage")
    if v1.exists():
        return int(v1.read_text()) / 1e6
    for v2 in (Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat"), Path(f"/sys/fs/cgroup/docker/{cid}/cpu.stat")):
        if v2.exists():
            return int(v2.read_text().split("usage_usec ")[1].split()[0]) / 1e3
    raise SystemExit(f"no cgroup CPU counter found for container {cid[:12]}")


def shim_ms(cid: str) -> float:
    pid = subprocess.run(["pgrep", "-f", f"containerd-shim.*-id {cid}"], capture_output=True, text=True).stdout.split()
    if not pid:
        return 0.0
    fields = Path(f"/proc/{pid[0]}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) * 1000 / HZ  # utime stime cutime cstime


def cpu_ms(ids: list[str]) -> float:
    return sum(cgroup_ms(c) + shim_ms(c) for c in ids)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=4, help="per variant")
    parser.add_argument("--seconds", type=float, default=40)
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    probe = build_image(PROBE, f"deployctl-bench/probe:{tag}", STANDIN_IMAGES["python"])
    # The plain probe has no check since 2026-12-07; the *_checked images add the bash one.
    checked = f"deployctl-bench/probe-checked:{tag}"
    docker("build", "-q", "-t", checked, "-f", str(PROBE / "checked.Dockerfile"), "--build-arg",
           f"PROBE_IMAGE=deployctl-bench/probe:{tag}", str(PROBE))
    before = f"deployctl-bench/probe-python-check:{tag}"
    subprocess.run(["docker", "build", "-q", "-t", before, "-"], input=f"FROM {probe}\n{PYTHON_CHECK}\n",
                   text=True, capture_output=True, check=True)
    variants = {"bash /dev/tcp (the *_checked images')": [checked], "python urllib (before)": [before],
                "no HEALTHCHECK": ["--no-healthcheck", probe]}
    ids: dict[str, list[str]] = {}
    try:
        for name, argv in variants.items():
            ids[name] = [docker("run", "-d", "--label", f"deployctl-bench={tag}", *argv) for _ in range(args.containers)]
        time.sleep(4)  # past the start period: every variant in its steady state
        load = open("/proc/loadavg").read().split()[0]
        start = {name: cpu_ms(c) for name, c in ids.items()}
        time.sleep(args.seconds)
        used = {name: cpu_ms(c) - start[name] for name, c in ids.items()}
        health = {name: docker("inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}", *c)
                  .split() for name, c in ids.items()}
        print(f"{args.containers} containers per variant, {args.seconds:.0f} s side by side, load average "
              f"{load} -> {open('/proc/loadavg').read().split()[0]}")
        for name, ms in used.items():
            per = ms / args.containers / args.seconds
            print(f"  {name:28s} {per:6.1f} ms CPU per container-second ({per / 10:.1f}% of a core)  "
                  f"health: {','.join(sorted(set(health[name])))}")
    finally:
        every = [c for c in ids.values() for c in c]
        if every:
            subprocess.run(["docker", "rm", "-f", *every], capture_output=True)
        subprocess.run(["docker", "rmi", before, checked, f"deployctl-bench/probe:{tag}"], capture_output=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
