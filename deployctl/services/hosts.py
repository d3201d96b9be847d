"""Which hosts an environment deploys to, and the connector for each.

`local`: this machine's engine through LocalConnector. `ssh`: one SSHConnector per host
(listed in `hosts`, or found by `discover`), verified against the configured known_hosts.
Connecting happens in preflight, so a bad key or an unreachable host fails before anything
changed anywhere.
"""

from __future__ import annotations

import getpass
import os
import socket
from contextlib import contextmanager
from typing import Iterator

from ..config import LoadedConfig
from ..config.models import Environment, split_host
from ..plan.lifecycle.names import Names, StateLayout

USER_STATE_DIR = "~/.local/state/deployctl"
# When set (non-empty), the private key for every SSH host, in place of ssh.key_file: CI
# binds a key credential to a temporary file and names it here (Jenkins' sshUserPrivateKey
# keyFileVariable), so deploy.toml need not know where the CI agent keeps it.
SSH_KEY_ENV = "DEPLOYCTL_SSH_KEY_FILE"
DEFAULT_STATE_DIR = "/var/lib/deployctl"


def state_dir_for(environment: Environment) -> str:
    """A `local` environment run by a non-root user, with the default state_dir that it cannot
    write, keeps its state under ~/.local/state/deployctl instead (docs/deploy.md)."""
    if environment.target == "local" and environment.state_dir == DEFAULT_STATE_DIR and os.geteuid() != 0:
        if not os.access(DEFAULT_STATE_DIR, os.W_OK):
            return os.path.expanduser(USER_STATE_DIR)
    if environment.target == "local":
        return os.path.expanduser(environment.state_dir)
    return environment.state_dir


def names_for(loaded: LoadedConfig, env_name: str) -> Names:
    return Names(loaded.config.app, env_name)


def layout_for(loaded: LoadedConfig, env_name: str) -> StateLayout:
    return StateLayout(state_dir_for(loaded.environment(env_name)), loaded.config.app, env_name)


def connectors_for(loaded: LoadedConfig, env_name: str) -> list:  # list[Connector]
    environment = loaded.environment(env_name)
    if environment.target == "local":
        from ..adapters.local import LocalConnector

        return [LocalConnector()]
    if environment.target == "swarm":
        return [manager_connector(loaded, env_name)]
    entries = list(environment.hosts)
    from .cloud.discovery import discover_for, discover_hosts

    if discover_for(loaded.config, environment, env_name) is not None:  # running EC2 instances with the tags
        entries = [found.address for found in discover_hosts(loaded.config, environment, env_name)]
    return [ssh_connector(loaded, environment, entry, env_name) for entry in entries]


@contextmanager
def connected(conns: list) -> Iterator[list]:  # list[Connector]
    """Every connector connected, in order (SSH: its host key verified), and every one closed
    afterwards, also when one could not connect: a host that cannot be reached is named before
    the caller does anything on any of them."""
    try:
        for conn in conns:
            conn.connect()
        yield conns
    finally:
        for conn in conns:
            conn.close()


def ssh_connector(loaded: LoadedConfig, environment: Environment, entry: str,  # type: ignore[no-untyped-def]
                  env_name: str | None = None):
    """The SSH connector for `host[:port]` with the environment's `ssh` settings: the key
    (DEPLOYCTL_SSH_KEY_FILE first), the pinned known_hosts, the timeout. One place, so ssh
    hosts, a Swarm manager and its nodes are reached the same way."""
    from ..adapters.ssh import SSHConnector

    ssh = environment.ssh
    host, port = split_host(entry)
    key_file = key_file_for(loaded, environment)
    known = known_hosts_path(loaded, env_name or _name_of(loaded, environment))
    jump = jump_connector(loaded, environment, env_name, key_file=key_file, known_hosts=known)
    return SSHConnector(host, port=port or ssh.port, user=ssh.user, key_file=key_file,
                        known_hosts=known, connect_timeout=ssh.connect_timeout, jump=jump)


def key_file_for(loaded: LoadedConfig, environment: Environment) -> str | None:
    """The private key for the environment's SSH connections: DEPLOYCTL_SSH_KEY_FILE, else
    ssh.key_file (relative to deploy.toml), else None (the agent and ~/.ssh keys)."""
    key_file = environment.ssh.key_file
    if os.environ.get(SSH_KEY_ENV):  # a path from the environment is relative to the working directory
        return os.path.abspath(os.path.expanduser(os.environ[SSH_KEY_ENV]))
    if key_file and not os.path.isabs(os.path.expanduser(key_file)):
        return str(loaded.root / key_file)
    return key_file


