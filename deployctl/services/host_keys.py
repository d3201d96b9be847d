"""`deployctl hosts trust`: scan each host's SSH key, check it (against fingerprints given on
the command line, or against the keys the EC2 instance published on its console), and write
the environment's own known_hosts file (services/hosts.py: known_hosts_path), which every
later connection to those hosts is verified against.

All or nothing: a host that cannot be scanned, or whose key fails a check, leaves the file
as it was.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace

from ..config.models import split_host
from ..errors import ConfigError, ConnectError
from ..plan.operate.host_keys import HostKey, console_keys, known_hosts_name, known_hosts_text, merged_known_hosts, not_on_console, unpinned
from .env import Env


@dataclass(frozen=True)
class Target:
    entry: str  # as deploy.toml or discovery names it: host or host:port
    host: str
    port: int
    instance_id: str | None  # the EC2 instance, for hosts found by discover or infra
    behind_jump: bool = False  # reached through the environment's ssh.proxy_jump


@dataclass(frozen=True)
class Scanned:
    target: Target
    key: HostKey
    previous: str | None  # the fingerprint the file held for this host before, if any

    @property
    def status(self) -> str:
        if self.previous is None:
            return "new"
        return "unchanged" if self.previous == self.key.fingerprint else "CHANGED"


def targets(env: Env) -> tuple[list[Target], str | None]:
    """The hosts deployctl would connect to: ssh hosts (listed, or found on EC2 now), or a
    Swarm's manager and, once the manager's key is pinned, its nodes. With a note when the
    nodes could not be listed (the manager is not pinned yet, or cannot be reached)."""
    from . import hosts as hosts_service

    environment = env.settings
    if environment.target not in ("ssh", "swarm"):
        raise ConfigError([f"environment {env.name!r} has target {environment.target!r}: no SSH hosts to trust"])
    jump = hosts_service.jump_host(env.loaded, environment, env.name)
    if jump is not None:
        # Hosts behind a jump host are scanned through it, and only through a connection
        # verified against a key pinned before: an unverified bastion could hand back any
        # key for them. So the first `hosts trust` pins the jump host, the next its hosts.
        first = Target(jump.where, jump.host, jump.port, jump.instance_id)
        if known_hosts_name(jump.host, jump.port) not in read_known(env.known_hosts):
            return [first], "the jump host is not pinned yet: run `hosts trust` again after this to add the hosts behind it"
        found, note = _targets(env)
        return [first, *(replace(t, behind_jump=True) for t in found)], note
    return _targets(env)


def _targets(env: Env) -> tuple[list[Target], str | None]:
    from .cloud.discovery import discover_for, discover_hosts

    environment, env_name, config = env.settings, env.name, env.config
    port = environment.ssh.port
    if environment.target == "swarm":
        host, own = split_host(environment.manager)
        manager = Target(environment.manager, host, own or port, None)
        nodes, note = swarm_nodes(env, manager)
        return [manager, *nodes], note
    if discover_for(config, environment, env_name) is not None:
        found = [(h.address, h.instance.id) for h in discover_hosts(config, environment, env_name)]
    else:
        found = [(entry, None) for entry in environment.hosts]
    out = []
    for entry, instance_id in found:
        host, own = split_host(entry)
        out.append(Target(entry, host, own or port, instance_id))
    return out, None


def swarm_nodes(env: Env, manager: Target) -> tuple[list[Target], str | None]:
    """The Swarm's other nodes, as deploys reach them (`docker node ls` on the manager, the
    environment's ssh port). Asked only through a connection verified against the pinned
    file: an unverified manager could name any address as a node. So the first `hosts trust`
    of a Swarm pins the manager, and the next one (the manager now pinned) adds the nodes."""
    from ..adapters.connector import check
    from ..plan.swarm import services as sw
    from . import hosts

    if known_hosts_name(manager.host, manager.port) not in read_known(env.known_hosts):
        return [], "the manager is not pinned yet: run `hosts trust` again after this to add the Swarm's nodes"
    try:
        conn = hosts.manager_connector(env.loaded, env.name)
        conn.connect()
    except ConnectError as exc:
        return [], f"the Swarm's nodes were not listed: {exc.message}"
    try:
        nodes = sw.parse_nodes(check(conn, sw.inspect_listed_nodes()))  # listed and inspected in one call
    finally:
        conn.close()
    port = env.settings.ssh.port
    return [Target(node.address, node.address, port, None) for node in nodes
            if node.address and node.address != manager.host], None


def read_known(path: str) -> dict[str, str]:
    """known_hosts name -> fingerprint of the key the file holds now (empty: no file)."""
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except FileNotFoundError:
        return {}
    out = {}
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#"):
            try:
                out[parts[0]] = HostKey(parts[1], parts[2]).fingerprint
            except ValueError:
                continue  # a line we did not write; the new file replaces it anyway
    return out


def scan(env: Env, found: list[Target]) -> list[Scanned]:
    from ..adapters.ssh import scan_host_key

    known = read_known(env.known_hosts)
    timeout = env.settings.ssh.connect_timeout
    jump = _jump_for_scans(env) if any(t.behind_jump for t in found) else None
    out = []
    try:
        for target in found:
            key = HostKey(*scan_host_key(target.host, target.port, timeout, via=jump if target.behind_jump else None))
            out.append(Scanned(target, key, known.get(known_hosts_name(target.host, target.port))))
    finally:
        if jump is not None:
            jump.close()
    return out


def _jump_for_scans(env: Env):  # type: ignore[no-untyped-def]
    """A connection to the jump host, verified against its pinned key (so keys scanned
    through it come from where it says)."""
    from .hosts import jump_connector, key_file_for

    conn = jump_connector(env.loaded, env.settings, env.name, key_file=key_file_for(env.loaded, env.settings),
                          known_hosts=env.known_hosts)
    try:
        return conn.connect()
    except ConnectError as exc:
        raise ConnectError(f"jump host {exc.message}; nothing was written", hint=exc.hint) from None


def check_pins(scanned: list[Scanned], pins: list[str]) -> None:
    refused = unpinned({s.target.entry: s.key for s in scanned}, pins)
    if refused:
        raise ConnectError(f"refused: {len(refused)} host key(s) match no --fingerprint given: " + "; ".join(refused)
                           + "; nothing was written",
                           hint="compare with the host's `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` out of band")


def check_console(env: Env, scanned: list[Scanned]) -> None:
    """Each scanned key must be one the instance printed on its console at first boot
    (cloud-init's SSH HOST KEY KEYS block), read through EC2 with the caller's AWS identity."""
    from ..adapters.aws import console_output
    from ..plan.cloud.aws import region_for

    environment = env.settings
    missing = [s.target.entry for s in scanned if s.target.instance_id is None]
    if missing:
        raise ConfigError([f"--from-console needs hosts found on EC2 (environments.{env.name}.discover or "
                           f"infra); {', '.join(missing)} come from deploy.toml"],
                          hint="pin them with --fingerprint SHA256:... instead")
    region = region_for(env.config, environment, environment.discover.region if environment.discover else None)
    published = {s.target.entry: console_keys(console_output(region, s.target.instance_id)) for s in scanned}
    refused = not_on_console({s.target.entry: s.key for s in scanned}, published)
    if refused:
        raise ConnectError("refused: " + "; ".join(refused) + "; nothing was written",
                           hint="a host that was just launched may not have printed its keys yet: retry in a "
                                "minute; a key that differs from its console's is not the instance's")


def write(path: str, scanned: list[Scanned], *, owned: bool) -> None:
    """Atomically, mode 0600 (a new directory 0700): only the user may change which keys are
    trusted. deployctl's own file (`owned`) is replaced whole: it holds exactly the
    environment's hosts. A file deploy.toml names is someone else's (perhaps the user's own
    ~/.ssh/known_hosts): only these hosts' lines are replaced, every other line is kept."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    keys = {(s.target.host, s.target.port): s.key for s in scanned}
    if owned:
        text = known_hosts_text(keys)
    else:
        try:
            existing = open(path, encoding="utf-8").read()
        except FileNotFoundError:
            existing = ""
        text = merged_known_hosts(existing, keys)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".known_hosts.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp creates it 0600
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
