"""One interface for "a host deploy works on": run an argv, put/read files, make
directories, and reach an HTTP address as the host sees it. `local.py` implements it on
this machine, `ssh.py` over SSH; deploy and rollback only ever talk to this interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Callable, Protocol, Sequence

from ..errors import RemoteCommandError
from ..secrets import redactor

OnLine = Callable[[str], None]
OnBytes = Callable[[bytes], None]


class ConnectionLost(OSError):
    """The connection to the host went away (SSH transport closed, reset, EOF). An OSError,
    so the callers that already treat "nothing answered" as a retryable probe failure keep
    doing so; services/lifecycle/host_calls.py names the host and the step for the user. Whether the
    interrupted call ran on the host is unknown."""


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case

    def text(self) -> str:
        return self.body.decode(errors="replace")


class Connector(Protocol):
    host: str  # how the host is named in events and errors
    # The docker client config directory holding this command's registry login on the host
    # (services/lifecycle/preflight.py sets and removes it); None: not logged in.
    registry_config: str | None

    def connect(self) -> "Connector":
        """Opens the connection (SSH: the host key verified); a no-op on this machine."""

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None,
            on_line: OnLine | None = None) -> CommandResult:
        """Runs argv (never through a shell on our side). `on_line` streams stdout lines."""

    def stream(self, argv: Sequence[str], *, on_stdout: OnBytes, on_stderr: OnBytes) -> int:
        """Runs argv with stdin closed, handing its stdout and stderr (kept apart) to the
        callbacks as they come, in raw chunks; returns its exit status (`deployctl exec`)."""

    def interactive(self, argv: Sequence[str]) -> int:
        """Runs argv on a terminal of the host (a pty here, an SSH pty there) wired to this
        process's terminal: stdin raw and restored on exit, the window size passed on.
        Returns its exit status (`deployctl exec -i`)."""

    def put_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Writes atomically (temp file + rename) with `mode` set before any byte lands."""

    def read_file(self, path: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""

    def append_file(self, path: str, data: bytes, mode: int = 0o644) -> None: ...

    def mkdir(self, path: str, *, mode: int = 0o755, exclusive: bool = False) -> bool:
        """Creates path and its parents. exclusive: the last one must not exist (the atomic
        test-and-set the lock is built on); returns False when it already did."""

    def remove_tree(self, path: str) -> None: ...

    def tcp_check(self, address: str, port: int, timeout: float = 2.0) -> None:
        """Connects to address:port as the host would; raises OSError when nothing accepts."""

    def http_get(self, address: str, port: int, path: str, timeout: float = 2.0,
                 headers: Mapping[str, str] | None = None) -> HttpResponse:
        """GET http://address:port/path as the host would (container IPs are host-local),
        with `headers` besides the usual ones. Raises OSError when nothing answers."""

    def https_get(self, address: str, port: int, path: str, server_name: str,
                  timeout: float = 2.0, headers: Mapping[str, str] | None = None) -> HttpResponse:
        """GET https://server_name/path connected to address:port as the host would, the name
        as SNI and Host, with `headers` besides. The chain is not checked (a private CA's, say): what answers is proven
        by its stamps (release, certificate version). Raises OSError (ssl.SSLError is one)."""

    def close(self) -> None: ...


def check(connector: Connector, argv: Sequence[str], *, stdin: bytes | None = None,
          timeout: float | None = None) -> str:
    """Runs argv and returns stdout, or raises RemoteCommandError with the (redacted) stderr."""
    result = connector.run(argv, stdin=stdin, timeout=timeout)
    if not result.ok:
        raise RemoteCommandError(connector.host, argv, result.rc, redactor(result.stderr or result.stdout))
    return result.stdout


def parse_http_response(raw: bytes) -> HttpResponse:
    """Status and body of an HTTP/1.x response read to EOF (we always send Connection: close)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise OSError(f"not an HTTP response: {raw[:40]!r}")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower().decode(errors="replace")] = value.strip().decode(errors="replace")
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return HttpResponse(int(status_line[1]), body, headers)


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return out


def http_request(address: str, path: str, headers: Mapping[str, str] | None = None) -> bytes:
    """`headers` may name the Host (a shared proxy routes by it); else it is the address."""
    host = next((v for k, v in (headers or {}).items() if k.lower() == "host"), address)
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items() if name.lower() != "host")
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: deployctl\r\n"
            f"Accept: */*\r\n{extra}Connection: close\r\n\r\n").encode()


def https_exchange(raw, server_name: str, request: bytes) -> bytes:  # type: ignore[no-untyped-def]
    """`request` over TLS on `raw` (anything with sendall and recv: a socket, an SSH channel),
    read to EOF. Memory BIOs, so one code serves a socket and a paramiko channel alike."""
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False  # see Connector.https_get: the proof is the stamps
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)

    def flush() -> None:
        data = outgoing.read()
        if data:
            raw.sendall(data)

    def feed() -> bool:
        data = raw.recv(65536)
        if not data:
            incoming.write_eof()
            return False
        incoming.write(data)
        return True

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
            if not feed():
                raise ConnectionResetError(f"{server_name}: the connection closed during the TLS handshake") from None
    flush()
    tls.write(request)
    flush()
    chunks = []
    while True:
        try:
            chunk = tls.read(65536)
        except ssl.SSLWantReadError:
            if feed():
                continue
            break
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
