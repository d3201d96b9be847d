"""The proxy anchor's CPU per second, two versions side by side: for each, an anchor container
(ANCHOR_SCRIPT of deployctl/plan/lifecycle/docker_commands.py at a git ref, or this tree) with
an nginx listening in its network namespace (the normal state: the app's nginx container
serves, the anchor only watches), its cgroup's CPU read over 3 x 30 s.

    .venv/bin/python bench/anchor_cpu.py main        # main's anchor vs this tree's
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "deployctl/plan/lifecycle/docker_commands.py"
IMAGE = "deployctl-standin/nginx:bookworm"


def anchor_script(text: str) -> str:
    namespace: dict = {}
    exec("ANCHOR_SCRIPT = " + text.split("ANCHOR_SCRIPT = ", 1)[1].split("\ndef anchor_command", 1)[0], namespace)
    return namespace["ANCHOR_SCRIPT"]


def main() -> None:
    ref = sys.argv[1] if len(sys.argv) > 1 else "main"
    scripts = {ref: anchor_script(subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{SOURCE}"], capture_output=True,
                                                 text=True, check=True).stdout),
               "this tree": anchor_script((ROOT / SOURCE).read_text())}
    tag, made, ids = uuid.uuid4().hex[:6], [], {}
    try:
        for index, (name, script) in enumerate(scripts.items()):
            anchor = f"bench-anchor-{index}-{tag}"
            ids[name] = subprocess.run(["docker", "run", "-d", "--name", anchor, IMAGE, "sh", "-c", script, "deployctl-anchor",
                                        "80", "/etc/nginx/nginx.conf", "/tmp/marker"],
                                       capture_output=True, text=True, check=True).stdout.strip()
            made.append(anchor)
            made.append(f"bench-listener-{index}-{tag}")
            subprocess.run(["docker", "run", "-d", "--name", made[-1], "--network", f"container:{anchor}", IMAGE,
                            "nginx", "-g", "daemon off;"], capture_output=True, text=True, check=True)
        time.sleep(8)
        for name, cid in ids.items():  # the listener is another's: the anchor must not serve itself
            top = subprocess.run(["docker", "top", cid], capture_output=True, text=True).stdout
            assert "nginx: master" not in top, f"{name}'s anchor started its own nginx:\n{top}"

        def usage(cid: str) -> int:
            return int(Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage").read_text())
        for round_ in range(3):
            before = {n: usage(c) for n, c in ids.items()}
            time.sleep(30)
            after = {n: usage(c) for n, c in ids.items()}
            print(f"round {round_}: " + ", ".join(f"{n} {(after[n] - before[n]) / 1e6 / 30:.1f} ms of CPU per second"
                                                  for n in ids) + f"; load {open('/proc/loadavg').read().split()[0]}",
                  flush=True)
    finally:
        subprocess.run(["docker", "rm", "-f", *made], capture_output=True)


if __name__ == "__main__":
    main()
