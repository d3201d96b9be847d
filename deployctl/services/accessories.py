"""Accessories on a host (plan/accessories.py decides names and argv): boot when absent,
start when stopped, wait until healthy; stop, remove, status, logs.

A deploy calls `ensure_accessories` before it touches the release: an existing accessory
is never recreated (its data, and the credentials it was initialised with, live in its
volume), only started again when stopped. Changing an accessory's image or env therefore
means `deployctl accessory remove NAME` and a new boot, on purpose.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from ..adapters.connector import check
from ..config import LoadedConfig
from ..errors import DeployError, UsageError
from ..events import Emit, Message, StepProgress, Timer
from ..plan import accessories as acc
from ..plan import docker_commands as dc
from ..secrets import Secret, redactor
from .hosts import layout_for, names_for
from .switch import HostSwitch

LOG_LINES = 20


class AccessoryError(DeployError):
    """An accessory did not come up; nothing of the release was touched (exit 6)."""


@dataclass
class AccessoryState:
    accessory: str
    container: str
    host: str
    status: str  # running | exited | created | ... | missing
    image: str | None = None  # what the container runs (as it was created)
    configured_image: str = ""  # what deploy.toml (or image_env) asks for now
    health: str = "-"
    started: str | None = None
    volumes: list[str] = field(default_factory=list)

    @property
    def drift(self) -> bool:
        return self.image is not None and self.image != self.configured_image


def select(loaded: LoadedConfig, env_name: str, name: str) -> list[str]:
    """`all`: the environment's accessories; else one defined accessory."""
    config, environment = loaded.config, loaded.environment(env_name)
    if name == "all":
        if not environment.accessories:
            raise UsageError(f"environment {env_name!r} lists no accessories",
                             hint=f"add accessories = [...] to [environments.{env_name}]")
        return list(environment.accessories)
    if name not in config.accessories:
        from ..config.problems import suggest

        defined = ", ".join(config.accessories) or "none"
        raise UsageError(f"no accessory {name!r} in deploy.toml (defined: {defined}){suggest(name, config.accessories)}")
    return [name]


def specs_for(loaded: LoadedConfig, env_name: str, names: Sequence[str],
              environ: Mapping[str, str] | None = None) -> list[acc.AccessorySpec]:
    layout = layout_for(loaded, env_name)
    return [acc.accessory_spec(loaded.config, env_name, name, layout, environ) for name in names]


def ensure_accessories(loaded: LoadedConfig, env_name: str, conn, secrets: Mapping[str, Secret], emit: Emit,
                       environ: Mapping[str, str] | None = None) -> None:
    """Before a deploy: every accessory the environment lists is up and healthy."""
    names = loaded.environment(env_name).accessories
    for spec in specs_for(loaded, env_name, names, environ):
        boot(loaded, env_name, conn, spec, secrets, emit)


def boot(loaded: LoadedConfig, env_name: str, conn, spec: acc.AccessorySpec, secrets: Mapping[str, Secret],
         emit: Emit) -> str:
    """Creates the accessory when absent, starts it when stopped, leaves it when running;
    then waits for its health check. Returns what it did: created | started | running."""
    state = _state(conn, spec)
    if state is None:
        did = _create(loaded, env_name, conn, spec, secrets, emit)
    elif state.status == "running":
        did = "running"
        if state.image != spec.image:
            emit(Message(f"accessory {spec.name} runs {state.image}, deploy.toml asks for {spec.image}; it is kept "
                         f"as it is (its data): `deployctl accessory remove {spec.name}` and boot again to change it",
                         level="warning", host=conn.host))
    else:
        timer = Timer(emit, "accessory", host=conn.host, service=spec.name, detail=f"starting {spec.container}")
        check(conn, acc.start(spec))
        timer.done("started")
        did = "started"
    wait_healthy(conn, spec, emit)
    return did


