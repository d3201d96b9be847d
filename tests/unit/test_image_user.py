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


IMAGE_ID = "sha256:" + "ab" * 32  # an image named by its content


class Host:
    """Answers per argv: the image's USER, its accounts, and whether the host may chown;
    its files (the remembered owners) in `files`."""

    host = "h"

    def __init__(self, user: str, may_chown: bool = True, accounts: str = ACCOUNTS, image: str = "img") -> None:
        self.user, self.may_chown, self.accounts, self.calls = user, may_chown, accounts, []
        self.image, self.files = image, {}

    def run(self, argv, **_):  # type: ignore[no-untyped-def]
        argv = list(argv)
        self.calls.append(argv)
        if argv == dc.image_user(self.image):
            return CommandResult(0, self.user + "\n", "")
        if argv == iu.read_accounts(self.image):
            return CommandResult(0, self.accounts, "")
        if argv[0] == "chown":
            return CommandResult(0 if self.may_chown else 1, "", "" if self.may_chown else "Operation not permitted")
        if argv[:3] == ["docker", "run", "--rm"]:
            return CommandResult(0, "", "")
        raise AssertionError(argv)

    def read_file(self, path):  # type: ignore[no-untyped-def]
        return self.files.get(path)

    def put_file(self, path, data, mode=0o600):  # type: ignore[no-untyped-def]
        self.calls.append(["put_file", path])
        self.files[path] = data


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


# Issue 26 item 5: a redeploy of an image named by its content asks the engine nothing about
# its user (main: `docker image inspect` and the accounts script, 5 docker processes and a
# container created and removed, on every deploy).

DIGEST = "ab" * 32
OTHER_ID = "sha256:" + "cd" * 32


@pytest.mark.parametrize("user, owner", [("probe", "999"), ("1000:1000", "1000:1000"), ("", None)],
                         ids=["named", "numeric", "root"])
def test_the_owner_of_an_image_by_content_is_remembered_and_a_redeploy_asks_the_engine_nothing(user, owner):
    host = Host(user, image=IMAGE_ID)
    hand_to_image_user(host, IMAGE_ID, "/s1", "/state/image-owners/backend")
    assert host.files == {"/state/image-owners/backend": f"{DIGEST} {owner or iu.ROOT_OWNER}\n".encode()}
    first = len(host.calls)
    hand_to_image_user(host, IMAGE_ID, "/s2", "/state/image-owners/backend")
    assert host.calls[first:] == ([["chown", "-R", owner, "/s2"]] if owner else [])


def test_another_image_is_asked_and_replaces_the_record():
    host = Host("1000", image=OTHER_ID)
    host.files["/c/backend"] = f"{DIGEST} 999\n".encode()
    hand_to_image_user(host, OTHER_ID, "/s", "/c/backend")
    assert host.calls[0] == dc.image_user(OTHER_ID) and host.calls[-1] == ["chown", "-R", "1000", "/s"]
    assert host.files["/c/backend"] == f"{'cd' * 32} 1000\n".encode()


def test_a_remembered_owner_the_host_may_not_chown_goes_to_the_container_by_number():
    host = Host("probe", may_chown=False, image=IMAGE_ID)
    host.files["/c/backend"] = f"{DIGEST} 999\n".encode()
    hand_to_image_user(host, IMAGE_ID, "/s", "/c/backend")
    assert host.calls == [["chown", "-R", "999", "/s"], dc.chown_secrets(IMAGE_ID, "999", "/s")]


@pytest.mark.parametrize("image", ["img", "repo/app:1.2", "repo/app@sha256:abc"])
def test_an_image_by_tag_is_never_remembered(image):
    host = Host("probe", image=image)
    for _ in range(2):
        hand_to_image_user(host, image, "/s", "/c/backend")
    assert host.files == {} and host.calls.count(dc.image_user(image)) == 2


@pytest.mark.parametrize("damaged", [b"", b"probe\n", f"{DIGEST} probe\n".encode(), f"{DIGEST} 999; rm -rf /\n".encode(),
                                     f"{DIGEST[:-1]} 999\n".encode(), b"\xff"])
def test_a_damaged_remembered_owner_is_read_as_absent(damaged):
    host = Host("probe", image=IMAGE_ID)
    host.files["/c/backend"] = damaged
    hand_to_image_user(host, IMAGE_ID, "/s", "/c/backend")
    assert host.calls[:2] == [dc.image_user(IMAGE_ID), iu.read_accounts(IMAGE_ID)]
    assert host.files["/c/backend"] == f"{DIGEST} 999\n".encode()


def test_a_host_that_cannot_keep_the_owner_still_gets_its_files_handed_over():
    host = Host("probe", image=IMAGE_ID)

    def full(path, data, mode=0o600):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")
    host.put_file = full
    hand_to_image_user(host, IMAGE_ID, "/s", "/c/backend")
    assert host.calls[-1] == ["chown", "-R", "999", "/s"]


@pytest.mark.parametrize("image, key", [("sha256:" + "0" * 64, "0" * 64), ("r.example/a/b@sha256:" + "f" * 64, "f" * 64),
                                        ("b:sha256", None), ("sha256:" + "0" * 63, None), ("a@sha256:" + "A" * 64, None),
                                        ("sha256:" + "0" * 64 + "\n", None)])
def test_only_a_content_address_names_a_remembered_owner(image, key):
    assert iu.content_address(image) == key
    assert iu.owner_record(image, "999") == (f"{key} 999\n".encode() if key else None)
