"""`deployctl hosts trust` against the real test sshd (security review, item 12): the scan
sends no login, its fingerprint is what `ssh-keygen -lf` prints for the server's host key,
the file it writes lets a connection through, and a wrong pinned fingerprint is refused,
by `hosts trust` and by the connection."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from deployctl.config import load_config
from deployctl.errors import ConnectError, ExitCode
from deployctl.services.hosts import connectors_for, known_hosts_path
from tests.integration.test_deploy_local import run_cli

pytestmark = pytest.mark.integration
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHKfMyfRcZgJ/W72+ENujzOjzaGfvgAoHUKwLSjQLd9Y"  # not the server's
OTHER_FP = "SHA256:Ich37huQyTu6nk03iKQ55vc3zJwqrBZUET3Me0l8ewo"


def _config(tmp_path: Path, ssh_host) -> Path:
    config = tmp_path / "deploy.toml"
    config.write_text(f"""app = "trustprobe"
[registry]
server = "127.0.0.1:5999"
[services.web]
context = "."
port = 8000
routed = true
[environments.staging]
target = "ssh"
hosts = ["{ssh_host.host}:{ssh_host.port}"]
[environments.staging.ssh]
user = "{ssh_host.user}"
key_file = "{ssh_host.key_file}"
""")
    return config


def _accepted_logins(ssh_host) -> int:
    return Path(ssh_host.daemon.log_file).read_text(errors="replace").count("Accepted publickey")


def test_trust_scans_without_login_pins_the_key_and_connections_use_it(ssh_host, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    config = _config(tmp_path, ssh_host)
    loaded = load_config(config)
    path = known_hosts_path(loaded, "staging")
    host_pub = Path(ssh_host.key_file).with_name("ssh_host_ed25519_key.pub")
    expected = subprocess.run(["ssh-keygen", "-lf", str(host_pub)], capture_output=True, text=True,
                              check=True).stdout.split()[1]

    # Not pinned yet: the connection is refused, naming the missing file and the command.
    with pytest.raises(ConnectError, match="does not exist") as refused:
        connectors_for(loaded, "staging")[0].connect()
    assert "deployctl hosts trust --env" in refused.value.hint

    wrong = run_cli(config, "hosts", "trust", "--env", "staging", "--yes", "--fingerprint", OTHER_FP)
    assert wrong.returncode == ExitCode.CONNECT, wrong.stderr
    assert expected in wrong.stderr and "Traceback" not in wrong.stderr and not os.path.exists(path)

    logins = _accepted_logins(ssh_host)
    done = run_cli(config, "hosts", "trust", "--env", "staging", "--yes", "--fingerprint", expected, "--json")
    assert done.returncode == 0, done.stderr
    assert _accepted_logins(ssh_host) == logins  # the scan never logged in
    [host] = json.loads(done.stdout.strip().splitlines()[-1])["hosts"]
    assert (host["fingerprint"], host["status"]) == (expected, "new")
    assert Path(path).read_text() == f"[{ssh_host.host}]:{ssh_host.port} {ssh_host.host_public_key}\n"
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"

    conn = connectors_for(loaded, "staging")[0].connect()  # verified against the written file
    try:
        assert conn.run(["echo", "pinned"]).stdout.strip() == "pinned"
    finally:
        conn.close()
    assert _accepted_logins(ssh_host) > logins  # what the count above would have shown for a login

    # The file pins another key (as after a man in the middle took the address): refused.
    Path(path).write_text(f"[{ssh_host.host}]:{ssh_host.port} {OTHER}\n")
    with pytest.raises(ConnectError, match=re.escape(f"HOST KEY CHANGED: offered ssh-ed25519 {expected}")):
        connectors_for(loaded, "staging")[0].connect()
    # and hosts trust shows the change before it writes anything
    again = run_cli(config, "hosts", "trust", "--env", "staging", "--yes", "--fingerprint", expected, "--json")
    assert again.returncode == 0, again.stderr
    [host] = json.loads(again.stdout.strip().splitlines()[-1])["hosts"]
    assert (host["status"], host["previous"]) == ("CHANGED", OTHER_FP)
