"""SSHConnector.https_get through a real sshd (in front of this machine): the TLS bytes go over
an SSH direct-tcpip channel from the host (what a move to the shared proxy verifies HTTPS with,
services/edge/shared_move.py)."""

from __future__ import annotations

import pytest

from deployctl.adapters.ssh import SSHConnector
from tests.unit.test_https_get import BODY, tls_server

pytestmark = pytest.mark.integration


def test_https_get_over_an_ssh_channel(tmp_path, ssh_host):
    conn = SSHConnector(ssh_host.host, port=ssh_host.port, user=ssh_host.user, key_file=ssh_host.key_file,
                        known_hosts=ssh_host.known_hosts_file)
    try:
        conn.connect()
        with tls_server(tmp_path, "shop.example.com") as (port, asked):
            answer = conn.https_get("127.0.0.1", port, "/v", "shop.example.com", timeout=5)
    finally:
        conn.close()
    assert (answer.status, answer.headers["x-host"], answer.body) == (200, "shop.example.com", BODY)
    assert asked == ["shop.example.com"]
