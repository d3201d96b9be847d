"""The Connector over SSH (paramiko): commands on the host, files over SFTP, and HTTP to
host-local addresses (container IPs, the proxy's port) through a direct-tcpip channel.

Host keys are verified against the one known_hosts file the connector is given, and no
other (paramiko's system/user files are never loaded): an unknown or changed key is refused
with its fingerprint. Which file that is, services/hosts.py decides: `ssh.known_hosts` when
deploy.toml sets it (which may well be the user's interactive ~/.ssh/known_hosts, trusted on
first use by whoever ssh'ed first), otherwise the environment's own file that `deployctl hosts
trust` writes after showing or checking each fingerprint. `scan_host_key` reads a host's key
for that command without authenticating.
An argv is quoted with shlex.join at the last moment, so a value is never re-split.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import posixpath
import select
import shlex
import threading
import time
from collections.abc import Mapping
from typing import Any, Iterator, Sequence

from ..errors import ConnectError
from .connector import CommandResult, ConnectionLost, HttpResponse, OnBytes, OnLine, http_request, https_exchange, parse_http_response

# paramiko logs every refused direct-tcpip channel ("Secsh channel 3 open FAILED: Connection
# refused"), and health checks poll containers that are not listening yet: without a
# handler of its own, Python prints those to stderr. Failures reach the user as our errors.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


def sftp_fsync(sftp: Any, handle: Any) -> str | None:
    """fsync(2) of an open SFTP file on the host, through OpenSSH's `fsync@openssh.com`
    extension (paramiko has no public call for it: the request is built as paramiko builds
    its own `posix-rename@openssh.com`). Returns None when done, or why the server cannot
    (it lacks the extension); any other failure (EIO, a full disk) raises."""
    from paramiko.sftp import CMD_EXTENDED

    handle.flush()  # paramiko buffers writes: the bytes go to the server first
    try:
        sftp._request(CMD_EXTENDED, "fsync@openssh.com", handle.handle)
    except OSError as exc:
        # paramiko reports SSH_FX_OP_UNSUPPORTED as a plain IOError with the server's text
        # ("Operation unsupported" from OpenSSH); it carries no code to test instead.
        if exc.errno is None and "unsupported" in str(exc).lower():
            return f"the SSH server lacks fsync@openssh.com ({exc})"
        raise
    return None


_PARAMIKO_IMPORT = threading.Lock()


def _paramiko():  # type: ignore[no-untyped-def]
    """paramiko, imported without `invoke`: paramiko.config imports it at its own import for
    one thing deployctl never does (`Match exec` in an ssh_config file it parses), and it
    pulls asyncio and unittest.mock: 0.84 of paramiko's 1.1 s of import in a Swarm rollback
    on a loaded machine (issue 26, python -X importtime). Where something imported invoke
    already, it is kept. The ways in (a connection, a host key scan) import it through
    here; code that runs on a connected connector finds it imported."""
    import sys

    # One thread at a time: a fleet connects its hosts from a pool, and two first imports
    # side by side would each set and remove the `invoke` entry (the second removal a KeyError).
    with _PARAMIKO_IMPORT:
        if "paramiko" in sys.modules or "invoke" in sys.modules:
            import paramiko
            return paramiko
        sys.modules["invoke"] = None  # type: ignore[assignment]  # `import invoke` raises ImportError
        try:
            import paramiko
        finally:
            sys.modules.pop("invoke", None)
    return paramiko


def fingerprint(key: Any) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _refuse_unknown_policy():  # type: ignore[no-untyped-def]
    paramiko = _paramiko()

    class RefuseUnknown(paramiko.MissingHostKeyPolicy):
        """paramiko's RejectPolicy, but the refusal says which key was offered."""

        def missing_host_key(self, client, hostname, key):  # type: ignore[no-untyped-def]
            raise ConnectError(
                f"{hostname}: host key is not in the configured known_hosts "
                f"({key.get_name()} {fingerprint(key)}); refusing to connect",
                hint="verify the fingerprint out of band, then `deployctl hosts trust --env <name> "
                     "--fingerprint SHA256:...` (or add the key to the known_hosts file)",
            )

    return RefuseUnknown()


