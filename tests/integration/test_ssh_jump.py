"""SSHConnector through a jump host, against the session's sshd used as both hops (the
jump host as 127.0.0.1:PORT, the target as localhost:PORT, so known_hosts names them
apart): both hops' keys are checked against the one file, and each failure names its hop
and is a ConnectError (exit 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.adapters.ssh import SSHConnector
from deployctl.errors import ConnectError, ExitCode
from tests.support.net import free_port

pytestmark = pytest.mark.integration


def _pair(ssh_host, known: Path, *, target_port: int | None = None, jump_port: int | None = None) -> SSHConnector:
    jump = SSHConnector("127.0.0.1", port=jump_port or ssh_host.port, user=ssh_host.user, key_file=ssh_host.key_file,
                        known_hosts=str(known), connect_timeout=3)
    return SSHConnector("localhost", port=target_port or ssh_host.port, user=ssh_host.user,
                        key_file=ssh_host.key_file, known_hosts=str(known), connect_timeout=3, jump=jump)


def _refused(conn: SSHConnector) -> str:
    with pytest.raises(ConnectError) as raised:
        conn.connect()
    assert raised.value.exit_code == ExitCode.CONNECT
    return raised.value.message


def test_both_hops_are_verified_and_each_failure_names_its_hop(ssh_host, tmp_path):
    key = ssh_host.host_public_key
    bastion_line = f"[127.0.0.1]:{ssh_host.port} {key}\n"
    target_line = f"[localhost]:{ssh_host.port} {key}\n"
    both, only_bastion, only_target = tmp_path / "both", tmp_path / "bastion", tmp_path / "target"
    both.write_text(bastion_line + target_line)
    only_bastion.write_text(bastion_line)
    only_target.write_text(target_line)
    target = f"localhost:{ssh_host.port}"

    conn = _pair(ssh_host, both).connect()
    try:
        assert conn.run(["sh", "-c", "echo jumped"]).stdout == "jumped\n"
        assert conn.read_file(str(both)) == both.read_bytes()  # SFTP rides the same tunnel
        assert conn.jump.transport_active()
    finally:
        conn.close()
    assert not conn.jump.transport_active()  # closing the host closes its jump host

    message = _refused(_pair(ssh_host, only_bastion))
    assert message.startswith(f"[localhost]:{ssh_host.port}: host key is not in the configured known_hosts")
    assert message.endswith(f"(through jump host 127.0.0.1:{ssh_host.port})"), message

    message = _refused(_pair(ssh_host, only_target))
    assert message.startswith(f"{target}: through jump host [127.0.0.1]:{ssh_host.port}: host key is not in"), message

    closed = free_port()
    message = _refused(_pair(ssh_host, both, jump_port=closed))
    assert message.startswith(f"{target}: through jump host 127.0.0.1:{closed}: cannot connect over SSH"), message

    unreachable = _pair(ssh_host, both, target_port=closed)
    message = _refused(unreachable)
    assert not unreachable.jump.transport_active()  # the jump host's session is not left open
    assert message.startswith(f"localhost:{closed}: through jump host 127.0.0.1:{ssh_host.port}: cannot open a "
                              f"connection to localhost:{closed}: "), message


def test_a_host_key_is_scanned_through_a_verified_jump_host(ssh_host, tmp_path):
    """What `hosts trust` does for hosts behind a jump host: the key exchange alone, over a
    direct-tcpip channel of a connection to the (pinned, verified) jump host."""
    from deployctl.adapters.ssh import scan_host_key

    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{ssh_host.port} {ssh_host.host_public_key}\n")
    jump = SSHConnector("127.0.0.1", port=ssh_host.port, user=ssh_host.user, key_file=ssh_host.key_file,
                        known_hosts=str(known), connect_timeout=3).connect()
    try:
        assert " ".join(scan_host_key("localhost", ssh_host.port, 3, via=jump)) == ssh_host.host_public_key
        closed = free_port()
        with pytest.raises(ConnectError) as raised:
            scan_host_key("localhost", closed, 3, via=jump)
        assert raised.value.message.startswith(f"localhost:{closed}: cannot connect to scan its SSH host key: "
                                               f"127.0.0.1:{ssh_host.port}: cannot open a connection"), raised.value.message
    finally:
        jump.close()
