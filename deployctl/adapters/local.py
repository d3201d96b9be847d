"""The Connector on this machine: subprocess for commands, the filesystem for files.

Used by `local` environments (the machine's own Docker engine, no registry).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Mapping
from typing import Sequence

from ..errors import ConnectError
from .connector import CommandResult, HttpResponse, OnBytes, OnLine, http_request, https_exchange, parse_http_response


class LocalConnector:
    host = "localhost"
    registry_config: str | None = None  # services/lifecycle/preflight.py: the command's registry login

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None,
            on_line: OnLine | None = None) -> CommandResult:
        import subprocess

        try:
            if on_line is None:
                done = subprocess.run(list(argv), input=stdin, capture_output=True, timeout=timeout,
                                      stdin=None if stdin is not None else subprocess.DEVNULL)
                return CommandResult(done.returncode, done.stdout.decode(errors="replace"),
                                     done.stderr.decode(errors="replace"))
            with subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL) as proc:
                assert proc.stdout is not None
                for raw in proc.stdout:
                    on_line(raw.decode(errors="replace").rstrip("\n"))
                return CommandResult(proc.wait(), "", "")
        except FileNotFoundError:
            raise ConnectError(f"localhost: {argv[0]} is not installed") from None
        except subprocess.TimeoutExpired:
            return CommandResult(124, "", f"timed out after {timeout}s")

    def stream(self, argv: Sequence[str], *, on_stdout: OnBytes, on_stderr: OnBytes) -> int:
        """Runs argv with stdin closed; its stdout and stderr go to the callbacks as they come
        (raw chunks: nothing waits for a newline). Returns its exit status."""
        import selectors
        import subprocess

        try:
            proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise ConnectError(f"localhost: {argv[0]} is not installed") from None
        try:
            with selectors.DefaultSelector() as selector:
                assert proc.stdout is not None and proc.stderr is not None
                selector.register(proc.stdout, selectors.EVENT_READ, on_stdout)
                selector.register(proc.stderr, selectors.EVENT_READ, on_stderr)
                while selector.get_map():
                    for key, _ in selector.select():
                        data = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
                        if data:
                            key.data(data)
                        else:
                            selector.unregister(key.fileobj)
            return proc.wait()
        finally:
            if proc.poll() is None:  # interrupted: the command does not outlive deployctl
                proc.terminate()
                proc.wait()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()

    def interactive(self, argv: Sequence[str]) -> int:
        """Runs argv on a new pty (the `pty` module) wired to this process's terminal: stdin
        raw until the command ends (then restored), the window size passed on and kept in
        step (SIGWINCH). Returns its exit status."""
        import fcntl
        import pty
        import struct
        import termios

        from .terminal import on_resize, pump, raw_stdin, window_size

        if shutil.which(argv[0]) is None:
            raise ConnectError(f"localhost: {argv[0]} is not installed")

        def resize(columns: int, rows: int) -> None:
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

        master, slave = pty.openpty()
        resize(*window_size())  # before the child starts: `docker exec -it` reads it once, at its start
        pid = os.fork()
        if pid == 0:  # the child: a session of its own, the pty's slave as its terminal and stdio
            try:
                os.close(master)
                os.login_tty(slave)
                os.execvp(argv[0], list(argv))
            finally:
                os._exit(127)
        os.close(slave)

        def read_master() -> bytes:
            try:
                return os.read(master, 65536)
            except OSError:  # EIO: the child closed its side
                return b""

        try:
            with on_resize(resize), raw_stdin():
                pump(lambda: master, read_master, lambda data: os.write(master, data),
                     lambda: os.write(master, b"\x04"), lambda: False)
        finally:
            os.close(master)
            _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    def put_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
        try:
            os.fchmod(fd, mode)  # before the first byte: a secret is never world-readable
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        _fsync_dir(directory)

    def read_file(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def append_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode)
        try:
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:  # a full disk writes short first, then fails
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except BaseException:
                # Never leave a torn line: the next append would run into it and both
                # records would be lost (the history is appended to under the lock).
                os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)

    def mkdir(self, path: str, *, mode: int = 0o755, exclusive: bool = False) -> bool:
        os.makedirs(os.path.dirname(path.rstrip("/")), exist_ok=True)
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            if exclusive:
                return False
        return True

    def remove_tree(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def connect(self) -> "LocalConnector":
        return self  # nothing to open: commands run on this machine

    def tcp_check(self, address: str, port: int, timeout: float = 2.0) -> None:
        with socket.create_connection((address, port), timeout=timeout):
            pass

    def http_get(self, address: str, port: int, path: str, timeout: float = 2.0,
                 headers: Mapping[str, str] | None = None) -> HttpResponse:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.sendall(http_request(address, path, headers))
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return parse_http_response(b"".join(chunks))

    def https_get(self, address: str, port: int, path: str, server_name: str,
                  timeout: float = 2.0, headers: Mapping[str, str] | None = None) -> HttpResponse:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            raw = https_exchange(sock, server_name, http_request(address, path, {**(headers or {}),
                                                                                  "Host": server_name}))
        return parse_http_response(raw)

    def close(self) -> None:
        pass


def _fsync_dir(directory: str) -> None:
    """The rename itself on disk: without it a power loss may bring back the old file (or
    none) although the new one's bytes were synced."""
    fd = os.open(directory or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
