"""Accessories on a Swarm (plan/swarm/swarm_accessories.py decides the argvs): boot (create when
absent, scale back to one task when stopped, leave when running; then wait until its task
runs and passed its health check), stop (to 0 tasks, kept), status, logs, remove. Run on
the manager; a volume is removed on the node the accessory is pinned to.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from ...adapters.connector import check
from ...errors import UsageError
from ...events import Emit, Message, Timer
from ...plan.data import accessories as acc
from ...plan.swarm import services as sw
from ...plan.swarm import swarm_accessories as sa
from ...plan.lifecycle.env_values import SecretValueError, env_file
from ...secrets import Secret, redactor
from ..data.accessories import AccessoryError, read_files
from ..env import Env
from .swarm_site import SwarmSite

READY_MARGIN = 60.0  # on top of the health timeout: the pinned node pulls the image first


@dataclass
class SwarmAccessoryState:
    accessory: str
    service: str
    wanted: int | None  # None: no such service
    image: str = ""
    tasks: tuple[sw.Task, ...] = ()
    placement: tuple[str, ...] = ()
    configs: tuple[str, ...] | None = None  # the Docker configs its task mounts (its files)

    @property
    def status(self) -> str:
        if self.wanted is None:
            return "missing"
        if self.wanted == 0:
            return "stopped"
        return "running" if any(t.running for t in self.tasks) else "starting"

    @property
    def nodes(self) -> list[str]:
        return sorted({t.node for t in self.tasks if t.running})


def placement(env: Env, accessory: str) -> tuple[str, ...]:
    return tuple(env.config.accessories[accessory].placement)


def state(site: SwarmSite, spec: acc.AccessorySpec, pinned: tuple[str, ...] = ()) -> SwarmAccessoryState:
    found = site.manager.run(sa.inspect(spec))
    if not found.ok:
        return SwarmAccessoryState(spec.name, spec.container, None, placement=pinned)
    wanted, _, rest = found.stdout.strip().partition("\t")
    image, _, configs = rest.partition("\t")
    tasks = sw.parse_tasks(site.manager.run(sw.running_tasks(spec.container)).stdout)
    return SwarmAccessoryState(spec.name, spec.container, int(wanted) if wanted.isdigit() else 0, image.strip(),
                               tuple(tasks), pinned, tuple(configs.split()))


def boot(env: Env, site: SwarmSite, spec: acc.AccessorySpec, secrets: Mapping[str, Secret],
         emit: Emit, *, registry_auth: bool | str = False) -> str:
    """created | started | running, once its task runs (and passed its health check)."""
    contents = read_files(env.loaded, [spec])  # a missing file: exit 3 before the manager is touched
    pinned = placement(env, spec.name)
    found = state(site, spec, pinned)
    host = site.manager.host
    if found.wanted is None:
        timer = Timer(emit, "accessory", host=host, service=spec.name,
                      detail=f"creating {spec.container}" + (f" ({', '.join(pinned)})" if pinned else ""))
        site.ensure_network()
        _secrets(site, spec, secrets)
        configs = _configs(site, spec, contents)
        check(site.manager, sa.create(spec, site.names, pinned, registry_auth, configs), timeout=120)
        timer.done()
        did = "created"
    elif found.wanted == 0:
        timer = Timer(emit, "accessory", host=host, service=spec.name, detail=f"starting {spec.container}")
        check(site.manager, sa.scale(spec, 1))
        timer.done()
        did = "started"
    else:
        if spec.image and found.image and found.image.split("@")[0] != spec.image.split("@")[0] \
                and found.image != spec.image:
            emit(Message(f"accessory {spec.name} runs {found.image}, deploy.toml asks for {spec.image}: an accessory "
                         f"is never recreated by a deploy (`deployctl accessory remove {spec.name}` first)",
                         level="warning", host=host))
        did = "running"
        configs = sa.config_names(site.names, spec, contents)
        if configs and found.configs is not None and set(configs.values()) != set(found.configs):
            emit(Message(f"accessory {spec.name}: its files changed since it was created; an accessory is never "
                         f"recreated by a deploy, so the running one keeps the old ones (`deployctl accessory "
                         f"remove {spec.name}` and `boot` it to use them)", level="warning", host=host))
    site.wait_ready({spec.container: 1}, spec.health_timeout + READY_MARGIN, what="accessory health")
    return did


def _secrets(site: SwarmSite, spec: acc.AccessorySpec, secrets: Mapping[str, Secret]) -> None:
    """Docker secrets (from stdin) for its files; its env values using a secret in a 0600
    env file on the manager, which the docker CLI reads at `service create`."""
    existing = set(site.manager.run(sw.list_secrets(site.names)).stdout.split())
    for name in spec.secrets:
        docker_name = sa.secret_name(site.names, spec.name, name)
        if docker_name not in existing:
            check(site.manager, sw.create_secret(docker_name, spec.labels), stdin=secrets[name].reveal().encode())
    if spec.env_templates:
        try:
            body = env_file(spec.env_templates, dict(secrets))
        except SecretValueError as exc:
            raise AccessoryError(f"accessories.{spec.name}.env.{exc}") from None
        site.manager.mkdir(spec.env_file.rsplit("/", 1)[0], mode=0o700)
        site.manager.put_file(spec.env_file, body, 0o600)


def _configs(site: SwarmSite, spec: acc.AccessorySpec, contents: Mapping[str, bytes]) -> dict[str, str]:
    """Docker configs for its `files` (from stdin, named by content; an existing one is
    reused); path in the container -> config."""
    configs = sa.config_names(site.names, spec, contents)
    if not configs:
        return {}
    existing = set(site.manager.run(sw.list_configs(spec.labels)).stdout.split())
    for mount in spec.files:
        name = configs[mount.inside]
        if name not in existing:
            check(site.manager, sw.create_config(name, spec.labels), stdin=contents[mount.host])
    return configs


def stop(site: SwarmSite, spec: acc.AccessorySpec, emit: Emit) -> bool:
    found = state(site, spec)
    if not found.wanted:
        return False
    timer = Timer(emit, "accessory", host=site.manager.host, service=spec.name, detail=f"scaling {spec.container} to 0")
    check(site.manager, sa.scale(spec, 0), timeout=acc.STOP_TIMEOUT + 30)
    timer.done("stopped (kept)")
    return True


def remove(site: SwarmSite, spec: acc.AccessorySpec, emit: Emit, *, volumes: bool) -> None:
    """The service, its Docker secrets and env file; its volumes (on the node its task ran
    on) only when asked."""
    timer = Timer(emit, "accessory", host=site.manager.host, service=spec.name, detail=f"removing {spec.container}")
    nodes = _nodes_of(site, spec) if volumes and spec.volumes else []
    site.manager.run(sa.remove(spec))
    names = [sa.secret_name(site.names, spec.name, s) for s in spec.secrets]
    if names:
        site.remove_secrets(names)
    configs = site.manager.run(sw.list_configs(spec.labels)).stdout.split()
    if configs:  # every config of its files, this content or an earlier one
        site.manager.run(sw.remove_configs(configs))
    site.manager.remove_tree(spec.env_file.rsplit("/", 1)[0])
    if volumes and spec.volumes:
        by_host = {n.hostname: n.address for n in site.ready_nodes()}
        for node in nodes:
            if node not in by_host:
                raise AccessoryError(f"{site.manager.host}: the volumes of {spec.name} are on node {node}, which is "
                                     "not ready: remove them there", hint="`docker volume rm` on that node")
            conn = site.node(by_host[node])
            # A volume stays in use until the task's container is gone; ask again for a while.
            deadline = time.monotonic() + 60
            while True:
                result = conn.run(acc.volume_remove([v for v, _ in spec.volumes]))
                if result.ok or "no such volume" in result.stderr.lower():
                    break
                if time.monotonic() > deadline:
                    raise AccessoryError(f"{node}: removing the volumes of {spec.name} failed: "
                                         f"{result.stderr.strip()}")
                time.sleep(1)
    timer.done("removed" + (" with its volumes (data deleted)" if volumes and spec.volumes else "; volumes kept"))


def _nodes_of(site: SwarmSite, spec: acc.AccessorySpec) -> list[str]:
    """Every node a task of it ran on (its volumes were created there)."""
    out = site.manager.run(sw.service_tasks([spec.container]))
    return sorted({t.node for t in sw.parse_tasks(out.stdout) if t.node})


def logs(site: SwarmSite, spec: acc.AccessorySpec, *, lines: int, follow: bool,
         on_line: Callable[[str], None]) -> None:
    if state(site, spec).wanted is None:
        raise UsageError(f"{site.manager.host}: accessory {spec.name} is not there ({spec.container})",
                         hint=f"`deployctl accessory boot {spec.name}` starts it")
    site.manager.run(sa.logs(spec, lines, follow), on_line=lambda line: on_line(redactor(line)))


def statuses(site: SwarmSite, env: Env, specs: Sequence[acc.AccessorySpec]) -> list[SwarmAccessoryState]:
    return [state(site, spec, placement(env, spec.name)) for spec in specs]
