"""Writes are on disk before they count: SFTP's fsync request and its refusals, and the
local connector's fsync of the file and then of its directory (the rename)."""

from __future__ import annotations

import errno
import os

import pytest

from deployctl.adapters.local import LocalConnector
from deployctl.adapters.ssh import sftp_fsync


class FakeSftp:
    def __init__(self, error: OSError | None = None) -> None:
        self.error, self.calls = error, []

    def _request(self, t, *args):  # type: ignore[no-untyped-def]
        self.calls.append(args)
        if self.error is not None:
            raise self.error


class FakeHandle:
    handle = b"h1"

    def __init__(self, log: list) -> None:
        self.log = log

    def flush(self) -> None:
        self.log.append("flush")


def test_sftp_fsync_flushes_then_asks_for_fsync_on_the_open_handle():
    log: list = []
    sftp = FakeSftp()
    assert sftp_fsync(sftp, FakeHandle(log)) is None
    assert log == ["flush"] and sftp.calls == [("fsync@openssh.com", b"h1")]


def test_sftp_fsync_names_a_missing_extension_and_raises_a_real_failure():
    reason = sftp_fsync(FakeSftp(IOError("Operation unsupported")), FakeHandle([]))
    assert reason == "the SSH server lacks fsync@openssh.com (Operation unsupported)"
    with pytest.raises(OSError):  # the disk failed: not a reason to carry on
        sftp_fsync(FakeSftp(IOError(errno.EIO, "Failure")), FakeHandle([]))


def test_local_put_file_fsyncs_the_file_then_its_directory(tmp_path, monkeypatch):
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    LocalConnector().put_file(str(tmp_path / "current"), b"x\n", 0o644)
    assert len(synced) == 2 and os.path.basename(synced[0]).startswith(".current.")
    assert synced[1] == str(tmp_path)


class DirSftp:
    """SFTP's mkdir and stat as OpenSSH's sftp-server answers them: a missing parent is
    SSH_FX_NO_SUCH_FILE (FileNotFoundError), an existing path a plain failure."""

    def __init__(self, *dirs: str) -> None:
        self.dirs, self.requests = set(dirs), []

    def mkdir(self, path: str, mode: int) -> None:
        self.requests.append(("mkdir", path, mode))
        if path in self.dirs:
            raise OSError("Failure")
        if path.rsplit("/", 1)[0] not in self.dirs | {""}:
            raise FileNotFoundError(errno.ENOENT, "No such file")
        self.dirs.add(path)

    def stat(self, path: str) -> object:
        self.requests.append(("stat", path))
        if path not in self.dirs:
            raise FileNotFoundError(errno.ENOENT, "No such file")
        return object()


STATE = ("/var", "/var/lib", "/var/lib/deployctl", "/var/lib/deployctl/shop", "/var/lib/deployctl/shop/production")


def test_an_sftp_mkdir_under_an_existing_parent_is_one_request():
    """The lock's mkdir and the state root's (every deploy and rollback, under the lock's
    clock): one request each, where a mkdir of every part from / made 6 and 5 (issue 26)."""
    from deployctl.adapters.ssh import SSHConnector

    sftp = DirSftp(*STATE)
    lock = "/var/lib/deployctl/shop/production/lock"
    assert SSHConnector._mkdir_locked(sftp, lock, 0o700, True) is True
    assert SSHConnector._mkdir_locked(sftp, STATE[-1], 0o700, False) is True
    assert sftp.requests == [("mkdir", lock, 0o700), ("mkdir", STATE[-1], 0o700)]
    sftp.requests.clear()
    assert SSHConnector._mkdir_locked(sftp, lock, 0o700, True) is False  # held: its stat says it exists
    assert sftp.requests == [("mkdir", lock, 0o700), ("stat", lock)]


def test_an_sftp_mkdir_makes_the_missing_parents_first_only_when_one_is_missing():
    from deployctl.adapters.ssh import SSHConnector

    sftp = DirSftp("/var", "/var/lib")
    shop, lock = "/var/lib/deployctl/shop", "/var/lib/deployctl/shop/lock"
    assert SSHConnector._mkdir_locked(sftp, lock, 0o700, True) is True
    assert sftp.requests == [("mkdir", lock, 0o700), ("mkdir", shop, 0o755), ("mkdir", "/var/lib/deployctl", 0o755),
                             ("mkdir", shop, 0o755), ("mkdir", lock, 0o700)]
    assert {"/var/lib/deployctl", shop, lock} <= sftp.dirs


def test_an_exclusive_sftp_mkdir_refused_for_another_reason_raises_rather_than_says_taken():
    from deployctl.adapters.ssh import SSHConnector

    class Denied(DirSftp):
        def mkdir(self, path: str, mode: int) -> None:
            self.requests.append(("mkdir", path, mode))
            raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(FileNotFoundError):  # its stat: not there, so not held by anyone
        SSHConnector._mkdir_locked(Denied(*STATE), STATE[-1] + "/lock", 0o700, True)
    assert SSHConnector._mkdir_locked(Denied(*STATE), STATE[-1] + "/proxy", 0o755, False) is True  # the next step says