def _create(loaded: LoadedConfig, env_name: str, conn, spec: acc.AccessorySpec, secrets: Mapping[str, Secret],
            emit: Emit) -> str:
    missing = [name for name in spec.secrets if name not in secrets]
    if missing:  # a bug in the caller: secrets are fetched (and checked) before any host is touched
        raise ValueError(f"accessory {spec.name}: secrets not fetched: {', '.join(missing)}")
    timer = Timer(emit, "accessory", host=conn.host, service=spec.name, detail=f"booting {spec.container} ({spec.image})")
    _ensure_image(conn, spec)
    names, layout = names_for(loaded, env_name), layout_for(loaded, env_name)
    HostSwitch(conn, names, layout, emit).ensure_network()
    if spec.secrets:
        # The state root first, as HostState makes it (0700): on a first deploy the accessory
        # comes before anything else, and parents made on the way would get the default mode.
        accessory_dir = posixpath.dirname(spec.secrets_dir)
        for path in (layout.root, posixpath.dirname(accessory_dir), accessory_dir, spec.secrets_dir):
            conn.mkdir(path, mode=0o700)
        for name in spec.secrets:
            conn.put_file(f"{spec.secrets_dir}/{name}", secrets[name].reveal().encode(), 0o600)
        user = check(conn, dc.image_user(spec.image)).strip()
        if user and user.split(":")[0] not in ("root", "0"):
            check(conn, dc.chown_secrets(spec.image, user, spec.secrets_dir))
    for volume, _ in spec.volumes:
        check(conn, acc.volume_create(spec, volume))
    result = conn.run(acc.run(spec, names.network))
    if not result.ok:
        if _state(conn, spec) is None:  # not a lost race with another boot: a real failure
            timer.failed(redactor(result.stderr.strip())[:500])
            raise AccessoryError(f"{conn.host}: accessory {spec.name} did not start: "
                                 f"{redactor(result.stderr.strip())[:500]}")
    timer.done(f"created {spec.container}" + (f", volumes {', '.join(v for v, _ in spec.volumes)}" if spec.volumes else ""))
    return "created"


def _ensure_image(conn, spec: acc.AccessorySpec) -> None:
    if conn.run(dc.image_present(spec.image)).ok:
        return
    pulled = conn.run(dc.pull(spec.image), timeout=900)
    if not pulled.ok:
        config_key = f"accessories.{spec.name}.image"
        raise AccessoryError(
            f"{conn.host}: accessory {spec.name}: the engine has no image {spec.image} and cannot pull it: "
            f"{redactor(pulled.stderr.strip())[:300]}",
            hint=f"check {config_key}, or (where pulls are impossible) set the variable named by "
                 f"{config_key}_env to an image on this engine (e.g. a stand-in from scripts/standin-images.sh)")


def wait_healthy(conn, spec: acc.AccessorySpec, emit: Emit, *, sleep: Callable[[float], None] = time.sleep) -> float:
    """Until the health command exits 0 in the container (or, without one, it runs).
    An accessory that exits, or is not healthy in time, fails with its last log lines."""
    timer = Timer(emit, "accessory health", host=conn.host, service=spec.name,
                  detail=" ".join(spec.health_command) if spec.health_command else "running")
    started = time.monotonic()
    probe = acc.health(spec)
    last = "not started"
    while True:
        state = _state(conn, spec)
        if state is None or state.status in ("exited", "dead"):
            why = "is gone" if state is None else "exited"
            output = _logs(conn, spec)
            timer.failed(f"{spec.container} {why}", output)
            raise AccessoryError(f"{conn.host}: accessory {spec.name} {why} while starting",
                                 hint=f"its last log lines are above; `deployctl accessory logs {spec.name}` shows more")
        if state.status == "running":
            if probe is None:
                break
            result = conn.run(probe, timeout=30)
            if result.ok:
                break
            last = (result.stderr or result.stdout).strip().splitlines()[-1:] or [f"exit {result.rc}"]
            last = redactor(last[0])[:200]
        elapsed = time.monotonic() - started
        if elapsed > spec.health_timeout:
            timer.failed(f"not healthy after {spec.health_timeout:g}s ({last})", _logs(conn, spec))
            raise AccessoryError(f"{conn.host}: accessory {spec.name} not healthy after {spec.health_timeout:g}s",
                                 hint=f"raise accessories.{spec.name}.healthcheck.timeout if it is just slow")
        emit(StepProgress("accessory health", f"waiting ({elapsed:.0f}s): {last}", host=conn.host, service=spec.name))
        sleep(spec.health_interval)
    return timer.done(f"healthy after {time.monotonic() - started:.1f}s")


