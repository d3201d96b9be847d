"""Connector.https_get (adapters/connector.https_exchange): a request over TLS with SNI through
memory BIOs, so the same code runs over a socket (local) and an SSH channel. Against a TLS
server in this process that answers with the name it was asked for."""

from __future__ import annotations

import socket
import ssl
import threading

from deployctl.adapters.local import LocalConnector
from tests.support.pebble import TestCa


def test_https_get_sends_sni_and_host_and_reads_the_answer_to_eof(tmp_path):
    chain, key = TestCa().issue(["shop.example.com"])
    (tmp_path / "c.pem").write_bytes(chain)
    (tmp_path / "k.pem").write_bytes(key)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    asked: list[str | None] = []
    server.sni_callback = lambda sock, name, context: asked.append(name)  # type: ignore[assignment]
    listener = socket.create_server(("127.0.0.1", 0))
    body = b"x" * 100_000  # more than one TLS record and one recv

    def serve() -> None:
        raw, _ = listener.accept()
        with server.wrap_socket(raw, server_side=True) as conn:
            request = conn.recv(4096)
            host = next(line for line in request.split(b"\r\n") if line.startswith(b"Host:"))
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Host: " + host[6:] + b"\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        answer = LocalConnector().https_get("127.0.0.1", listener.getsockname()[1], "/v", "shop.example.com",
                                            timeout=5)
    finally:
        thread.join(5)
        listener.close()
    assert (answer.status, answer.headers["x-host"], answer.body) == (200, "shop.example.com", body)
    assert asked == ["shop.example.com"]
