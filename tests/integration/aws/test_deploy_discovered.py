"""End to end through the CLI: a deploy whose hosts come from EC2 discovery (moto instances
whose address tag holds the real test sshd's 127.0.0.1:PORT), whose database password comes
from SSM, whose DATABASE_HOST comes from RDS, and whose host logs in to the registry with
an ECR token that never shows on a command line or in the output."""

from __future__ import annotations

import json
import urllib.request

import pytest

from deployctl.plan.lifecycle.releases import LIVE
from tests.integration.aws.moto_state import REGION, create_rds_instance, launch
from tests.integration.deploy_fixtures import docker, free_port, probe_config, remove_app, unique_app, write_probe_artifacts
from tests.integration.test_deploy_local import run_cli
from tests.integration.test_deploy_ssh import push

pytestmark = pytest.mark.integration
PASSWORD = "ssm-probe-password-7f3a"


def test_deploy_to_discovered_hosts_with_ssm_secret_rds_endpoint_and_ecr_login(
        aws, boto, ssh_host, registry, probe_images, tmp_path):
    app, port = unique_app(), free_port()
    address = f"{ssh_host.host}:{ssh_host.port}"
    ec2 = boto("ec2")
    launch(ec2, app, DeployAddress=address)
    # Both would make the deploy fail (nothing listens there) if discovery took them.
    launch(ec2, app, state="stopped", DeployAddress="127.0.0.1:1")
    launch(ec2, app, env="staging", DeployAddress="127.0.0.1:2")
    boto("ssm").put_parameter(Name=f"/{app}/production/PROBE_DB_PASSWORD", Value=PASSWORD, Type="SecureString")
    endpoint = create_rds_instance(boto("rds"), f"{app}-db")
    token = boto("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]

    # A generous health timeout: on a busy two-core machine, 5 s is not always enough.
    config = probe_config(tmp_path, app, port=port, env_name="production", target="ssh", health_timeout=30,
                          extra_env=f"""
aws_region = "{REGION}"
secrets = "ssm:/{app}/production/"
discover = {{ tags = {{ Role = "{app}", Env = "production" }}, address = "tag:DeployAddress" }}
database = {{ rds_instance = "{app}-db" }}
[environments.production.ssh]
user = "{ssh_host.user}"
key_file = "{ssh_host.key_file}"
known_hosts = "{ssh_host.known_hosts_file}"
""", registry=f'[registry]\nprovider = "ecr"\nserver = "{registry.address}"\nnamespace = "{app}"\n'
              f'region = "{REGION}"\n')
    repos = {n: f"{registry.address}/{app}/{n}" for n in ("backend", "frontend", "proxy")}
    try:
        digests = {n: push(image, repos[n], "ddddddd4") for n, image in
                   (("backend", probe_images.good), ("frontend", probe_images.good), ("proxy", probe_images.proxy))}
        write_probe_artifacts(config, app, "ddddddd4", probe_images.good, probe_images.good, probe_images.proxy,
                              digests=digests, repositories=repos)
        plan = run_cli(config, "deploy", "--env", "production", "--dry-run", "--json")
        assert plan.returncode == 0, plan.stdout + plan.stderr
        steps = json.loads(plan.stdout.strip().splitlines()[-1])["hosts"][address]
        # The token goes to the host on stdin, never in argv, into this command's own docker
        # client config (removed after the pull: docs/security.md, item 1).
        assert ["docker", "--config", "<REGISTRY_CONFIG>", "login", "--username", "AWS", "--password-stdin",
                registry.address] in [s["argv"] for s in steps]

        done = run_cli(config, "deploy", "--env", "production", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        lines = [json.loads(line) for line in done.stdout.strip().splitlines()]
        result = lines[-1]
        assert [(h["host"], h["outcome"]) for h in result["hosts"]] == [(address, LIVE)]
        logins = [e for e in lines if e.get("step") == "registry login" and e.get("event") == "step_done"]
        assert [e["host"] for e in logins] == [address]
        for secret in (PASSWORD, token, "auth-token"):  # moto's token decodes to AWS:<account>-auth-token
            assert secret not in done.stdout + done.stderr

        body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=5).read())
        assert body["frontend"]["release"] == body["backend"]["release"] == result["release"]
        env = json.loads(docker("inspect", "--format", "{{json .Config.Env}}",
                                f"{app}-production-backend-{result['release']}"))
        assert f"DATABASE_HOST={endpoint['Address']}" in env and f"DATABASE_PORT={endpoint['Port']}" in env
        [secret_file] = (tmp_path / "state").glob(f"**/{result['release']}/**/PROBE_DB_PASSWORD")
        assert secret_file.read_text() == PASSWORD and secret_file.stat().st_mode & 0o777 == 0o600
    finally:
        remove_app(app)
        docker("logout", registry.address, check=False)  # the host (this machine) logged in as root
