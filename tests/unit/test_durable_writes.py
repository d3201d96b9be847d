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
