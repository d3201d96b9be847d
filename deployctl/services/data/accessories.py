"""Accessories on a host (plan/data/accessories.py decides names and argv): boot when absent,
start when stopped, wait until healthy; stop, remove, status, logs.

A deploy calls `ensure_accessories` before it touches the release: an existing accessory
is never recreated (its data, and the credentials it was initialised with, live in its
volume), only started again when stopped. Changing an accessory's image or env therefore
means `deployctl accessory remove NAME` and a new boot, on purpose; a deploy says so (a
warning) when the running one differs: another image (a rebuilt one, for `build`), a
changed `files` entry (uploaded, used from its next start), or no network alias yet (an
accessory booted before accessories got one).
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ...adapters.connector import check
from ...config import LoadedConfig
from ...errors import ConfigError, DeployError, UsageError
from ...events import Emit, Message, StepProgress, Timer
from ...plan.data import accessories as acc
from ...plan.lifecycle import docker_commands as dc
from ...plan.lifecycle.container_states import crash
from ...plan.lifecycle.env_values import SecretValueError, env_file
from ...secrets import Secret, redactor
from ..env import Env
from ..lifecycle.preflight import registry_config
from ..lifecycle.secret_owner import hand_to_image_user
from ..lifecycle.switch import HostSwitch

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
    aliases: list[str] | None = None  # its aliases on the app network (None: not on it / missing)
    exit_code: int = 0  # the last exit's (0 while it runs)
    restarts: int = 0  # by its restart policy, since it was last started

    @property
    def drift(self) -> bool:
        return self.image is not None and bool(self.configured_image) and self.image != self.configured_image


def select(env: Env, name: str) -> list[str]:
    """`all`: the environment's accessories; else one defined accessory."""
    config, environment, env_name = env.config, env.settings, env.name
    if name == "all":
        if not environment.accessories:
            raise UsageError(f"environment {env_name!r} lists no accessories",
                             hint=f"add accessories = [...] to [environments.{env_name}]")
        return list(environment.accessories)
    if name not in config.accessories:
        from ...config.problems import suggest

        defined = ", ".join(config.accessories) or "none"
        raise UsageError(f"no accessory {name!r} in deploy.toml (defined: {defined}){suggest(name, config.accessories)}")
    return [name]


def specs_for(env: Env, names: Sequence[str], environ: Mapping[str, str] | None = None) -> list[acc.AccessorySpec]:
    return [acc.accessory_spec(env.config, env.name, name, env.layout, environ) for name in names]


def with_built_images(env: Env, artifacts_path: Path, names: Sequence[str]) -> Env:
    """For `accessory boot|status`: `env` with the built accessories among `names` given their
    image from the artifacts file when there is one (booting one without fails, saying to
    build). A new Env, which the caller passes on (services/env.py says why)."""
    from ...artifacts import read_artifacts
    from ..lifecycle.release_images import accessory_images

    if not any(env.config.accessories[n].build for n in names) or not artifacts_path.exists():
        return env
    artifacts = read_artifacts(artifacts_path, app=env.config.app)
    return env.with_accessory_images(accessory_images(env, artifacts))


def read_files(loaded: LoadedConfig, specs: Sequence[acc.AccessorySpec]) -> dict[str, bytes]:
    """Host path -> content of every `files` entry, read from the project (relative to
    deploy.toml's folder). Called before any host is touched: one ConfigError (exit 3)
    names every missing file by its key."""
    contents, problems = {}, []
    root = loaded.root.resolve()
    for spec in specs:
        for mount in spec.files:
            path = loaded.root / mount.local
            # deploy.toml refuses '..' and absolute paths; a symlink in the project can still
            # point anywhere (~/.ssh/id_ed25519), so the resolved file must be in the project.
            resolved = path.resolve()
            if not resolved.is_relative_to(root):
                problems.append(f"{mount.key}: {mount.local}: resolves to {resolved}, outside the project ({root}); "
                                "files are uploaded to the hosts, so only the project's own files may be")
                continue
            try:
                contents[mount.host] = resolved.read_bytes()
            except FileNotFoundError:
                problems.append(f"{mount.key}: {mount.local}: no such file")
            except IsADirectoryError:
                problems.append(f"{mount.key}: {mount.local}: is a directory (give a file)")
            except OSError as exc:
                problems.append(f"{mount.key}: {mount.local}: cannot read: {exc.strerror}")
    if problems:
        raise ConfigError(problems, hint=f"paths in files are relative to {loaded.path.name}'s folder ({loaded.root})")
    return contents


def ensure_accessories(env: Env, conn, secrets: Mapping[str, Secret], emit: Emit,
                       environ: Mapping[str, str] | None = None) -> None:
    """Before a deploy: every accessory the environment lists is up and healthy. A built
    accessory's image comes from `env` (Env.with_accessory_images)."""
    for spec in specs_for(env, env.settings.accessories, environ):
        boot(env, conn, spec, secrets, emit)


