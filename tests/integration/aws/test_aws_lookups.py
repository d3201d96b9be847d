"""Discovery, both AWS secret sources, the RDS endpoint and the ECR token against moto's
server over real HTTP, through deployctl's own adapter; and AWS failures (no credentials,
access denied, throttling after retries, unreachable) as exit 4 with a clear message."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deployctl.adapters.aws import ecr_login
from deployctl.artifacts import Artifacts, ImageArtifact, write_artifacts
from deployctl.cli.main import main
from deployctl.config import load_config
from deployctl.errors import ConfigError, ExitCode
from deployctl.plan.lifecycle.containers import release_containers
from deployctl.secrets import redactor
from deployctl.services.data.database_endpoint import with_database_endpoint
from deployctl.services.hosts import connectors_for
from deployctl.services.secret_sources import environment_source, fetch_secrets
from deployctl.services.env import Env
from tests.integration.aws.moto_state import REGION, create_rds_instance, launch

pytestmark = pytest.mark.integration


def write_config(tmp_path: Path, role: str, *, secrets: str = "env", database: str = "",
                 address: str = "tag:Ssh", service_secrets: str = "[]", region: str | None = REGION) -> Path:
    path = tmp_path / "deploy.toml"
    path.write_text(f"""
app = "shop"
[registry]
server = "127.0.0.1:5999"
[services.web]
context = "web"
routed = true
secrets = {service_secrets}
[environments.production]
target = "ssh"
{f'aws_region = "{region}"' if region else ""}
secrets = "{secrets}"
state_dir = "{tmp_path / 'state'}"
discover = {{ tags = {{ Role = "{role}", Env = "production" }}, address = "{address}" }}
{database}
""")
    return path


def cli(capsys, config: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["--config", str(config), *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def role() -> str:
    return "r" + uuid.uuid4().hex[:10]  # moto's state is shared by the session: tags keep tests apart


def test_discovery_lists_running_tagged_instances_in_stable_order(aws, boto, role, tmp_path, capsys):
    ec2 = boto("ec2")
    far = launch(ec2, role, Ssh="10.9.0.20", Name="web-b")
    near = launch(ec2, role, Ssh="10.9.0.3", Name="web-a")
    launch(ec2, role, state="stopped", Ssh="10.9.0.1")
    launch(ec2, role, env="staging", Ssh="10.9.0.2")
    config = write_config(tmp_path, role)

    code, out, err = cli(capsys, config, "hosts", "--env", "production", "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["source"] == "discover"
    assert [(h["address"], h["instance"], h["name"]) for h in result["hosts"]] == [
        ("10.9.0.3", near, "web-a"), ("10.9.0.20", far, "web-b")]

    code, out, _ = cli(capsys, config, "hosts", "--env", "production")
    assert code == 0 and "production: 2 hosts (running EC2 instances with the discover tags)" in out
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["10.9.0.3", "10.9.0.20"]
    # Every verb gets its connectors from the same discovery.
    conns = connectors_for(load_config(config), "production")
    assert [c.host for c in conns] == ["10.9.0.3", "10.9.0.20"]


def test_private_ip_is_the_default_address(aws, boto, role, tmp_path):
    ec2 = boto("ec2")
    launch(ec2, role)
    private = ec2.describe_instances(Filters=[{"Name": "tag:Role", "Values": [role]}])[
        "Reservations"][0]["Instances"][0]["PrivateIpAddress"]
    config = write_config(tmp_path, role, address="private_ip")
    assert [c.host for c in connectors_for(load_config(config), "production")] == [private]


def test_no_running_match_exits_3_and_deploy_touches_no_host(aws, boto, role, tmp_path, capsys):
    stopped = launch(boto("ec2"), role, state="stopped", Ssh="10.9.0.1")
    config = write_config(tmp_path, role)
    code, _, err = cli(capsys, config, "hosts", "--env", "production")
    assert code == ExitCode.CONFIG
    assert (f"error: environments.production.discover: no running EC2 instance in {REGION} has tags "
            f"Env=production, Role={role} (matching but not running: {stopped} stopped)") in err

    digest = "sha256:" + "b" * 64
    images = {n: ImageArtifact(f"127.0.0.1:5999/{n}", "abcdef12", f"sha256:{n}", digest=digest) for n in ("web", "proxy")}
    write_artifacts(tmp_path / ".deployctl" / "build.json",
                    Artifacts("shop", "abcdef12", False, "abcdef12", "2026-11-27T00:00:00Z", images))
    code, out, err = cli(capsys, config, "deploy", "--env", "production")
    assert code == ExitCode.CONFIG, out + err
    assert "no running EC2 instance" in err and not (tmp_path / "state").exists()


def test_ssm_secure_strings_are_decrypted_and_a_missing_one_is_named_before_any_host(
        aws, boto, role, tmp_path, capsys):
    ssm = boto("ssm")
    ssm.put_parameter(Name=f"/{role}/production/DB_PASSWORD", Value="ssm-db-value-1", Type="SecureString")
    ssm.put_parameter(Name=f"/{role}/production/API_TOKEN", Value="ssm-api-value-2", Type="SecureString")
    config = write_config(tmp_path, role, secrets=f"ssm:/{role}/production/")
    loaded = load_config(config)
    production = loaded.environment("production")
    values = fetch_secrets(environment_source(loaded.config, production), ["DB_PASSWORD", "API_TOKEN"])
    assert {k: v.reveal() for k, v in values.items()} == {"DB_PASSWORD": "ssm-db-value-1",
                                                          "API_TOKEN": "ssm-api-value-2"}
    assert redactor("ssm-db-value-1") == "***"

    # Through the CLI: the missing secret is named with its parameter; discovery (which
    # would fail: no instance has these tags) is never reached, nor any host.
    config = write_config(tmp_path, role, secrets=f"ssm:/{role}/production/",
                          service_secrets='["DB_PASSWORD", "SESSION_KEY"]')
    code, out, err = cli(capsys, config, "deploy", "--env", "production")
    assert code == ExitCode.CONFIG
    assert (f"error: secret 'SESSION_KEY' is missing from SSM Parameter Store (no parameter "
            f"/{role}/production/SESSION_KEY in {REGION}) for environment 'production'") in err
    assert "no running EC2 instance" not in err and "ssm-db-value-1" not in out + err


def test_secrets_manager_json_secret_by_key_and_missing_keys_or_secret_named(aws, boto, role, tmp_path):
    boto("secretsmanager").create_secret(Name=f"{role}/production",
                                         SecretString=json.dumps({"DB_PASSWORD": "sm-db-value-1", "PIN": 4321}))
    loaded = load_config(write_config(tmp_path, role, secrets=f"secretsmanager:{role}/production"))
    source = environment_source(loaded.config, loaded.environment("production"))
    values = fetch_secrets(source, ["DB_PASSWORD", "PIN"])
    assert (values["DB_PASSWORD"].reveal(), values["PIN"].reveal()) == ("sm-db-value-1", "4321")
    with pytest.raises(ConfigError) as info:
        fetch_secrets(source, ["DB_PASSWORD", "SESSION_KEY"])
    assert info.value.problems == [
        f"secret 'SESSION_KEY' is missing from Secrets Manager secret '{role}/production' in {REGION} (no such key)"]

    loaded = load_config(write_config(tmp_path, role, secrets=f"secretsmanager:{role}/nope"))
    with pytest.raises(ConfigError) as info:
        fetch_secrets(environment_source(loaded.config, loaded.environment("production")), ["DB_PASSWORD"])
    assert info.value.problems == [f"secret 'DB_PASSWORD' is missing from Secrets Manager (there is no secret "
                                   f"'{role}/nope' in {REGION})"]


def test_rds_endpoint_becomes_the_services_database_env(aws, boto, role, tmp_path):
    address = create_rds_instance(boto("rds"), f"{role}-db")
    config = write_config(tmp_path, role, database=f'database = {{ rds_instance = "{role}-db" }}')
    env = with_database_endpoint(Env.resolve(load_config(config), "production"))
    production = env.settings
    assert production.env == {"DATABASE_HOST": address["Address"], "DATABASE_PORT": str(address["Port"])}
    assert env.loaded.environment("production") is production  # the Env's config is the one it says
    [web] = release_containers(env.config, production, "production", "20261206-010000-0000001", None,
                               {"web": "img"})
    assert web.env["DATABASE_HOST"] == address["Address"] and web.env["DATABASE_PORT"] == "3306"

    config = write_config(tmp_path, role, database='database = { rds_instance = "no-such-db" }')
    with pytest.raises(ConfigError) as info:
        with_database_endpoint(Env.resolve(load_config(config), "production"))
    assert info.value.exit_code == ExitCode.CONFIG
    assert info.value.problems == ["environments.production.database.rds_instance: there is no RDS DB instance "
                                   f"'no-such-db' in {REGION}"]


def test_ecr_token_is_split_and_masked(aws):
    username, password = ecr_login(REGION)
    assert username == "AWS" and len(password.reveal()) > 8
    assert redactor(f"login {password.reveal()}") == "login ***"


# -- failures --------------------------------------------------------------------------------

class FakeAws:
    """An AWS JSON-protocol endpoint that answers every request with one error, and counts."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        self.requests = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                fake.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.dumps({"__type": error_type, "message": message}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ssm_config(aws, tmp_path, role) -> Path:
    return write_config(tmp_path, role, secrets=f"ssm:/{role}/production/", service_secrets='["DB_PASSWORD"]')