def scan_host_key(host: str, port: int = 22, timeout: float = 10.0, *,
                  via: "SSHConnector | None" = None) -> tuple[str, str]:
    """(key type, base64 blob) of the host key `host` offers, from the key exchange alone:
    no user, no key and no auth request are ever sent, so scanning an untrusted host gives it
    nothing (as `ssh-keyscan`). The key type is the one paramiko negotiates first, which is
    also the one it will ask for when a later connection finds only that type pinned.
    `via`: a connected (so verified) jump host the host is reached through."""
    import socket

    paramiko = _paramiko()

    where = host if port == 22 else f"{host}:{port}"
    try:
        sock = via.open_tunnel(host, port, timeout) if via is not None else socket.create_connection((host, port), timeout=timeout)
    except ConnectError as exc:
        raise ConnectError(f"{where}: cannot connect to scan its SSH host key: {exc.message}") from None
    except OSError as exc:
        raise ConnectError(f"{where}: cannot connect to scan its SSH host key: {exc}") from None
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        return key.get_name(), key.get_base64()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise ConnectError(f"{where}: SSH key exchange failed while scanning its host key: {exc or type(exc).__name__}") from None
    finally:
        transport.close()
        sock.close()


class SSHConnector:
    def __init__(self, host: str, *, port: int = 22, user: str = "deploy", key_file: str | None = None,
                 known_hosts: str, connect_timeout: float = 10.0, jump: "SSHConnector | None" = None) -> None:
        # known_hosts has no default: a forgotten argument must not fall back to a file
        # someone else filled in by answering "yes" to ssh's first-use question.
        # jump: the bastion this host is reached through (ssh.proxy_jump); its own connector,
        # so its key is verified and its errors are worded exactly as a host's.
        self.host = host if port == 22 else f"{host}:{port}"
        self.jump = jump
        self.address, self.port, self.user = host, port, user
        self.key_file = os.path.expanduser(key_file) if key_file else None
        self.known_hosts = os.path.expanduser(known_hosts)
        self.connect_timeout = connect_timeout
        self._client: Any = None
        self._sftp: Any = None
        self._sftp_lock = threading.Lock()
        self._reconnect_lock = threading.Lock()
        self._lost: str | None = None  # why a reconnect failed: the host is gone for this run
        self.reconnects = 0
        self._connected_once = False
        self.registry_config: str | None = None  # services/lifecycle/preflight.py: the command's registry login
        self._fsync_missing: str | None = None  # why fsync@openssh.com cannot be used, once known

    # -- connection ------------------------------------------------------------------------

    def connect(self) -> "SSHConnector":
        """Connects (through the jump host first, when there is one: its transport carries a
        direct-tcpip channel to this host, which is the socket of this host's SSH session,
        as OpenSSH's ProxyJump does). Both hops' keys are checked; an error names the hop."""
        sock = None
        if self.jump is not None:
            try:
                if not self.jump.transport_active():
                    self.jump._drop()
                    self.jump.connect()
                sock = self.jump.open_tunnel(self.address, self.port, self.connect_timeout)
            except ConnectError as exc:
                self.jump.close()  # a failed host does not keep a bastion session open
                raise ConnectError(f"{self.host}: through jump host {exc.message}", hint=exc.hint) from None
        try:
            return self._connect(sock)
        except ConnectError as exc:
            if self.jump is None:
                raise
            self.jump.close()
            raise ConnectError(f"{exc.message} (through jump host {self.jump.host})", hint=exc.hint) from None

    def open_tunnel(self, address: str, port: int, timeout: float) -> Any:
        """A direct-tcpip channel from this host to address:port (a socket-like object for
        another SSH session); ConnectError naming both when the host cannot connect there."""
        import paramiko

        try:
            return self.transport.open_channel("direct-tcpip", (address, port), ("127.0.0.1", 0), timeout=timeout)
        except paramiko.ChannelException as exc:
            reason = f"{exc.text} (SSH channel failure {exc.code})"
        except (paramiko.SSHException, OSError, EOFError) as exc:
            reason = str(exc) or type(exc).__name__
        where = address if port == 22 else f"{address}:{port}"
        raise ConnectError(f"{self.host}: cannot open a connection to {where}: {reason}",
                           hint="is the host up, and does its firewall (security group) let the jump host in "
                                "on that port? Is AllowTcpForwarding on at the jump host?") from None

    def _connect(self, sock: Any) -> "SSHConnector":
        paramiko = _paramiko()

        client = paramiko.SSHClient()
        try:
            client.load_host_keys(self.known_hosts)
        except FileNotFoundError:
            raise ConnectError(f"{self.host}: known_hosts file {self.known_hosts} does not exist",
                               hint="run `deployctl hosts trust --env <name>` (it shows each host's fingerprint to "
                                    "check), or set environments.<name>.ssh.known_hosts to a file holding the key") from None
        client.set_missing_host_key_policy(_refuse_unknown_policy())
        try:
            client.connect(
                self.address, port=self.port, username=self.user, key_filename=self.key_file,
                look_for_keys=self.key_file is None, allow_agent=self.key_file is None,
                timeout=self.connect_timeout, banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout, sock=sock,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise ConnectError(
                f"{self.host}: HOST KEY CHANGED: offered {exc.key.get_name()} {fingerprint(exc.key)}, "
                f"known_hosts has {fingerprint(exc.expected_key)}; refusing to connect",
                hint="someone may be intercepting the connection; if the host was rebuilt, "
                     "replace its line in the known_hosts file",
            ) from None
        except ConnectError:
            client.close()
            raise
        except paramiko.AuthenticationException as exc:
            client.close()
            raise ConnectError(f"{self.host}: SSH authentication as {self.user!r} failed: {exc}",
                               hint="check environments.<name>.ssh.user and key_file") from None
        except (paramiko.SSHException, OSError) as exc:
            client.close()
            raise ConnectError(f"{self.host}: cannot connect over SSH: {exc}") from None
        transport = client.get_transport()
        transport.set_keepalive(15)
        self._client = client
        self._connected_once = True
        return self

    @property
    def transport(self) -> Any:
        """The live transport. A connection that dropped since the last call is opened again,
        once: nothing of this call was sent yet, so that is always safe. When that fails the
        host counts as lost for the rest of the run (every later call fails at once, rather
        than waiting out a connect timeout each)."""
        if self._lost is not None:
            raise ConnectionLost(self._lost)
        client = self._client
        transport = client.get_transport() if client is not None else None
        if transport is not None and transport.is_active():
            return transport
        if not self._connected_once:
            self.connect()  # first use without an explicit connect()
            return self._client.get_transport()
        with self._reconnect_lock:
            if self._client is not client:  # another thread reconnected meanwhile
                return self.transport
            self._drop()
            try:
                self.connect()
            except ConnectError as exc:
                reason = exc.message[len(self.host) + 2:] if exc.message.startswith(f"{self.host}: ") else exc.message
                self._lost = f"{self.host}: SSH connection lost, and reconnecting failed: {reason}"
                raise ConnectionLost(self._lost) from None
            self.reconnects += 1
            return self._client.get_transport()

    def _drop(self) -> None:
        """Forgets a dead connection (its SFTP session died with it)."""
        old, self._client, self._sftp = self._client, None, None
        if old is not None:
            try:
                old.close()
            except Exception:  # noqa: BLE001 - it is dead already
                pass
        # The jump host's connection is kept when it is still alive (connect() reuses it).

    def _lost_during(self, what: str, exc: BaseException) -> BaseException:
        """The error for `exc` raised during `what`: ConnectionLost when the transport died
        (the call may or may not have happened on the host), else `exc` itself."""
        if isinstance(exc, ConnectionLost):
            return exc
        if self.transport_active() and not isinstance(exc, EOFError):
            return exc
        return ConnectionLost(f"{self.host}: SSH connection lost during {what}: {type(exc).__name__}: {exc}")

    @contextlib.contextmanager
    def _losing(self, what: str) -> Iterator[None]:
        """Maps a paramiko/socket error inside the block to `_lost_during(what, ...)`: the one
        place that decides whether an error means the connection went."""
        import paramiko

        try:
            yield
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise self._lost_during(what, exc) from None

    @contextlib.contextmanager
    def _session(self, argv: Sequence[str]) -> Iterator[Any]:
        """A command channel for argv, closed on the way out; errors as `_losing` maps them."""
        with self._losing(f"`{' '.join(argv[:3])}`"):
            chan = self._open_session()
            try:
                yield chan
            finally:
                chan.close()

    def _open_session(self) -> Any:
        """A command channel. A connection found dead while the channel was being opened is
        opened again, once, as `transport` does for one found dead before the call: the server
        had not granted the channel, so nothing of the command was sent (a CI run lost a Swarm
        manager's connection this way, 5 s after connecting, at load 40). A refusal on a live
        connection (sshd's MaxSessions) is the caller's error, as before."""
        import paramiko

        transport = self.transport
        try:
            return transport.open_session()
        except (paramiko.SSHException, EOFError, OSError):
            if transport.is_active():
                raise
        return self.transport.open_session()

    def _exit_status(self, chan: Any) -> int:
        rc = chan.recv_exit_status()
        if rc == -1 and not self.transport_active():
            # paramiko closes a channel whose transport died and reports -1: not an exit status
            raise EOFError("the channel closed with no exit status")
        return rc

    def sftp(self) -> Any:
        transport = self.transport  # reconnects first when the connection dropped
        if self._sftp is None or self._sftp.get_channel().get_transport() is not transport:
            self._sftp = self._client.open_sftp()
        return self._sftp

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.jump is not None:
            self.jump.close()

    # -- commands --------------------------------------------------------------------------

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None,
            on_line: OnLine | None = None) -> CommandResult:
        with self._session(argv) as chan:
            return self._run_on(chan, argv, stdin, timeout, on_line)

    def _run_on(self, chan: Any, argv: Sequence[str], stdin: bytes | None, timeout: float | None,
                on_line: OnLine | None) -> CommandResult:
        chan.exec_command(shlex.join(argv))
        if stdin is not None:
            chan.sendall(stdin)
        chan.shutdown_write()
        out, err = bytearray(), bytearray()
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = b""
        while True:
            if chan.recv_ready():
                data = chan.recv(65536)
                if on_line is None:
                    out += data
                else:
                    pending += data
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        on_line(line.decode(errors="replace"))
                continue
            if chan.recv_stderr_ready():
                data = chan.recv_stderr(65536)
                if on_line is None:
                    err += data
                else:
                    for line in data.decode(errors="replace").splitlines():
                        on_line(line)
                continue
            if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                break
            if deadline is not None and time.monotonic() > deadline:
                return CommandResult(124, out.decode(errors="replace"), f"timed out after {timeout}s")
            select.select([chan], [], [], 0.05)
        if pending and on_line is not None:
            on_line(pending.decode(errors="replace"))
        rc = self._exit_status(chan)
        return CommandResult(rc, out.decode(errors="replace"), err.decode(errors="replace"))

    def stream(self, argv: Sequence[str], *, on_stdout: OnBytes, on_stderr: OnBytes) -> int:
        """argv on the host with stdin closed; its stdout and stderr (two SSH streams, kept
        apart) to the callbacks as they arrive. Returns its exit status."""
        with self._session(argv) as chan:
            chan.exec_command(shlex.join(argv))
            chan.shutdown_write()
            while True:
                if chan.recv_ready():
                    on_stdout(chan.recv(65536))
                    continue
                if chan.recv_stderr_ready():
                    on_stderr(chan.recv_stderr(65536))
                    continue
                if chan.exit_status_ready():
                    break
                select.select([chan], [], [], 0.2)
            return self._exit_status(chan)

    def interactive(self, argv: Sequence[str]) -> int:
        """argv on an SSH pty (`get_pty` with this terminal's TERM and window size, resized on
        SIGWINCH) wired to this process's terminal, stdin raw until it ends (then restored).
        Returns its exit status."""
        from .terminal import on_resize, pump, raw_stdin, window_size

        with self._session(argv) as chan:
            columns, rows = window_size()
            chan.get_pty(term=os.environ.get("TERM") or "xterm", width=columns, height=rows)
            chan.exec_command(shlex.join(argv))
            with on_resize(lambda c, r: chan.resize_pty(width=c, height=r)), raw_stdin():
                pump(chan.fileno, lambda: _drain(chan), chan.sendall, chan.shutdown_write, chan.exit_status_ready)
            return self._exit_status(chan)

    def transport_active(self) -> bool:
        transport = self._client.get_transport() if self._client is not None else None
        return transport is not None and transport.is_active()

    # -- files -----------------------------------------------------------------------------

    def put_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        with self._losing(f"writing {path}"):
            return self._put_file(path, data, mode)

    def _put_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        directory = posixpath.dirname(path)
        tmp = posixpath.join(directory, f".{posixpath.basename(path)}.{os.getpid()}.{threading.get_ident()}")
        with self._sftp_lock:
            sftp = self.sftp()
            try:
                handle = sftp.open(tmp, "wb")
            except FileNotFoundError:
                # The directory first only where it is missing: a mkdir per path part on every
                # write was half of its SFTP round trips (a lock, `current`, a standby flag).
                self._mkdir_locked(sftp, directory, 0o755, False)
                handle = sftp.open(tmp, "wb")
            with handle:
                handle.chmod(mode)  # before the first byte: a secret is never world-readable
                handle.write(data)
                # On the host's disk before the rename makes it the file: after a power loss
                # the rename may survive with the data lost (an empty `current` or lock).
                missing = self._fsync_missing or sftp_fsync(sftp, handle)
            if missing:
                self._sync_by_command(tmp, missing)
            sftp.posix_rename(tmp, path)

    def _sync_by_command(self, path: str, missing: str) -> None:
        """Without the extension: `sync FILE` on the host (coreutils 8.24+ fsyncs the named
        file), else a plain `sync`; said once per connector, as a warning on stderr."""
        if self._fsync_missing is None:
            self._fsync_missing = missing
            logging.getLogger(__name__).warning("%s: %s; files are synced with the `sync` command instead",
                                                self.host, missing)
        if not self.run(["sync", "--", path]).ok and not self.run(["sync"]).ok:
            raise OSError(f"{self.host}: cannot make {path} durable: {missing}, and `sync` failed")

    def read_file(self, path: str) -> bytes | None:
        with self._losing(f"reading {path}"):
            return self._read_file(path)

    def _read_file(self, path: str) -> bytes | None:
        with self._sftp_lock:
            try:
                with self.sftp().open(path, "rb") as handle:
                    return handle.read()
            except FileNotFoundError:
                return None

    def append_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        with self._losing(f"appending to {path}"):
            return self._append_file(path, data, mode)

    def _append_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        with self._sftp_lock:
            sftp = self.sftp()
            try:
                start = sftp.stat(path).st_size
            except FileNotFoundError:
                start = 0  # and its directory perhaps missing too (a file that exists has one)
                self._mkdir_locked(sftp, posixpath.dirname(path), 0o755, False)
            try:
                with sftp.open(path, "ab") as handle:
                    handle.write(data)
                    handle.chmod(mode)
                    missing = self._fsync_missing or sftp_fsync(sftp, handle)
                if missing:
                    self._sync_by_command(path, missing)
            except OSError:
                # A failed append (a full disk) may have written part of the line: cut it
                # off, or the next append runs into it and both records are lost.
                try:
                    sftp.truncate(path, start)
                except Exception:  # noqa: BLE001 - the connection may be gone: the first error counts
                    pass
                raise

    def mkdir(self, path: str, *, mode: int = 0o755, exclusive: bool = False) -> bool:
        with self._losing(f"mkdir {path}"):
            return self._mkdir(path, mode=mode, exclusive=exclusive)

    def _mkdir(self, path: str, *, mode: int = 0o755, exclusive: bool = False) -> bool:
        with self._sftp_lock:
            return self._mkdir_locked(self.sftp(), path, mode, exclusive)

    @staticmethod
    def _mkdir_locked(sftp: Any, path: str, mode: int, exclusive: bool) -> bool:
        """`path` in one request when its parent exists (a state dir, a lock: the usual case),
        where a mkdir of every part from / cost a request each (6 for a lock dir, issue 26);
        the missing parents (0o755) first only when the server says one is missing."""
        path = path.rstrip("/") or "/"
        try:
            sftp.mkdir(path, mode)
            return True
        except FileNotFoundError:
            parent = posixpath.dirname(path)
            if parent not in (path, ""):
                SSHConnector._mkdir_locked(sftp, parent, 0o755, False)
        except OSError:
            return SSHConnector._exists_already(sftp, path, exclusive)
        try:
            sftp.mkdir(path, mode)
            return True
        except OSError:
            return SSHConnector._exists_already(sftp, path, exclusive)

    @staticmethod
    def _exists_already(sftp: Any, path: str, exclusive: bool) -> bool:
        """After a refused mkdir: an exclusive one is False when the path exists (else the
        stat's error is raised: e.g. permission); any other, True (it exists already, or
        cannot be made: the next step will say so)."""
        if exclusive:
            sftp.stat(path)
            return False
        return True

    def remove_tree(self, path: str) -> None:
        self.run(["rm", "-rf", "--", path])

    # -- HTTP as the host sees it ----------------------------------------------------------

    def tcp_check(self, address: str, port: int, timeout: float = 2.0) -> None:
        with self._losing(f"a TCP check of {address}:{port}"):
            return self._tcp_check(address, port, timeout)

    def _tcp_check(self, address: str, port: int, timeout: float = 2.0) -> None:
        """sshd confirms a direct-tcpip channel only once its own connection to the address
        succeeded: an open channel is a TCP connect as the host sees it."""
        import paramiko

        try:
            chan = self.transport.open_channel("direct-tcpip", (address, port), ("127.0.0.1", 0), timeout=timeout)
        except (paramiko.ChannelException, paramiko.SSHException) as exc:
            raise OSError(f"{address}:{port} via {self.host}: {exc}") from None
        chan.close()

    def http_get(self, address: str, port: int, path: str, timeout: float = 2.0,
                 headers: Mapping[str, str] | None = None) -> HttpResponse:
        with self._losing(f"GET http://{address}:{port}{path}"):
            return self._http_get(address, port, path, timeout, headers)

    def https_get(self, address: str, port: int, path: str, server_name: str,
                  timeout: float = 2.0, headers: Mapping[str, str] | None = None) -> HttpResponse:
        with self._losing(f"GET https://{server_name}{path} at {address}:{port}"):
            chan = self._channel(address, port, timeout)
            try:
                chan.settimeout(timeout)
                raw = https_exchange(chan, server_name, http_request(address, path, {**(headers or {}),
                                                                                     "Host": server_name}))
            finally:
                chan.close()
            return parse_http_response(raw)

    def _channel(self, address: str, port: int, timeout: float):  # type: ignore[no-untyped-def]
        """A TCP connection from the host to address:port, through the SSH transport."""
        import paramiko

        try:
            return self.transport.open_channel("direct-tcpip", (address, port), ("127.0.0.1", 0), timeout=timeout)
        except (paramiko.ChannelException, paramiko.SSHException) as exc:
            raise OSError(f"{address}:{port} via {self.host}: {exc}") from None

    def _http_get(self, address: str, port: int, path: str, timeout: float = 2.0,
                  headers: Mapping[str, str] | None = None) -> HttpResponse:
        chan = self._channel(address, port, timeout)
        try:
            chan.settimeout(timeout)
            chan.sendall(http_request(address, path, headers))
            chunks = []
            while True:
                chunk = chan.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            chan.close()
        return parse_http_response(b"".join(chunks))



def _drain(chan: Any) -> bytes | None:
    """What a pty channel has for us (stdout and stderr are one stream on a pty): None when
    nothing is there yet, b"" once the channel is at EOF."""
    if chan.recv_ready():
        return chan.recv(65536)
    if chan.recv_stderr_ready():
        return chan.recv_stderr(65536)
    if chan.eof_received or chan.closed:
        return b""
    return None