def jump_connector(loaded: LoadedConfig, environment: Environment, env_name: str | None,  # type: ignore[no-untyped-def]
                   *, key_file: str | None, known_hosts: str):
    """The connector to the environment's jump host (ssh.proxy_jump), or None: the same key
    and the same known_hosts file as the hosts (so `hosts trust` pins it with them). One per
    host connector: a fleet's hosts do not share one bastion session, so one dropped
    connection never takes the others' down."""
    from ..adapters.ssh import SSHConnector

    jump = jump_host(loaded, environment, env_name)
    if jump is None:
        return None
    return SSHConnector(jump.host, port=jump.port, user=jump.user, key_file=key_file, known_hosts=known_hosts,
                        connect_timeout=environment.ssh.connect_timeout)


_bastions: dict[tuple[str, str], object] = {}  # (app, env) -> the stack's bastion, asked once a run


def jump_host(loaded: LoadedConfig, environment: Environment, env_name: str | None):  # type: ignore[no-untyped-def]
    """The environment's jump host (config.models.JumpHost), or None: ssh.proxy_jump, else
    for hosts an infra stack made, the stack's bastion (found on EC2 by its tags, once a
    run: every host connector of the run shares the answer)."""
    from ..plan.cloud.infra import bastion_jump, uses_stack_bastion

    if not uses_stack_bastion(environment):
        return environment.ssh.jump()
    name = env_name or _name_of(loaded, environment)
    key = (loaded.config.app, name)
    if key not in _bastions:
        from ..adapters.aws import describe_instances
        from ..plan.cloud.aws import instance_filters, region_for
        from ..plan.cloud.infra_template import bastion_tags

        region = region_for(loaded.config, environment)
        instances = describe_instances(region, instance_filters(bastion_tags(*key)))
        _bastions[key] = bastion_jump(instances, environment.ssh.user, name)
    return _bastions[key]


def known_hosts_path(loaded: LoadedConfig, env_name: str) -> str:
    """The one known_hosts file an environment's hosts are verified against: `ssh.known_hosts`
    when deploy.toml sets it (relative to deploy.toml), else deployctl's own file for the
    environment, $XDG_CONFIG_HOME/deployctl/known_hosts/<app>-<env>, which only `deployctl
    hosts trust` writes. Explicit config wins, so teams with their own pinned file keep it."""
    from ..plan.operate.host_keys import KNOWN_HOSTS_DIR

    configured = loaded.environment(env_name).ssh.known_hosts
    if configured is None:
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
        return os.path.join(base, KNOWN_HOSTS_DIR, f"{loaded.config.app}-{env_name}")
    known = os.path.expanduser(configured)
    return known if os.path.isabs(known) else str(loaded.root / known)


def _name_of(loaded: LoadedConfig, environment: Environment) -> str:
    """The name deploy.toml gives this environment (for callers that hold only the model):
    the same object, else an equal one."""
    environments = loaded.config.environments.items()
    for name, candidate in [*((n, c) for n, c in environments if c is environment),
                            *((n, c) for n, c in environments if c == environment)]:
        return name
    raise ValueError("an environment that is not in this deploy.toml")  # a caller's bug


def manager_connector(loaded: LoadedConfig, env_name: str):  # type: ignore[no-untyped-def]
    """A swarm environment's manager: where deployctl runs `docker service ...`, and keeps
    the lock, the history and `current`."""
    environment = loaded.environment(env_name)
    assert environment.manager is not None  # the config refuses a swarm environment without one
    return ssh_connector(loaded, environment, environment.manager, env_name)


def who() -> str:
    """Who is deploying, for the lock and the history: DEPLOYCTL_USER (CI sets the build's
    user) or the login name, and the machine."""
    user = os.environ.get("DEPLOYCTL_USER") or getpass.getuser()
    return f"{user}@{socket.gethostname()}"


def machine() -> str:
    """The machine deployctl runs on, for the lock record (with its pid)."""
    return socket.gethostname()


def process_alive(pid: int) -> bool:
    """Whether a process of this machine still runs (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it runs, as another user
    return True


def proxy_port(loaded: LoadedConfig, env_name: str) -> int:
    environment = loaded.environment(env_name)
    return environment.proxy_port if environment.proxy_port is not None else loaded.config.proxy.port


def tls_port(loaded: LoadedConfig, env_name: str) -> int | None:
    """The host port HTTPS is published on; None while [proxy] tls is off."""
    if loaded.config.tls_for(env_name) == "off":
        return None
    return loaded.environment(env_name).proxy_tls_port