def _logs(conn, spec: acc.AccessorySpec, lines: int = LOG_LINES) -> tuple[str, ...]:
    result = conn.run(acc.logs(spec, lines))
    return tuple(redactor(result.stdout + result.stderr).splitlines()[-lines:])


def _state(conn, spec: acc.AccessorySpec) -> AccessoryState | None:
    return states(conn, [spec]).get(spec.name)


def states(conn, specs: Sequence[acc.AccessorySpec]) -> dict[str, AccessoryState]:
    """accessory name -> its container's state on this host (absent ones are left out)."""
    if not specs:
        return {}
    by_container = {s.container: s for s in specs}
    result = conn.run(acc.inspect(list(by_container)))  # exit 1 when some are missing
    out = {}
    for line in result.stdout.splitlines():
        parts = line.split("|")
        if len(parts) != 6:
            continue
        name, status, image, health, started, _ = parts
        spec = by_container.get(name.lstrip("/"))
        if spec is not None:
            out[spec.name] = AccessoryState(spec.name, spec.container, conn.host, status, image, spec.image,
                                            health or "-", started, [v for v, _ in spec.volumes])
    return out


def status(conn, specs: Sequence[acc.AccessorySpec]) -> list[AccessoryState]:
    found = states(conn, specs)
    return [found.get(s.name) or AccessoryState(s.name, s.container, conn.host, "missing", None, s.image,
                                                volumes=[v for v, _ in s.volumes]) for s in specs]


def stop(conn, spec: acc.AccessorySpec, emit: Emit) -> bool:
    """Stops it (container and data kept; `boot` starts it again). False: nothing to stop."""
    state = _state(conn, spec)
    if state is None or state.status != "running":
        return False
    timer = Timer(emit, "accessory", host=conn.host, service=spec.name, detail=f"stopping {spec.container}")
    check(conn, acc.stop(spec), timeout=acc.STOP_TIMEOUT + 30)
    timer.done("stopped (kept)")
    return True


def remove(conn, spec: acc.AccessorySpec, emit: Emit, *, volumes: bool) -> None:
    """Removes the container and its secret files; its volumes (the data) only when asked."""
    timer = Timer(emit, "accessory", host=conn.host, service=spec.name, detail=f"removing {spec.container}")
    if _state(conn, spec) is not None:
        check(conn, acc.stop(spec), timeout=acc.STOP_TIMEOUT + 30)
        check(conn, acc.remove(spec))
    conn.remove_tree(spec.secrets_dir)
    if volumes and spec.volumes:
        result = conn.run(acc.volume_remove([v for v, _ in spec.volumes]))
        if not result.ok and "no such volume" not in result.stderr.lower():
            raise AccessoryError(f"{conn.host}: removing the volumes of {spec.name} failed: {result.stderr.strip()}")
    timer.done("removed" + (" with its volumes (data deleted)" if volumes and spec.volumes else "; volumes kept"))


def logs(conn, spec: acc.AccessorySpec, *, lines: int, follow: bool, on_line: Callable[[str], None]) -> None:
    if _state(conn, spec) is None:
        raise UsageError(f"{conn.host}: accessory {spec.name} is not there ({spec.container})",
                         hint=f"`deployctl accessory boot {spec.name}` starts it")
    conn.run(acc.logs(spec, lines, follow), on_line=lambda line: on_line(redactor(line)))
