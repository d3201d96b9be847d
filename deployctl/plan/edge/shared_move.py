"""An app that runs with its own proxy on the port its shared proxy needs moves to the shared
proxy on its next deploy (docs/proxy.md, "Moving an app to the shared proxy"), as data.

Two containers cannot publish one host port, and Docker's proxy holds it while the app's own
anchor runs: the move has a gap, the time between the old listener closing and the shared
proxy's nginx binding the port. It is made as short as one host command can make it, with
everything else done before it, beside the serving proxy:
  set aside   the old anchor and its nginx renamed (`<anchor>-premove...`; they keep serving
              the port: a rename touches no process) and out of their restart policy, so
              the switch starts the app's own proxy anew on its new `proxy_port`
  switch      the usual switch, on that new proxy (nobody else reaches its port yet): the
              new release verified through it by its stamp
  prepare     the shared proxy's files (its main configuration and this app's route),
              tested by `nginx -t` in a one-off container, and its container *created*, not
              started (a create binds nothing)
  cut         one command: the old nginx quits gracefully (what it holds finishes), the old
              anchor stops (Docker's proxy lets the port go), the shared proxy starts
  verify      through the shared proxy, by the app's host name, the new release's stamp
The old containers are stopped, not removed, by the cut: putting them back is a start.
Kamal's `kamal upgrade` has the same gap and hides it host by host behind a load balancer
(`--rolling`); a fleet's move goes one host at a time for the same reason.
"""

from __future__ import annotations

import shlex

from ..lifecycle import docker_commands as dc
from . import shared_proxy as sp

PREMOVE = "-premove"
# The old nginx finishes what it holds within this; what it still holds then (a WebSocket, a
# long download) is closed by the stop, and its client reconnects through the shared proxy.
# Its listener is closed from the QUIT on, so this bounds how much longer the gap can get.
QUIT_WAIT = 2


def premove_name(anchor: str, name: str) -> str:
    """The name a container of the old proxy (its anchor, or an nginx `<anchor>-nginx-...`)
    is set aside under: `<anchor>-premove...`, which the proxy's listing skips."""
    assert name.startswith(anchor)
    return anchor + PREMOVE + name[len(anchor):]


def is_set_aside(anchor: str, name: str) -> bool:
    return name.startswith(anchor + PREMOVE)


def original_name(anchor: str, aside: str) -> str:
    return anchor + aside[len(anchor + PREMOVE):]


def set_aside_listing(text: str, anchor: str) -> dict[str, str]:
    """name -> state of the set-aside containers in `docker_commands.list_proxy`'s listing
    (a move a killed deployctl left)."""
    found = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) == 5 and is_set_aside(anchor, parts[0]):
            found[parts[0]] = parts[1]
    return found


def rename(old: str, new: str) -> list[str]:
    return ["docker", "rename", old, new]


def restart_policy(containers: list[str], policy: str) -> list[str]:
    return ["docker", "update", "--restart", policy, *containers]


def create_shared_proxy(name: str, image: str, host_dir: str) -> list[str]:
    """The shared proxy as services/edge/shared_proxy.py runs it, created only: on the host's
    network it publishes nothing through Docker, and nginx binds the port when it starts."""
    run = sp.run_shared_proxy(name, image, host_dir)
    assert run[:3] == ["docker", "run", "--detach"]
    return ["docker", "create", *run[3:]]


def test_shared_config(image: str, host_dir: str) -> list[str]:
    """`nginx -t` of the shared proxy's configuration before the cut, in a one-off container of
    its image (a created one cannot exec): on no network, so its `listen` binds nothing of the host's."""
    return ["docker", "run", "--rm", "--network", "none", "-v", f"{host_dir}:{sp.MOUNT}:ro", "--entrypoint", "nginx",
            image, "-t", "-q", "-c", f"{sp.MOUNT}/{sp.CONFIG_FILE}"]


def cut(nginx: list[str], anchor: str, shared: str) -> list[str]:
    """The one host command of the move (`nginx`, `anchor`: the set-aside names). The gap is
    from the QUIT (nginx closes its listener) to the shared proxy's nginx binding the port.
    `;` up to the stop: a quit that finds nginx gone, or a wait that times out, still lets
    the port go; `&&` before the start: the shared proxy starts only once it is free."""
    quit_and_wait = [part for name in nginx for part in (shlex.join(dc.nginx_quit(name)),
                                                          shlex.join(["timeout", str(QUIT_WAIT), *dc.wait(name)]))]
    stop = shlex.join(["docker", "stop", "--time", "0", *nginx, anchor])
    return ["sh", "-c", " ; ".join([*quit_and_wait, stop]) + " && " + shlex.join(dc.start([shared]))]


def put_back(nginx: list[str], anchor: str) -> list[list[str]]:
    """The old proxy serving again after a failed cut (renamed back first: `nginx` and
    `anchor` are the original names): the anchor, then nginx in its namespace."""
    return [dc.start([anchor]), dc.start(nginx), restart_policy([anchor, *nginx], "unless-stopped")]