def test_throttling_is_retried_with_backoff_then_exit_4(ssm_config, monkeypatch, capsys):
    fake = FakeAws(400, "ThrottlingException", "Rate exceeded")
    monkeypatch.setenv("DEPLOYCTL_AWS_ENDPOINT_URL", fake.endpoint)
    try:
        code, _, err = cli(capsys, ssm_config, "deploy", "--env", "production")
    finally:
        fake.close()
    assert code == ExitCode.CONNECT
    assert fake.requests == 3  # botocore's standard mode: three attempts
    assert f"error: AWS throttled SSM GetParameters for /" in err
    assert f"in {REGION} (3 attempts): ThrottlingException: Rate exceeded" in err


def test_access_denied_exits_4_naming_the_permission(ssm_config, monkeypatch, capsys):
    fake = FakeAws(400, "AccessDeniedException", "User: arn:aws:iam::1:user/ci is not authorized")
    monkeypatch.setenv("DEPLOYCTL_AWS_ENDPOINT_URL", fake.endpoint)
    try:
        code, _, err = cli(capsys, ssm_config, "deploy", "--env", "production")
    finally:
        fake.close()
    assert code == ExitCode.CONNECT and fake.requests == 1
    assert f"error: access denied: SSM GetParameters for /" in err
    assert "hint: the AWS identity needs ssm:GetParameters (and kms:Decrypt)" in err


