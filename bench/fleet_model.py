"""Fleet model: deploy wall time past the 8 stand-in hosts of bench/fleet_deploy.py.

What one host's deploy costs is counted by running deployctl's own deploy (services/lifecycle/deploy.py,
the real rollout) against scripted hosts (tests/support/fake_host.py) behind a network model
(ModelHost): every call to a host waits its round trips (a command: session channel +
exec = 2; an SFTP write 4, read 3, mkdir 1; an HTTP check through a direct-tcpip channel 2;
the SSH connection 7), so one host's deploy at `--rtt` minus the same at 0 RTT gives the
round trips on its critical path (the calls made side by side count once).

Many hosts are then a formula, not threads in real time (the hosts' threads on this loaded
2-core machine would measure the machine, not the model). For N hosts with rollout.parallel =
all (one thread per host: the thread pool never queues a host):

    T(N) = max(T1 + registry(N), N x c)
    T1   = trips x RTT + layer / host link + host work + c        (one host alone)
    registry(N) = max(0, N x layer / registry link - layer / host link)   (one registry shared)
    c    = deployctl's CPU per host (SSH handshake, channel crypto, planning); the GIL runs
           it on one core, so N hosts need N x c seconds of it whatever the threads

`--measured FILE` (fleet_deploy.py --json) gives T1, host work, c and the handshake's share
of c, and checks the formula against the measured 1..8 points, where the stand-in hosts and
deployctl share this machine's cores: T(N) = T1 + (N - 1) x (h + c) / cores, h the hosts'
CPU per host deploy. The bottleneck named for 20 / 100 / 500 hosts is the term that grows
the wall time most: the registry's bandwidth, the SSH handshakes (their share of N x c),
the rest of deployctl's CPU, or the thread pool (only when rollout.parallel is set).

    .venv/bin/python bench/fleet_model.py --measured /tmp/fleet.json [--sizes 20,100,500]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployctl.config import LoadedConfig, parse_config  # noqa: E402
from deployctl.events import Message  # noqa: E402
from deployctl.secrets import Secret  # noqa: E402
from deployctl.services.lifecycle.deploy import deploy  # noqa: E402
from deployctl.services.lifecycle.release_images import ReleaseImages  # noqa: E402
from deployctl.services.env import Env  # noqa: E402
from tests.support.fake_host import FakeHost  # noqa: E402

CONFIG = """
app = "shop"
registry = {{ server = "registry.example" }}
[services.backend]
context = "backend"
migrate = ["python", "-m", "migrate"]
secrets = ["DB_PASSWORD"]
[services.backend.healthcheck]
timeout = 30
[services.frontend]
context = "frontend"
routed = true
[services.frontend.healthcheck]
timeout = 30
[services.frontend.env]
BACKEND_URL = "{{{{ backend.url }}}}"

