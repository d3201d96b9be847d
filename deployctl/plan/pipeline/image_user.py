"""Whose the secret files are: the image's own user, as a uid the host's `chown` takes.

A secret file stays mode 0600 and must be readable by a non-root app, so it is handed to
the image's user. Doing that in a container (`docker run --rm ... chown`, what
plan/lifecycle/docker_commands.chown_secrets does) costs a container start: 0.8-1.7 s of a deploy on
a loaded 2-core machine (issue 26). The image's account files are read without starting
anything instead (`docker create` + `docker cp`: 0.3 s), the name resolved here, and the
host chowns by number. A numeric user needs no lookup at all. Where the host user may not
chown (not root), or the image has no such account, the container does it as before.
"""

from __future__ import annotations

import re
import shlex

ACCOUNTS_SEPARATOR = "--- /etc/group ---"
# An image named by its content (an image id `sha256:<hex>`, or `repo@sha256:<hex>`): its
# USER and account files can never change, so the owner they resolve to is remembered on
# the host, one file per service (`<digest> <owner>`: the last image it deployed, so the
# files stay as many as the services), and the next deploy of that image reads it instead
# of `docker image inspect` + a created container's `docker cp`s (5 docker processes, a
# container created and removed: issue 26 item 5). A tag may move: never remembered.
CONTENT_ADDRESS = re.compile(r"(?:^|@)sha256:([0-9a-f]{64})\Z")
ROOT_OWNER = "root"  # remembered for a root image: nothing to hand over
_RECORD = re.compile(r"^([0-9a-f]{64}) (root|[0-9]+(?::[0-9]+)?)\Z")


def numeric_owner(user: str) -> str | None:
    """`uid` or `uid:gid` when the image's USER is given by number: nothing to look up."""
    name, _, group = user.partition(":")
    if name.isdigit() and (not group or group.isdigit()):
        return user
    return None


def content_address(image: str) -> str | None:
    """The hex digest naming `image` by its content; None for an image named by a tag."""
    match = CONTENT_ADDRESS.search(image)
    return match.group(1) if match else None


def owner_record(image: str, owner: str) -> bytes | None:
    """What is remembered of `image`'s owner (`uid`, `uid:gid` or ROOT_OWNER); None for a tag."""
    digest = content_address(image)
    return f"{digest} {owner}\n".encode() if digest else None


def cached_owner(data: bytes | None, image: str) -> str | None:
    """The owner remembered for `image`; None when the record is of another image, absent,
    or not one (a damaged file is read as absent: the image is asked again)."""
    digest = content_address(image)
    match = _RECORD.match((data or b"").decode(errors="replace").strip())
    return match.group(2) if digest and match and match.group(1) == digest else None


def is_root(user: str) -> bool:
    """An empty USER is root too; secret files root owns need no hand-over."""
    return user.split(":")[0] in ("", "root", "0")


def read_accounts(image: str) -> list[str]:
    """One command on the host: the image's /etc/passwd, then its /etc/group, from a created
    (never started) container, which then goes. `true`: an entrypoint create accepts for
    any image (it is never run)."""
    created = shlex.join(["docker", "create", "--network", "none", "--entrypoint", "true", image])
    script = (f'id=$({created}) || exit 1; '
              'docker cp "$id:/etc/passwd" - | tar -xO; '
              f'echo {shlex.quote(ACCOUNTS_SEPARATOR)}; '
              'docker cp "$id:/etc/group" - | tar -xO; '
              'docker rm "$id" >/dev/null')
    return ["sh", "-c", script]


def resolve_owner(user: str, accounts: str) -> str | None:
    """`user` (name, uid, `name:group`...) as numbers from `read_accounts`' output; None when
    a name is not in the image's files (the container's chown then says why)."""
    passwd, _, group = accounts.partition(ACCOUNTS_SEPARATOR)
    name, _, group_name = user.partition(":")
    uid = name if name.isdigit() else _field(passwd, name, 2)
    if uid is None:
        return None
    if not group_name:
        return uid  # chown USER: the owner only, as the container's `chown -R USER` did
    gid = group_name if group_name.isdigit() else _field(group, group_name, 2)
    return f"{uid}:{gid}" if gid is not None else None


def _field(text: str, name: str, index: int) -> str | None:
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) > index and fields[0] == name and fields[index].isdigit():
            return fields[index]
    return None


def host_chown(owner: str, host_dir: str) -> list[str]:
    return ["chown", "-R", owner, host_dir]
