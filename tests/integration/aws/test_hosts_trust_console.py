"""`deployctl hosts trust --from-console` (security review, item 12): hosts found on EC2 are
trusted only when the key the real test sshd offers is one the instance printed on its
console (cloud-init's SSH HOST KEY KEYS block), read with GetConsoleOutput over real HTTP.

moto answers GetConsoleOutput with one fixed text for every instance (a 2006 kernel log, no
keys), so this test runs its own moto server in a thread of this process and swaps that text
for a cloud-init block; the stock text is the "published nothing" case. Everything else —
boto3, botocore's base64 decoding, discovery by tags, the scan, the file — is the real path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from deployctl.errors import ExitCode
from tests.integration.aws.moto_state import REGION, launch
from tests.integration.test_deploy_local import run_cli
from tests.support.moto_server import MotoServer

pytestmark = pytest.mark.integration
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHKfMyfRcZgJ/W72+ENujzOjzaGfvgAoHUKwLSjQLd9Y"


@pytest.fixture(scope="module")
def console_moto():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield MotoServer(f"http://{host}:{port}")
    server.stop()


def _console(monkeypatch, keys: list[str] | None) -> None:
    import moto.ec2.responses.general as general

    if keys is None:
        return  # moto's own text
    monkeypatch.setattr(general, "SAMPLE_CONSOLE_OUTPUT", "\n".join([
        "[   11.9] cloud-init[1234]: Cloud-init v. 22.2.2 running 'modules:final'",
        "-----BEGIN SSH HOST KEY KEYS-----", *(f"{key} root@ip-10-20-1-5" for key in keys),
        "-----END SSH HOST KEY KEYS-----", ""]))


def _config(tmp_path: Path, ssh_host, app: str) -> Path:
    config = tmp_path / "deploy.toml"
    config.write_text(f"""app = "{app}"
[registry]
server = "127.0.0.1:5999"
[services.web]
context = "."
port = 8000
routed = true
[environments.production]
target = "ssh"
aws_region = "{REGION}"
discover = {{ tags = {{ Role = "{app}", Env = "production" }}, address = "tag:DeployAddress" }}
[environments.production.ssh]
user = "{ssh_host.user}"
key_file = "{ssh_host.key_file}"
""")
    return config


@pytest.mark.parametrize("published, outcome", [
    ("server", "trusted"), ("other", "did not publish"), (None, "holds no SSH host keys")])
def test_from_console_trusts_only_the_key_the_instance_published(
        console_moto, ssh_host, tmp_path, monkeypatch, published, outcome):
    import boto3

    app = f"console{published or 'none'}"
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=console_moto.endpoint,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    instance = launch(ec2, app, DeployAddress=f"{ssh_host.host}:{ssh_host.port}")
    _console(monkeypatch, {"server": [OTHER, ssh_host.host_public_key], "other": [OTHER], None: None}[published])
    config = _config(tmp_path, ssh_host, app)
    environ = {**console_moto.environ(), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    path = tmp_path / "xdg" / "deployctl" / "known_hosts" / f"{app}-production"

    done = run_cli(config, "hosts", "trust", "--env", "production", "--yes", "--from-console", "--json", env=environ)
    assert "Traceback" not in done.stderr
    if outcome != "trusted":
        assert done.returncode == ExitCode.CONNECT and outcome in done.stderr, done.stderr
        assert not path.exists()
        return
    assert done.returncode == 0, done.stderr
    [host] = json.loads(done.stdout.strip().splitlines()[-1])["hosts"]
    assert (host["instance"], host["fingerprint"]) == (instance, ssh_host.host_key_fingerprint)
    assert path.read_text() == f"[{ssh_host.host}]:{ssh_host.port} {ssh_host.host_public_key}\n"
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    status = run_cli(config, "hosts", "--env", "production", env=environ)  # discovery still answers
    assert status.returncode == 0 and instance in status.stdout