[environments.fleet]
target = "ssh"
hosts = {hosts}
proxy_port = 8080
state_dir = "/srv/state"
[environments.fleet.rollout]
drain = {drain}
guard_window = 0
{extra}
"""
SECRETS = {"DB_PASSWORD": Secret("model-password")}
COUNTING_RTT = 0.2  # seconds: the RTT the round trips on one host's critical path are counted at
# Round trips per call (see the docstring); "run" also carries its share of the host's work.
ROUND_TRIPS = {"connect": 7, "run": 2, "put_file": 4, "read_file": 3, "append_file": 4, "mkdir": 1,
               "remove_tree": 1, "http_get": 2, "tcp_check": 1}


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.round_trips = 0

    def add(self, trips: int) -> None:
        with self.lock:
            self.round_trips += trips


class ModelHost(FakeHost):
    """A FakeHost behind a network: each call waits its round trips."""

    def __init__(self, name: str, rtt: float, tally: Tally) -> None:
        super().__init__(name)
        self.rtt, self.tally = rtt, tally
        self.on = False  # off while the model sets up the live release

    def _wait(self, call: str) -> None:
        if self.on:
            trips = ROUND_TRIPS[call]
            self.tally.add(trips)
            time.sleep(trips * self.rtt)

    def connect(self) -> "ModelHost":
        self._wait("connect")
        return super().connect()

    def run(self, argv, **kwargs):  # type: ignore[no-untyped-def, override]
        self._wait("run")
        return super().run(argv, **kwargs)

    def put_file(self, path, data, mode=0o600):  # type: ignore[no-untyped-def]
        self._wait("put_file")
        return super().put_file(path, data, mode)

    def read_file(self, path):  # type: ignore[no-untyped-def]
        self._wait("read_file")
        return super().read_file(path)

    def append_file(self, path, data, mode=0o644):  # type: ignore[no-untyped-def]
        self._wait("append_file")
        return super().append_file(path, data, mode)

    def mkdir(self, path, *, mode=0o755, exclusive=False):  # type: ignore[no-untyped-def]
        self._wait("mkdir")
        return super().mkdir(path, mode=mode, exclusive=exclusive)

    def remove_tree(self, path):  # type: ignore[no-untyped-def]
        self._wait("remove_tree")
        return super().remove_tree(path)

    def http_get(self, address, port, path, timeout=2.0, headers=None):  # type: ignore[no-untyped-def]
        self._wait("http_get")
        return super().http_get(address, port, path, timeout, headers)

    def tcp_check(self, address, port, timeout=2.0):  # type: ignore[no-untyped-def]
        self._wait("tcp_check")
        return super().tcp_check(address, port, timeout)


def images(n: int) -> ReleaseImages:
    return ReleaseImages({sv: f"registry.example/shop/{sv}@sha256:{n:064d}" for sv in ("backend", "frontend")},
                         f"{n:07d}")


@dataclass(frozen=True)
class OneHost:
    wall: float
    round_trips: int  # every call's, side by side or not
    docker_commands: int


def one_host(rtt: float, drain: float) -> OneHost:
    """One host's deploy through the network model (deployctl's real code, a scripted host)."""
    text = CONFIG.format(hosts=json.dumps(["h1"]), drain=drain, extra="")
    loaded = LoadedConfig(Path("/model/deploy.toml"), parse_config(text))
    tally = Tally()
    host = ModelHost("h1", rtt, tally)
    deploy(Env.resolve(loaded, "fleet"), images(1), SECRETS, lambda event: None, connectors=[host], now=1_780_000_000)
    before = len(host.calls)
    host.on = True
    started = time.monotonic()
    deploy(Env.resolve(loaded, "fleet"), images(2), SECRETS, _fail_loudly, connectors=[host], now=1_780_000_060)
    wall = time.monotonic() - started
    docker = sum(1 for call, text in host.calls[before:] if call == "run" and text.startswith("docker"))
    return OneHost(wall, tally.round_trips, docker)


def _fail_loudly(event) -> None:  # type: ignore[no-untyped-def]
    if isinstance(event, Message) and event.level == "error":
        raise RuntimeError(event.text)


def measured(path: Path) -> dict:
    data = json.loads(path.read_text())
    out = {"cores": data["cores"], "load": statistics.median(data["load"]), "handshake": data.get("handshake_cpu"),
           "sizes": {}}
    for size in data["sizes"]:
        samples = size["samples"]
        cpus = [s["cpu"] for s in samples if s["cpu"] is not None]
        out["sizes"][(size["hosts"], size["batch"])] = {
            "wall": statistics.median(s["wall"] for s in samples),
            "pull": statistics.median(s["pull"] for s in samples),
            "ctl_cpu": statistics.median(s["ctl_cpu"] for s in samples),
            "host_cpu": statistics.median(cpus) if cpus else None,
        }
    return out


def waves(n: int, parallel: int | None) -> int:
    return -(-n // parallel) if parallel else 1


@dataclass(frozen=True)
class Model:
    t1: float  # one host alone, but its pull
    c: float  # deployctl's CPU per host
    handshake: float  # of which the SSH connection's
    layer_mb: float
    host_mbit: float
    registry_mbit: float

    def own_pull(self) -> float:
        return self.layer_mb * 8 / self.host_mbit

    def pulls(self, n: int, parallel: int | None = None) -> float:
        """Every host pulls before any lock, `parallel` at a time: each wave at its own link's
        speed, all of them through the one registry."""
        return max(waves(n, parallel) * self.own_pull(), n * self.layer_mb * 8 / self.registry_mbit)

    def registry(self, n: int, parallel: int | None = None) -> float:
        return self.pulls(n, parallel) - waves(n, parallel) * self.own_pull()

    def wall(self, n: int, parallel: int | None = None) -> float:
        """Then the hosts switch, `parallel` at a time (the thread pool); the controller's CPU
        is a floor."""
        return max(self.pulls(n, parallel) + waves(n, parallel) * self.t1, n * self.c)

    def terms(self, n: int) -> dict[str, float]:
        """What each candidate adds over one host at N hosts."""
        return {"registry bandwidth": self.registry(n),
                "SSH handshakes (controller CPU)": max(0.0, n * self.c - self.t1) * self.handshake / self.c,
                "deployctl's other CPU (GIL)": max(0.0, n * self.c - self.t1) * (1 - self.handshake / self.c),
                "thread pool": 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measured", type=Path, required=True, help="fleet_deploy.py --json output")
    parser.add_argument("--sizes", default="20,100,500")
    parser.add_argument("--rtt", type=float, default=0.050)
    parser.add_argument("--host-mbit", type=float, default=100.0)
    parser.add_argument("--registry-mbit", type=float, default=1000.0,
                        help="the one registry's uplink, shared by every host's pull")
    parser.add_argument("--layer-mb", type=float, default=50.0, help="what a release adds to pull, per host")
    parser.add_argument("--drain", type=float, default=1.0, help="rollout.drain (fleet_deploy.py uses 1.0)")
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    data = measured(args.measured)
    one = data["sizes"][(1, None)]
    # Counted at a long RTT, so that this loaded machine's scheduling noise is small beside it.
    zero, far = one_host(0.0, args.drain), one_host(COUNTING_RTT, args.drain)
    trips = round((far.wall - zero.wall) / COUNTING_RTT)
    c = one["ctl_cpu"]
    handshake = min(c, data["handshake"] or 0.0)
    h = one["host_cpu"] or 0.0
    print(f"one host, measured (stand-in, load {data['load']:.1f}): {one['wall']:.2f}s wall, pull {one['pull']:.2f}s, "
          f"deployctl CPU {c:.2f}s (of which the SSH connection {handshake:.2f}s), hosts' CPU {h:.2f}s")
    print(f"one host, counted through the fake connector: {far.round_trips} round trips in all, {trips} on the "
          f"critical path ({far.wall - zero.wall:.2f}s longer at {COUNTING_RTT * 1000:.0f} ms than at 0), "
          f"{far.docker_commands} docker commands")

    print(f"\ncheck against the stand-in fleet (the hosts and deployctl share {data['cores']} cores: "
          f"T(N) = T1 + (N - 1) x (h + c) / cores):")
    print(f"{'deploy to':<16} {'measured s':>11} {'model s':>8} {'error':>7}")
    for (count, batch), point in sorted(data["sizes"].items(), key=lambda kv: (kv[0][1] or 0, kv[0][0])):
        if batch:  # one host at a time: every host's switch in a row, the pulls once before
            model = point["pull"] + count * (one["wall"] - one["pull"])
        else:
            model = one["wall"] + (count - 1) * (h + c) / data["cores"]
        name = f"{count} host{'s' if count > 1 else ''}" + (f", batch {batch}" if batch else "")
        print(f"{name:<16} {point['wall']:>11.2f} {model:>8.2f} {(model - point['wall']) / point['wall']:>+7.0%}")

    t1 = one["wall"] - one["pull"] + trips * args.rtt
    model = Model(t1, c, handshake, args.layer_mb, args.host_mbit, args.registry_mbit)
    print(f"\nprediction for real hosts ({args.rtt * 1000:.0f} ms RTT, {args.host_mbit:g} Mbit/s each, one registry "
          f"at {args.registry_mbit:g} Mbit/s, {args.layer_mb:g} MB new per release, each host its own CPU, "
          f"rollout.parallel = all):")
    print(f"{'hosts':>6} {'wall s':>8} {'vs 1':>6} {'registry +s':>12} {'N x c s':>8}  bottleneck")
    sizes = [1, 8] + [int(n) for n in args.sizes.split(",")]
    for n in sizes:
        terms = model.terms(n)
        name = max(terms, key=terms.get) if max(terms.values()) > 0 else "none (one host's own time)"  # type: ignore[arg-type]
        print(f"{n:>6} {model.wall(n):>8.2f} {model.wall(n) / model.wall(1):>5.2f}x {model.registry(n):>12.1f} "
              f"{n * c:>8.1f}  {name}")
    print("\nwith rollout.parallel = 50 (the thread pool bounded): " + ", ".join(
        f"{n} hosts {model.wall(n, 50):.1f}s" for n in sizes[2:]))


if __name__ == "__main__":
    main()