def test_rejected_credentials_exit_4(ssm_config, monkeypatch, capsys):
    fake = FakeAws(400, "UnrecognizedClientException", "The security token included in the request is invalid.")
    monkeypatch.setenv("DEPLOYCTL_AWS_ENDPOINT_URL", fake.endpoint)
    try:
        code, _, err = cli(capsys, ssm_config, "deploy", "--env", "production")
    finally:
        fake.close()
    assert code == ExitCode.CONNECT and "error: AWS rejected the credentials for SSM GetParameters" in err


def test_no_credentials_exits_4(aws, role, tmp_path, monkeypatch, capsys):
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it keeps the credentials it found first
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, _, err = cli(capsys, write_config(tmp_path, role), "hosts", "--env", "production")
    assert code == ExitCode.CONNECT
    assert err.splitlines() == [
        f"error: no AWS credentials for EC2 DescribeInstances in {REGION}",
        "hint: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use an instance role"]


def test_unreachable_endpoint_exits_4(aws, role, tmp_path, monkeypatch, capsys):
    closed = FakeAws(400, "x", "x")
    closed.close()  # nothing listens on its port any more
    monkeypatch.setenv("DEPLOYCTL_AWS_ENDPOINT_URL", closed.endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code, _, err = cli(capsys, write_config(tmp_path, role), "hosts", "--env", "production")
    assert code == ExitCode.CONNECT
    assert f"error: cannot reach AWS for EC2 DescribeInstances in {REGION}: Could not connect" in err


def test_no_region_anywhere_is_a_config_error(aws, role, tmp_path, capsys):
    config = write_config(tmp_path, role, secrets="ssm:/shop/", service_secrets='["DB_PASSWORD"]', region=None)
    code, _, err = cli(capsys, config, "deploy", "--env", "production")
    assert code == ExitCode.CONFIG
    assert err.splitlines() == ["error: no AWS region for SSM GetParameters for /shop/DB_PASSWORD",
                                "hint: set aws_region in the environment of deploy.toml, or AWS_REGION"]
