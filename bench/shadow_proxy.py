"""The proxy with the shadow window's mirror on vs off: what users see (p95 latency, requests
per second), side by side in one run.

Four nginx proxies rendered by deployctl (plan/edge/proxy_config.py) run at once, each in the
stand-in nginx image with the host's network, in front of upstreams on this machine (small
Python servers, 127.0.0.1, free ports):

  off        the live release only (the configuration of any deploy)
  on         the live release answers, every GET copied to a new release as fast as it
  on, slow   the same, the new release 3x slower (an added delay per request)
  on, hung   the same, the new release never answering in time (30 s per request): each copy
             is cut off at the shadow timeout (rollout.shadow_timeout, 1 s by default)

Rounds interleave the four (off, on, on-slow, on-hung, off, ...), each a fixed time of `--workers`
clients GETting as fast as they can; medians over the rounds. `--keepalive` reuses each
client's connection (nginx finishes a request only with its mirror, so a slow copy holds
the next request on that connection); without it every request opens its own.

    .venv/bin/python bench/shadow_proxy.py [--rounds 5] [--seconds 4] [--workers 4] [--keepalive]

Needs the Docker engine and the stand-in nginx image (scripts/testenv.sh up).
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployctl.plan.edge.proxy_config import Shadow, render_proxy_config  # noqa: E402
from deployctl.plan.lifecycle.release_spec import ProxySpec  # noqa: E402
from tests.integration.deploy_fixtures import free_port  # noqa: E402

from proxy_load import interleaved, print_table, Started, wait_answering  # noqa: E402

NGINX = "deployctl-standin/nginx:bookworm"
LIVE, NEW, SLOW = "20261206-100000-1111111", "20261206-110000-2222222", "20261206-120000-3333333"
HUNG = "20261206-130000-4444444"


def start_proxy(folder: Path, name: str, listen: int, upstreams: dict[str, str], shadow: Shadow | None) -> str:
    config = render_proxy_config(ProxySpec(NGINX, False, listen_port=listen), LIVE, upstreams, shadow=shadow)
    config = config.replace("    include /etc/deployctl/proxy.d/", "    # include /etc/deployctl/proxy.d/")
    (folder / "nginx.conf").write_text(config)
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", "host", "-v",
                    f"{folder}:/etc/deployctl/proxy:ro", NGINX, "nginx", "-c", "/etc/deployctl/proxy/nginx.conf",
                    "-g", "daemon off;"], check=True, stdout=subprocess.DEVNULL)
    wait_answering(lambda: http.client.HTTPConnection("127.0.0.1", listen, timeout=1), f"the proxy {name}")
    return name


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--keepalive", action="store_true")
    parser.add_argument("--delay-ms", type=float, default=5.0, help="the live and new upstreams' time per request")
    args = parser.parse_args()
    delay = args.delay_ms / 1000
    tag = uuid.uuid4().hex[:8]
    with Started() as started:
        with tempfile.TemporaryDirectory(prefix="shadow-bench-") as tmp:
            ports = {}
            for release, seconds in ((LIVE, delay), (NEW, delay), (SLOW, 3 * delay), (HUNG, 30.0)):
                ports[release] = started.upstream(seconds)
            address = {r: f"127.0.0.1:{p}" for r, p in ports.items()}
            setups = {"off": (None, {LIVE: address[LIVE]}),
                      "on": (Shadow(NEW, ("GET", "HEAD")), {LIVE: address[LIVE], NEW: address[NEW]}),
                      "on, slow": (Shadow(SLOW, ("GET", "HEAD")), {LIVE: address[LIVE], SLOW: address[SLOW]}),
                      "on, hung": (Shadow(HUNG, ("GET", "HEAD")), {LIVE: address[LIVE], HUNG: address[HUNG]})}
            listen = {}
            for i, (mode, (shadow, upstreams)) in enumerate(setups.items()):
                folder = Path(tmp) / f"p{i}"
                folder.mkdir()
                os.chmod(folder, 0o755)
                listen[mode] = free_port()
                started.containers.append(start_proxy(folder, f"shadow-bench-{tag}-{i}", listen[mode], upstreams, shadow))
            connect = {mode: (lambda port=port: http.client.HTTPConnection("127.0.0.1", port, timeout=10))
                       for mode, port in listen.items()}
            results, loads = interleaved(connect, args.rounds, args.seconds, args.workers, args.keepalive)
    connection = "keep-alive" if args.keepalive else "a connection per request"
    print(f"{args.rounds} interleaved rounds of {args.seconds:g}s, {args.workers} workers, {connection}; upstream "
          f"{args.delay_ms:g} ms per request (the slow new release {3 * args.delay_ms:g} ms); load average "
          f"{min(loads):.1f}-{max(loads):.1f}")
    print_table(results, "off", "mirror")
    return 0


if __name__ == "__main__":
    sys.exit(main())