def boot(env: Env, conn, spec: acc.AccessorySpec, secrets: Mapping[str, Secret], emit: Emit) -> str:
    """Creates the accessory when absent, starts it when stopped, leaves it when running;
    then waits for its health check. Returns what it did: created | started | running."""
    files = read_files(env.loaded, [spec])
    state = _state(conn, spec)
    if state is None:
        did = _create(env, conn, spec, secrets, files, emit)
    else:
        _upload_files(env, conn, spec, files, emit, running=state.status == "running")
        _warn_drift(conn, spec, state, emit)
        if state.status == "running":
            did = "running"
        else:
            timer = Timer(emit, "accessory", host=conn.host, service=spec.name, detail=f"starting {spec.container}")
            check(conn, acc.start(spec))
            timer.done("started")
            did = "started"
    wait_healthy(conn, spec, emit)
    return did


def _warn_drift(conn, spec: acc.AccessorySpec, state: AccessoryState, emit: Emit) -> None:
    """An existing accessory is kept as it is; say what differs from deploy.toml, and how
    to change it on purpose. Never recreated here: its data and credentials live in it."""
    change = (f"`deployctl accessory remove {spec.name}` and then a deploy (or `accessory boot`) boots it anew; "
              "its data stays in its volumes")
    if spec.image and state.image != spec.image:
        if spec.build:
            what = (f"accessory {spec.name} runs {state.image}, not the image built now ({spec.image}): a rebuilt "
                    "accessory image is used only when the accessory is next booted")
        else:
            what = f"accessory {spec.name} runs {state.image}, deploy.toml asks for {spec.image}; it is kept as it is"
        emit(Message(f"{what}; {change}", level="warning", host=conn.host))
    if state.aliases is not None and spec.alias not in state.aliases:
        # Docker (20.10) cannot add an alias to a container already on a network
        # ("endpoint ... already exists"), and a disconnect/connect would cut its clients off.
        emit(Message(f"accessory {spec.name} was booted without its network alias: the app reaches it as "
                     f"{spec.container} ({{{{ {spec.name}.host }}}}) but not yet as {spec.name!r}; the alias "
                     f"arrives when it is next booted: {change}", level="warning", host=conn.host))


def write_secrets(conn, spec: acc.AccessorySpec, secrets: Mapping[str, Secret]) -> None:  # type: ignore[no-untyped-def]
    """Each secret a file (acc.SECRET_FILE_MODE: why there) in a 0700 folder, handed to the
    image's user when the image names one."""
    conn.mkdir(spec.secrets_dir, mode=0o700)
    for name in spec.secrets:
        conn.put_file(f"{spec.secrets_dir}/{name}", secrets[name].reveal().encode(), acc.SECRET_FILE_MODE)
    hand_to_image_user(conn, spec.image, spec.secrets_dir)


def _prepare_dir(conn, layout, spec: acc.AccessorySpec) -> None:
    """The accessory's state dir and its parents, as HostState makes the state root (0700):
    on a first deploy the accessory comes before anything else, and parents made on the way
    would get the default mode."""
    accessory_dir = posixpath.dirname(spec.secrets_dir)
    for path in (layout.root, posixpath.dirname(accessory_dir), accessory_dir):
        conn.mkdir(path, mode=0o700)


def _upload_files(env: Env, conn, spec: acc.AccessorySpec, files: Mapping[str, bytes], emit: Emit, *,
                  running: bool) -> None:
    """Each `files` entry onto the host (mode 0644: configuration, readable by the
    container's own user), only when it differs from what is there. A running container
    keeps the file it was started with (a bind mount holds the old one), so say so."""
    changed = [m for m in spec.files if conn.read_file(m.host) != files[m.host]]
    if not changed:
        return
    _prepare_dir(conn, env.layout, spec)
    for mount in changed:
        existed = conn.read_file(mount.host) is not None
        conn.put_file(mount.host, files[mount.host], acc.FILE_MODE)
        if running and existed:
            emit(Message(f"accessory {spec.name}: {mount.key} ({mount.local}) changed; the new file is uploaded, but "
                         f"the running accessory keeps the old one at {mount.inside} until it is restarted "
                         f"(`deployctl accessory stop {spec.name}` then `deployctl accessory boot {spec.name}`) "
                         "or booted anew", level="warning", host=conn.host))


