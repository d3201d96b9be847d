"""`deployctl exec`: the argv lists it runs and the history record it leaves (pure, no I/O).

`--live` is `docker exec` in the live release's container of a service. `--new` is a
one-off container of the live release's image, made as the release's own containers are
(plan/lifecycle/containers.py: the same plain env on the argv, the same `--env-file` for variables
that use a secret, the same read-only secret mounts, privileges and limits, on the
release's network and the app's network) and removed afterwards. It carries no network
alias: the service's name on the release network keeps resolving to the live container
only, so the release's other services never send it a request.
On a Swarm, `--live` runs `docker exec` on the node that runs one of the service's tasks.
`deployctl accessory exec` is `live_exec` in the accessory's container (or its Swarm task's),
its line `accessory_exec_record`.
"""

from __future__ import annotations

import re
import time
from typing import Sequence

from ...config.credentials import credential_shape
from ...secrets import MASK
from ..lifecycle.containers import ContainerSpec
from ..lifecycle.docker_commands import _env, _env_file, _hardening, _labels, _secret_mounts, status_and_role
from ..lifecycle.names import Names
from ..lifecycle.releases import EXEC, ReleaseRecord

EXITED = "exited"  # an exec record's outcome: the command ran; extra.exit_code says how it ended
NOT_FINISHED = "unknown"  # the command started, then the connection (or deployctl) went
SWARM_TASK_LABEL = "com.docker.swarm.task.id"
# An `accessory exec` line's release on a host where nothing was deployed yet: every history
# line needs a release id (older deployctls skip a line without one, and say so). This one
# sorts before every real id, names no release, and no reader counts an `exec` line.
NOTHING_LIVE = "00000000-000000-0000000"
TTY = ["-i", "-t"]

# An argument's name that says its value is a secret: `--password=x`, `TOKEN=x`, `--api-key x`.
SECRET_NAME = re.compile(r"(pass(word|wd|phrase)?|secret|token|api[-_]?key|private[-_]?key|credential|auth)",
                         re.IGNORECASE)


def live_exec(container: str, command: Sequence[str], *, interactive: bool = False) -> list[str]:
    """In the running container; `-i -t` gives it stdin and a terminal (deployctl's own pty
    or SSH pty is that terminal)."""
    return ["docker", "exec", *(TTY if interactive else []), container, *command]


def container_state(container: str) -> list[str]:
    """`state|role` (exit 1 when the container does not exist): the same argv status uses."""
    return status_and_role(container)


def one_off_name(names: Names, service: str, release: str, token: str) -> str:
    """Unique per run (`token`), so two people's one-offs never collide."""
    return f"{names.prefix}-exec-{service}-{release}-{token}"


def one_off(spec: ContainerSpec, image: str, release_network: str, app_network: str, name: str,
            command: Sequence[str], labels: dict[str, str], *, interactive: bool = False) -> list[list[str]]:
    """create (with the release's env, env file, secret mounts, hardening), join the app's
    network (its accessories are there), start attached; `remove` runs afterwards on every
    path, and `--rm` has the engine remove it when its command ends even if deployctl was
    killed meanwhile. The create never names the service as a network alias (see the module's text)."""
    return [
        ["docker", "create", "--rm", "--name", name, *(TTY if interactive else []), "--network", release_network,
         *_hardening(spec), *_labels(labels), *_env(spec.env), *_env_file(spec), *_secret_mounts(spec),
         image, *command],
        ["docker", "network", "connect", app_network, name],
        ["docker", "start", "--attach", *(["--interactive"] if interactive else []), name],
    ]


def env_file_from(container: str, variables: Sequence[str], path: str) -> list[str]:
    """On the host: the release's env file again, from the variables `container` (the live
    release's) holds in its config, for a one-off's `--env-file`. The deploy removed the file
    once its containers existed (docs/security.md); the values stay on the host, never
    cross to deployctl, and the file (mode 0600) goes after the create. `variables` are env
    names (checked by config), so the pattern needs no quoting."""
    pattern = "^(" + "|".join(sorted(variables)) + ")="
    script = ('umask 077 && docker inspect --format "{{range .Config.Env}}{{println .}}{{end}}" "$1" '
              '| grep -E "$2" > "$3"')
    return ["sh", "-c", script, "sh", container, pattern, path]


def remove(name: str) -> list[str]:
    return ["docker", "rm", "--force", "--volumes", name]


def task_container(task_id: str) -> list[str]:
    """On the task's node: the id of the task's running container."""
    return ["docker", "ps", "-q", "--no-trunc", "--filter", f"label={SWARM_TASK_LABEL}={task_id}",
            "--filter", "status=running"]


def mask_argv(command: Sequence[str], redact=lambda text: text) -> list[str]:  # type: ignore[no-untyped-def]
    """The command as the history keeps it: each argument through `redact` (the values the
    secret source gave this shell), then masked when it is shaped like a credential
    (config/credentials.py), when it is `NAME=value` / `--name=value` with a secret-sounding
    NAME (its value masked), or when it follows a flag with such a name (`--password x`)."""
    out: list[str] = []
    after_secret_flag = False
    for arg in command:
        text = redact(arg)
        if after_secret_flag:
            text, after_secret_flag = MASK, False
        elif credential_shape(text):
            text = MASK
        else:
            name, sep, value = text.partition("=")
            if sep and value and SECRET_NAME.search(name):
                text = f"{name}={MASK}"
            elif text.startswith("-") and not sep and SECRET_NAME.search(text):
                after_secret_flag = True
        out.append(text)
    return out


def exec_record(*, release: str, revision: str | None, service: str, command: Sequence[str], mode: str,
                exit_code: int | None, who: str, now: float, error: str = "",
                redact=lambda text: text) -> ReleaseRecord:  # type: ignore[no-untyped-def]
    """One `exec` line of the history: who ran what (masked), in which release's service,
    how (`live` | `new`) and its exit code. Never its output nor its environment.
    `exit_code` None: the command's end was not seen (outcome `unknown`, `error` says why)."""
    return _exec_line({"service": service, "mode": mode}, release=release, revision=revision, command=command,
                      exit_code=exit_code, who=who, now=now, error=error, redact=redact)


def accessory_exec_record(*, release: str | None, accessory: str, command: Sequence[str], exit_code: int | None,
                          who: str, now: float, error: str = "",
                          redact=lambda text: text) -> ReleaseRecord:  # type: ignore[no-untyped-def]
    """The `exec` line of `deployctl accessory exec`: extra.accessory instead of
    extra.service. `release` is the app's release live on the host when it ran (context
    only: an accessory belongs to no release), NOTHING_LIVE before the first deploy."""
    return _exec_line({"accessory": accessory}, release=release or NOTHING_LIVE, revision=None, command=command,
                      exit_code=exit_code, who=who, now=now, error=error, redact=redact)


def _exec_line(what: dict, *, release: str, revision: str | None, command: Sequence[str], exit_code: int | None,  # type: ignore[type-arg]
               who: str, now: float, error: str, redact) -> ReleaseRecord:  # type: ignore[no-untyped-def]
    extra = {**what, "command": mask_argv(command, redact)}
    if exit_code is not None:
        extra["exit_code"] = exit_code
    return ReleaseRecord(release=release, revision=revision, images={}, action=EXEC,
                         outcome=EXITED if exit_code is not None else NOT_FINISHED, who=who,
                         when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), error=error, extra=extra)
