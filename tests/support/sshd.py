"""A private sshd on a loopback port in front of this machine (and its Docker engine)."""
from __future__ import annotations

import base64
import getpass
import hashlib
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.net import free_port, ssh_banner, wait_until
from tests.support.processes import Daemon

SSHD = "/usr/sbin/sshd"  # sshd insists on being started by absolute path


@dataclass
class SshHost:
    host: str
    port: int
    user: str
    key_file: str
    known_hosts_file: str
    host_key_fingerprint: str  # "SHA256:..." as `ssh-keygen -l` prints it
    host_public_key: str  # "ssh-ed25519 AAAA..."
    daemon: Daemon | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()


def fingerprint(public_key_line: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key line ("TYPE BASE64 [comment]")."""
    blob = base64.b64decode(public_key_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True)
    return Path(f"{path}.pub").read_text().strip()


def start_sshd(workdir: Path, timeout: float = 30.0) -> SshHost:
    """Start sshd with its own host key, one authorised client key and a known_hosts file
    that pins the host key. Key auth only; logs in as the user running the tests."""
    if not os.path.exists(SSHD):
        raise FileNotFoundError(f"{SSHD} is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    host_public = _keygen(workdir / "ssh_host_ed25519_key", "deployctl-test-host")
    client_public = _keygen(workdir / "id_ed25519", "deployctl-test-client")
    (workdir / "authorized_keys").write_text(client_public + "\n")
    os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory

    port = free_port()
    config = workdir / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {workdir / 'ssh_host_ed25519_key'}",
        f"AuthorizedKeysFile {workdir / 'authorized_keys'}",
        f"PidFile {workdir / 'sshd.pid'}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        # Under /tmp (world-writable) sshd's ownership checks would refuse the key files.
        "StrictModes no",
        "UsePAM no",
        "Subsystem sftp internal-sftp",
        "LogLevel VERBOSE",
        # A session whose client went behind tests/faults/test_ssh_faults.py's iptables REJECT
        # never hears its FIN: without these it lived on after the run (sshd and internal-sftp,
        # reparented to init, one per cell that cut a connection). Gone within 15 s now.
        "ClientAliveInterval 5",
        "ClientAliveCountMax 3",
        "",
    ]))
    daemon = Daemon([SSHD, "-D", "-e", "-f", str(config)], workdir / "sshd.log")
    try:
        wait_until(lambda: (ssh_banner("127.0.0.1", port) or "").startswith("SSH-2.0"), timeout,
                   f"sshd on port {port} (log {daemon.log_file})", alive=daemon.exit_reason)
    except BaseException:
        daemon.stop()
        raise
    known_hosts = workdir / "known_hosts"
    key_type, key_b64 = host_public.split()[:2]
    known_hosts.write_text(f"[127.0.0.1]:{port} {key_type} {key_b64}\n")
    return SshHost(host="127.0.0.1", port=port, user=getpass.getuser(),
                   key_file=str(workdir / "id_ed25519"), known_hosts_file=str(known_hosts),
                   host_key_fingerprint=fingerprint(host_public),
                   host_public_key=f"{key_type} {key_b64}", daemon=daemon)
