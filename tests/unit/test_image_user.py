"""Secret files handed to the image's user without a container start (plan/pipeline/image_user.py,
services/lifecycle/secret_owner.py): the uid resolved from the image's account files, chowned on the
host; the chown container only where the host may not chown or the name is unknown."""

from __future__ import annotations

import pytest

from deployctl.adapters.connector import CommandResult
from deployctl.plan.lifecycle import docker_commands as dc
from deployctl.plan.pipeline import image_user as iu
from deployctl.services.lifecycle.secret_owner import hand_to_image_user

PASSWD = "root:x:0:0:root:/root:/bin/sh\nprobe:x:999:998::/home/probe:/bin/sh\n"
GROUP = "root:x:0:\nprobe:x:998:\nstaff:x:50:\n"
ACCOUNTS = f"{PASSWD}{iu.ACCOUNTS_SEPARATOR}\n{GROUP}"


@pytest.mark.parametrize("user, owner", [
    ("probe", "999"), ("999", "999"), ("probe:staff", "999:50"), ("probe:12", "999:12"), ("7:staff", "7:50"),
    ("nobody", None), ("probe:nogroup", None),
])
def test_a_user_resolves_to_numbers_from_the_image_accounts(user, owner):
    assert iu.resolve_owner(user, ACCOUNTS) == owner


@pytest.mark.parametrize("user, owner", [("1000", "1000"), ("1000:1000", "1000:1000"), ("app", None),
                                         ("1000:app", None)])
def test_a_numeric_user_needs_no_lookup(user, owner):
    assert iu.numeric_owner(user) == owner


@pytest.mark.parametrize("user, root", [("", True), ("root", True), ("0:0", True), ("root:staff", True),
                                        ("probe", False), ("1000", False)])
def test_root_is_left_alone(user, root):
    assert iu.is_root(user) is root


def test_the_accounts_are_read_from_a_container_never_started():
    script = iu.read_accounts("repo/app@sha256:abc")[2]
    assert "docker create --network none --entrypoint true repo/app@sha256:abc" in script
    assert "docker start" not in script and "docker run" not in script
    assert script.endswith('docker rm "$id" >/dev/null')


class Host:
    """Answers per argv: the image's USER, its accounts, and whether the host may chown."""

    host = "h"

    def __init__(self, user: str, may_chown: bool = True, accounts: str = ACCOUNTS) -> None:
        self.user, self.may_chown, self.accounts, self.calls = user, may_chown, accounts, []

    def run(self, argv, **_):  # type: ignore[no-untyped-def]
        argv = list(argv)
        self.calls.append(argv)
        if argv == dc.image_user("img"):
            return CommandResult(0, self.user + "\n", "")
        if argv == iu.read_accounts("img"):
            return CommandResult(0, self.accounts, "")
        if argv[0] == "chown":
            return CommandResult(0 if self.may_chown else 1, "", "" if self.may_chown else "Operation not permitted")
        if argv[:3] == ["docker", "run", "--rm"]:
            return CommandResult(0, "", "")
        raise AssertionError(argv)


def test_a_named_user_is_chowned_on_the_host_by_uid():
    host = Host("probe")
    hand_to_image_user(host, "img", "/s")
    assert host.calls == [dc.image_user("img"), iu.read_accounts("img"), ["chown", "-R", "999", "/s"]]


def test_a_numeric_user_is_chowned_without_reading_the_image():
    host = Host("1000:1000")
    hand_to_image_user(host, "img", "/s")
    assert host.calls == [dc.image_user("img"), ["chown", "-R", "1000:1000", "/s"]]


@pytest.mark.parametrize("host", [Host("probe", may_chown=False), Host("ghost")], ids=["not root", "no such user"])
def test_the_container_chowns_where_the_host_cannot(host):
    hand_to_image_user(host, "img", "/s")
    assert host.calls[-1] == dc.chown_secrets("img", host.user, "/s")


def test_a_root_image_changes_nothing():
    host = Host("")
    hand_to_image_user(host, "img", "/s")
    assert host.calls == [dc.image_user("img")]
