"""SFTP writes reach the host's disk before the rename (fsync@openssh.com against the real
sshd), and a server without the extension gets `sync` run instead, said once."""

from __future__ import annotations

import logging

import pytest

from tests.integration.test_deploy_ssh import connector

pytestmark = pytest.mark.integration


def _spy(conn, unsupported: bool = False):  # type: ignore[no-untyped-def]
    """Records every SFTP request's name (its first string argument) in order; with
    `unsupported`, answers fsync@openssh.com as a server without the extension would."""
    sftp = conn.sftp()
    real = sftp._request
    sent: list[str] = []

    def request(t, *args):  # type: ignore[no-untyped-def]
        name = args[0] if args and isinstance(args[0], str) else str(t)
        sent.append(name)
        if unsupported and name == "fsync@openssh.com":
            raise IOError("Operation unsupported")
        return real(t, *args)

    sftp._request = request
    return sent


def test_sftp_put_and_append_fsync_before_the_rename_on_a_real_sshd(ssh_host, tmp_path):
    conn = connector(ssh_host).connect()
    try:
        sent = _spy(conn)
        path = str(tmp_path / "state" / "current")
        conn.put_file(path, b"20261202-010000-abc1234\n", 0o644)
        assert (tmp_path / "state" / "current").read_bytes() == b"20261202-010000-abc1234\n"
        extended = [n for n in sent if n.endswith("@openssh.com")]
        assert extended == ["fsync@openssh.com", "posix-rename@openssh.com"]  # OpenSSH answered OK
        sent.clear()
        conn.append_file(str(tmp_path / "state" / "releases.jsonl"), b'{"a": 1}\n')
        assert "fsync@openssh.com" in sent
    finally:
        conn.close()


def test_a_server_without_fsync_gets_sync_run_instead_said_once(ssh_host, tmp_path, caplog):
    conn = connector(ssh_host).connect()
    ran: list[list[str]] = []
    real_run = conn.run
    conn.run = lambda argv, **kw: (ran.append(list(argv)), real_run(argv, **kw))[1]  # type: ignore[method-assign]
    try:
        sent = _spy(conn, unsupported=True)
        path = str(tmp_path / "current")
        with caplog.at_level(logging.WARNING):
            conn.put_file(path, b"one\n", 0o644)
            conn.put_file(path, b"two\n", 0o644)
        assert (tmp_path / "current").read_bytes() == b"two\n"
        assert sent.count("fsync@openssh.com") == 1  # known missing after the first refusal
        syncs = [argv for argv in ran if argv[0] == "sync"]
        assert len(syncs) == 2 and all(argv[:2] == ["sync", "--"] and "/.current." in argv[2] for argv in syncs)
        said = [r.getMessage() for r in caplog.records if "fsync@openssh.com" in r.getMessage()]
        assert len(said) == 1 and "lacks fsync@openssh.com (Operation unsupported)" in said[0]
    finally:
        conn.close()


def test_a_write_into_an_existing_directory_sends_no_mkdir(ssh_host, tmp_path):
    """The directory is made only where it is missing: a mkdir per path part before every
    write was half of a small file's SFTP round trips (a lock, `current`, a standby flag)."""
    from paramiko.sftp import CMD_MKDIR

    conn = connector(ssh_host).connect()
    try:
        sftp = conn.sftp()
        real = sftp._request
        codes: list[int] = []
        sftp._request = lambda t, *args: (codes.append(t), real(t, *args))[1]
        current, history = tmp_path / "a" / "b" / "current", tmp_path / "c" / "d" / "releases.jsonl"
        conn.put_file(str(current), b"one\n", 0o644)  # a missing directory: made, then written
        conn.append_file(str(history), b"1\n")  # the same for an append
        assert current.read_bytes() == b"one\n" and history.read_bytes() == b"1\n"
        assert codes.count(CMD_MKDIR) >= 4
        codes.clear()
        conn.put_file(str(current), b"two\n", 0o600)
        conn.append_file(str(history), b"2\n")
        assert current.read_bytes() == b"two\n" and history.read_bytes() == b"1\n2\n"
        assert current.stat().st_mode & 0o777 == 0o600
        assert CMD_MKDIR not in codes
        # open, chmod, write, fsync, close, rename; stat, open, write, chmod, fsync, close
        assert len(codes) <= 12, codes
    finally:
        conn.close()
