"""A connection that dies while a command's channel is being opened (adapters/ssh.py
`_open_session`): nothing of the command was sent, so the connector opens the connection
again, once, and the command goes on; a refusal on a live connection is not retried."""

from __future__ import annotations

import paramiko
import pytest

from deployctl.adapters.ssh import SSHConnector
from deployctl.adapters.connector import ConnectionLost


class Transport:
    def __init__(self, opens: list, fail: str | None = None) -> None:
        self.active, self.fail, self.opens = True, fail, opens

    def is_active(self) -> bool:
        return self.active

    def open_session(self) -> str:
        self.opens.append(self)
        if self.fail == "dies":
            self.active = False  # as paramiko: the transport thread ended while the open waited
            raise paramiko.SSHException("Unable to open channel.")
        if self.fail == "refused":
            raise paramiko.ChannelException(2, "Connect failed")
        return "channel"


class Client:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def get_transport(self) -> Transport:
        return self.transport

    def close(self) -> None:
        self.transport.active = False


def connector(first: Transport, then: list[Transport]) -> SSHConnector:
    conn = SSHConnector("node1", known_hosts="/nonexistent")
    conn._client, conn._connected_once = Client(first), True

    def connect(sock=None):  # type: ignore[no-untyped-def]
        if not then:
            from deployctl.errors import ConnectError
            raise ConnectError("node1: cannot connect over SSH: [Errno 111] Connection refused")
        conn._client = Client(then.pop(0))
        return conn

    conn.connect = connect  # type: ignore[method-assign]
    return conn


def test_a_connection_that_dies_during_the_open_is_opened_again_once():
    opens: list = []
    first, second = Transport(opens, "dies"), Transport(opens)
    conn = connector(first, [second])
    assert conn._open_session() == "channel"
    assert opens == [first, second] and conn.reconnects == 1


def test_a_refused_channel_on_a_live_connection_is_not_retried():
    opens: list = []
    first = Transport(opens, "refused")
    conn = connector(first, [Transport(opens)])
    with pytest.raises(paramiko.ChannelException):
        conn._open_session()
    assert opens == [first] and conn.reconnects == 0


def test_when_the_reconnect_fails_the_host_is_lost_for_the_run():
    opens: list = []
    conn = connector(Transport(opens, "dies"), [])
    with pytest.raises(ConnectionLost, match="node1: SSH connection lost, and reconnecting failed: cannot connect"):
        conn.run(["docker", "network", "create", "x"])
    with pytest.raises(ConnectionLost):  # every later call fails at once
        conn.run(["true"])
    assert len(opens) == 1
