"""A host's registry login does not outlive its pull (services/lifecycle/preflight.py): a real pull
from a registry that requires a password, through the SSH connector (the machine's own sshd
in front of its engine), leaves no credential for that registry on the host."""

from __future__ import annotations

import glob
import io
import json
import os
import subprocess
import tarfile

import pytest

from deployctl.adapters.ssh import SSHConnector
from deployctl.secrets import Secret
from deployctl.services.lifecycle import preflight

pytestmark = pytest.mark.integration


def _tiny_image(name: str) -> None:
    """A one-file image (docker import of a tar), so the push and pull take a moment."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        body = name.encode()
        info = tarfile.TarInfo("marker")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    subprocess.run(["docker", "import", "-", name], input=data.getvalue(), check=True, capture_output=True)


def _docker(*args: str, stdin: bytes | None = None) -> str:
    return subprocess.run(["docker", *args], input=stdin, check=True, capture_output=True).stdout.decode()


def test_no_registry_credential_remains_on_the_host_after_the_pull(ssh_host, auth_registry, tmp_path):
    registry, password = auth_registry, auth_registry.password
    repository = f"{registry.address}/login-scope/{os.getpid()}"
    _tiny_image(f"{repository}:v1")
    pusher = str(tmp_path / "pusher")  # this test's own client config: ~/.docker stays untouched
    _docker("--config", pusher, "login", "--username", registry.username, "--password-stdin", registry.address,
            stdin=password.encode())
    _docker("--config", pusher, "push", f"{repository}:v1")
    digest = json.loads(_docker("image", "inspect", "--format", "{{json .RepoDigests}}", f"{repository}:v1"))[0]
    _docker("rmi", f"{repository}:v1")  # the pull below must fetch it, with the login

    conn = SSHConnector(ssh_host.host, port=ssh_host.port, user=ssh_host.user, key_file=ssh_host.key_file,
                        known_hosts=ssh_host.known_hosts_file).connect()
    home = conn.run(["sh", "-c", 'echo "$HOME"']).stdout.strip()
    # What a deployctl killed yesterday between login and removal would have left.
    stale = f"/tmp/deployctl-registry.stale{os.getpid()}"
    os.makedirs(stale, mode=0o700, exist_ok=True)
    subprocess.run(["touch", "-d", "2 days ago", stale], check=True)
    try:
        config_dir = preflight.registry_login(conn, lambda e: None, registry.address, registry.username,
                                              Secret(password))
        assert oct(os.stat(config_dir).st_mode & 0o777) == "0o700"
        preflight.pull(conn, lambda e: None, [digest])
        assert conn.run(["docker", "image", "inspect", digest]).ok  # pulled with the login
    finally:
        conn.close()
        subprocess.run(["docker", "rmi", digest], capture_output=True)
    assert not os.path.exists(config_dir)
    assert not os.path.exists(stale)  # swept by the login
    user_config = os.path.join(home, ".docker", "config.json")
    if os.path.exists(user_config):
        with open(user_config) as handle:
            assert registry.address not in json.load(handle).get("auths", {})
    for path in glob.glob("/tmp/deployctl-registry.*/config.json"):  # another command's, never ours
        with open(path) as handle:
            assert password not in handle.read()
