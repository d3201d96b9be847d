"""Connector.https_get (adapters/connector.https_exchange): a request over TLS with SNI through
memory BIOs, so the same code runs over a socket (local) and an SSH channel (the latter
through a real sshd: tests/integration/test_ssh_https_get.py). Against a TLS server in this
process that answers with the name it was asked for."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from pathlib import Path
from typing import Iterator

from deployctl.adapters.local import LocalConnector
from tests.support.pebble import TestCa

BODY = b"x" * 100_000  # more than one TLS record and one recv


@contextlib.contextmanager
def tls_server(tmp: Path, name: str) -> Iterator[tuple[int, list]]:
    """(its port on 127.0.0.1, the SNI names it was asked for): one request, answered with
    BODY and the Host it got as X-Host."""
    chain, key = TestCa().issue([name])
    (tmp / "c.pem").write_bytes(chain)
    (tmp / "k.pem").write_bytes(key)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp / "c.pem", tmp / "k.pem")
    asked: list[str | None] = []
    server.sni_callback = lambda sock, sni, context: asked.append(sni)  # type: ignore[assignment]
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        raw, _ = listener.accept()
        with server.wrap_socket(raw, server_side=True) as conn:
            request = conn.recv(4096)
            host = next(line for line in request.split(b"\r\n") if line.startswith(b"Host:"))
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Host: " + host[6:] + b"\r\nContent-Length: "
                         + str(len(BODY)).encode() + b"\r\nConnection: close\r\n\r\n" + BODY)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], asked
    finally:
        thread.join(5)
        listener.close()


def test_https_get_sends_sni_and_host_and_reads_the_answer_to_eof(tmp_path):
    with tls_server(tmp_path, "shop.example.com") as (port, asked):
        answer = LocalConnector().https_get("127.0.0.1", port, "/v", "shop.example.com", timeout=5)
    assert (answer.status, answer.headers["x-host"], answer.body) == (200, "shop.example.com", BODY)
    assert asked == ["shop.example.com"]
