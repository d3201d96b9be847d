"""deployctl's proxy over HTTPS vs HTTP: what users see (p95 latency, requests per second),
side by side in one run (issue 24).

Two nginx proxies rendered by deployctl run at once in the stand-in nginx image with the
host's network, in front of the same upstream on this machine (a small Python server):

  http    the main configuration only (plan/edge/proxy_config.py): any deploy without HTTPS
  https   the same configuration with a certificate version in its tls/ folder, as a deploy
          with tls = "acme" or "files" leaves it (plan/edge/tls_config.server_conf: TLS 1.2/1.3,
          the intermediate cipher list, HTTP/2 offered, session cache), a certificate for
          127.0.0.1 from a private CA made for the run

Rounds interleave the two, each a fixed time of `--workers` clients GETting as fast as they
can; medians over the rounds. With keep-alive (the default, as browsers and load balancers
connect) the handshake happens once per client; `--no-keepalive` makes every request pay
one (the worst case: clients that never reuse a connection). The clients are Python on the
same 2 cores, so their own TLS work counts against the https side too: the ratio is an
upper bound on what the proxy's TLS costs.

    .venv/bin/python bench/https_proxy.py [--rounds 5] [--seconds 4] [--workers 4] [--no-keepalive]

The HTTPS snippet listens on 443 inside a proxy's network namespace; here, with the host's
network, its port is replaced by a free one (the only change to what deployctl renders).
Needs the Docker engine and the stand-in nginx image (scripts/testenv.sh up).
"""

from __future__ import annotations

import argparse
import http.client
import os
import ssl
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployctl.plan.edge import tls_config as tc  # noqa: E402
from deployctl.plan.edge.proxy_config import PROXY_MOUNT, render_proxy_config  # noqa: E402
from deployctl.plan.lifecycle.release_spec import ProxySpec  # noqa: E402
from tests.integration.deploy_fixtures import free_port  # noqa: E402
from tests.support.pebble import TestCa  # noqa: E402

from proxy_load import Connect, interleaved, print_table, Started, wait_answering  # noqa: E402

NGINX = "deployctl-standin/nginx:bookworm"
LIVE = "20261206-100000-1111111"


def proxy_folder(folder: Path, listen: int, upstream: str, tls_port: int | None, ca: TestCa) -> None:
    """The proxy directory a deploy leaves on a host: nginx.conf, and with HTTPS the tls/
    folder (a version directory and the live link to it)."""
    config = render_proxy_config(ProxySpec(NGINX, False, listen_port=listen), LIVE, {LIVE: upstream})
    (folder / "nginx.conf").write_text(
        config.replace("    include /etc/deployctl/proxy.d/", "    # include /etc/deployctl/proxy.d/"))
    os.chmod(folder, 0o755)
    if tls_port is None:
        return
    chain, key = ca.issue([], ips=["127.0.0.1"])
    version = tc.version_of(chain)
    where = folder / tc.TLS_DIR / version
    where.mkdir(parents=True)
    (where / tc.CHAIN_FILE).write_bytes(chain)
    (where / tc.KEY_FILE).write_bytes(key)  # read by nginx's master (root) in the container
    snippet = tc.server_conf(PROXY_MOUNT, version, tls_port, hsts=False)
    (where / tc.SERVER_CONF).write_text(snippet.replace(f"listen {tc.TLS_LISTEN_PORT} ", f"listen {tls_port} "))
    (folder / tc.TLS_DIR / tc.LIVE_LINK).symlink_to(version)


def start_proxy(folder: Path, name: str) -> str:
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", "host", "-v",
                    f"{folder}:{PROXY_MOUNT}:ro", NGINX, "nginx", "-c", f"{PROXY_MOUNT}/nginx.conf",
                    "-g", "daemon off;"], check=True, stdout=subprocess.DEVNULL)
    return name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--no-keepalive", dest="keepalive", action="store_false")
    parser.add_argument("--delay-ms", type=float, default=5.0, help="the upstream's time per request")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    ca = TestCa("deployctl bench CA")
    with Started() as started:
        with tempfile.TemporaryDirectory(prefix="https-bench-") as tmp:
            upstream_port = started.upstream(args.delay_ms / 1000)
            http_port, https_http_port, tls_port = free_port(), free_port(), free_port()
            for mode, listen, tls in (("http", http_port, None), ("https", https_http_port, tls_port)):
                folder = Path(tmp) / mode
                folder.mkdir()
                proxy_folder(folder, listen, f"127.0.0.1:{upstream_port}", tls, ca)
                started.containers.append(start_proxy(folder, f"https-bench-{tag}-{mode}"))
            (Path(tmp) / "ca.pem").write_bytes(ca.pem)
            context = ssl.create_default_context(cafile=str(Path(tmp) / "ca.pem"))
            connect: dict[str, Connect] = {
                "http": lambda: http.client.HTTPConnection("127.0.0.1", http_port, timeout=10),
                "https": lambda: http.client.HTTPSConnection("127.0.0.1", tls_port, timeout=10, context=context),
            }
            for mode, opener in connect.items():
                wait_answering(opener, f"the {mode} proxy")
            check = connect["https"]()
            check.request("GET", "/items")
            assert check.getresponse().getheader(tc.CERTIFICATE_HEADER), "HTTPS is not served by the certificate"
            results, loads = interleaved(connect, args.rounds, args.seconds, args.workers, args.keepalive)
    connection = "keep-alive" if args.keepalive else "a connection (and a TLS handshake) per request"
    print(f"{args.rounds} interleaved rounds of {args.seconds:g}s, {args.workers} workers, {connection}; upstream "
          f"{args.delay_ms:g} ms per request; load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs")
    print_table(results, "http", "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
