"""Engine CPU (dockerd, containerd, the shims: outside containers) per log line a container
writes through the json-file driver: a container writes N lines 2 ms apart, one write each (as
the probe's per-request line did), vs the same writes to /dev/null; 3 interleaved rounds. The
engine is shared: run it where little else runs, or read the spread of the rounds.

    python3 bench/log_line_cpu.py deployctl-standin/python:3.11-bookworm 8000
"""
import os, subprocess, sys, time
from pathlib import Path
TICK = os.sysconf("SC_CLK_TCK")
def engine():
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit(): continue
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            if not comm.startswith(("dockerd", "containerd", "docker-proxy")): continue
            if "cpuacct:/docker/" in Path(f"/proc/{pid}/cgroup").read_text(): continue
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(f[11]) + int(f[12])) / TICK
        except (OSError, IndexError): pass
    return out
N = int(sys.argv[2]) if len(sys.argv) > 2 else 100000
image = sys.argv[1]
line = '172.18.0.4 - - [07/Dec/2026 03:40:12] "GET /version HTTP/1.1" 200 -'
res = {"stderr": [], "devnull": []}
for r in range(3):
    for where in ("stderr", "devnull"):
        target = "sys.stderr" if where == "stderr" else "open('/dev/null', 'w')"
        code = f"import sys, time\nout = {target}\nfor i in range({N}):\n    out.write('probe: {line}\\n'); out.flush(); time.sleep(0.002)\n"
        e0 = engine(); t0 = time.time()
        cid = subprocess.run(["docker", "run", "-d", "--log-driver", "json-file", image, "python3", "-c", code],
                             check=True, capture_output=True, text=True).stdout.strip()
        subprocess.run(["docker", "wait", cid], check=True, capture_output=True)
        subprocess.run(["docker", "rm", cid], check=True, capture_output=True)
        e1 = engine()
        cpu = sum(v - e0.get(p, 0) for p, v in e1.items())
        res[where].append(cpu)
        print(f"round {r} {where}: engine CPU {cpu:.2f}s wall {time.time()-t0:.1f}s load {open('/proc/loadavg').read().split()[0]}", flush=True)
for w, v in res.items(): print(w, [round(x, 2) for x in v])
diff = (sum(res["stderr"]) - sum(res["devnull"])) / 3
print(f"engine CPU per logged line: {diff / N * 1e6:.1f} us ({N} lines per run, median-free mean of 3)")