def _create(env: Env, conn, spec: acc.AccessorySpec, secrets: Mapping[str, Secret], files: Mapping[str, bytes],
            emit: Emit) -> str:
    missing = [name for name in spec.secret_names() if name not in secrets]
    if missing:  # a bug in the caller: secrets are fetched (and checked) before any host is touched
        raise ValueError(f"accessory {spec.name}: secrets not fetched: {', '.join(missing)}")
    if not spec.image:
        raise ConfigError([f"accessory {spec.name} is built from the project (accessories.{spec.name}.build = "
                           f"{spec.build!r}), but the artifacts file has no image of it to boot"],
                          hint="run `deployctl build` (and `deployctl push` for an ssh environment), then again")
    env_body = b""
    if spec.env_templates:
        try:
            env_body = env_file(spec.env_templates, secrets)
        except SecretValueError as exc:
            raise ConfigError([f"accessories.{spec.name}.env.{exc}"]) from None
    timer = Timer(emit, "accessory", host=conn.host, service=spec.name, detail=f"booting {spec.container} ({spec.image})")
    _ensure_image(conn, spec)
    names, layout = env.names, env.layout
    HostSwitch(conn, names, layout, emit).ensure_network(subnet_pool=env.settings.release_subnet_pool)
    if spec.secrets or spec.env_templates or spec.files:
        _prepare_dir(conn, layout, spec)
    if spec.secrets:
        write_secrets(conn, spec, secrets)
    if spec.env_templates:  # read by the docker CLI on the host; the values never reach an argv
        conn.put_file(spec.env_file, env_body, 0o600)
    _upload_files(env, conn, spec, files, emit, running=False)
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
    pulled = conn.run(dc.pull(spec.image, registry_config(conn)), timeout=900)
    if not pulled.ok and spec.build:
        raise AccessoryError(
            f"{conn.host}: accessory {spec.name}: the engine has no image {spec.image} and cannot pull it: "
            f"{redactor(pulled.stderr.strip())[:300]}",
            hint="`deployctl push` sends built images to the registry the hosts pull from")
    if not pulled.ok:
        config_key = f"accessories.{spec.name}.image"
        raise AccessoryError(
            f"{conn.host}: accessory {spec.name}: the engine has no image {spec.image} and cannot pull it: "
            f"{redactor(pulled.stderr.strip())[:300]}",
            hint=f"check {config_key}, or (where pulls are impossible) set the variable named by "
                 f"{config_key}_env to an image on this engine (e.g. a stand-in from scripts/standin-images.sh)")


def wait_healthy(conn, spec: acc.AccessorySpec, emit: Emit, *, sleep: Callable[[float], None] = time.sleep) -> float:
    """Until the health command exits 0 in the container (or, without one, it runs).
    An accessory that crashes (exits, or its restart policy restarts it: plan/lifecycle/container_states.crash)
    fails at once with its exit code and last log lines; one not healthy in time, at its timeout."""
    timer = Timer(emit, "accessory health", host=conn.host, service=spec.name,
                  detail=" ".join(spec.health_command) if spec.health_command else "running")
    started = time.monotonic()
    probe = acc.health(spec)
    last = "not started"
    restarts: int | None = None  # its restart count when first seen
    while True:
        state = _state(conn, spec)
        if state is not None and restarts is None:
            restarts = state.restarts
        why = "is gone" if state is None else crash(state, restarts)
        if why is not None:
            output = _logs(conn, spec)
            timer.failed(f"{spec.container}: {why}", output)
            lines = [line for line in output if line.strip()]
            what = "is gone while starting" if state is None else f"crashed while starting: {why}"
            raise AccessoryError(f"{conn.host}: accessory {spec.name} {what}"
                                 + (f"; its last log line: {lines[-1].strip()[:300]}" if lines else ""),
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
        parts = line.split("|", 8)
        if len(parts) != 9:
            continue
        name, status, image, health, started, _, exit_code, restarts, networks = parts
        spec = by_container.get(name.lstrip("/"))
        if spec is not None:
            aliases = acc.parse_aliases(networks).get(spec.network)
            out[spec.name] = AccessoryState(spec.name, spec.container, conn.host, status, image, spec.image,
                                            health or "-", started, [v for v, _ in spec.volumes], aliases,
                                            int(exit_code) if exit_code.lstrip("-").isdigit() else 0,
                                            int(restarts) if restarts.isdigit() else 0)
    return out


def require_running(conn, spec: acc.AccessorySpec) -> AccessoryState:  # type: ignore[no-untyped-def]
    """Its state, when its container runs on this host; else a UsageError (exit 2) saying
    how to start it (`accessory backup`, `accessory exec`)."""
    state = _state(conn, spec)
    if state is None or state.status != "running":
        raise UsageError(f"{conn.host}: accessory {spec.name} is not running ({spec.container}: "
                         f"{state.status if state else 'missing'})",
                         hint=f"`deployctl accessory boot {spec.name}` starts it")
    return state


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
    """Removes the container and its files on the host (secrets, env file, uploaded files);
    its volumes (the data) only when asked."""
    timer = Timer(emit, "accessory", host=conn.host, service=spec.name, detail=f"removing {spec.container}")
    if _state(conn, spec) is not None:
        check(conn, acc.stop(spec), timeout=acc.STOP_TIMEOUT + 30)
        check(conn, acc.remove(spec))
    conn.remove_tree(posixpath.dirname(spec.secrets_dir))  # <state root>/accessories/NAME
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
