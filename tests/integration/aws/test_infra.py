"""`deployctl infra` against moto's server over real HTTP: plan on an empty account, apply,
a capacity change, a refused database replacement, destroy; and the environment deploying
onto what it made (discovery, database endpoint, password) with no more configuration.

moto's CloudFormation gaps (docs/infra.md): change sets carry no Replacement field (our
own table flags replacements), outputs of a stack made through a change set are empty (the
database endpoint comes from DescribeDBInstances), DeletionProtection in a template is
ignored (the test sets it with ModifyDBInstance), and DeleteStack fails on the VPC with
DependencyViolation after deleting most resources."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from deployctl.cli.main import main
from deployctl.config import load_config
from deployctl.secrets import redactor
from deployctl.services.data.database_endpoint import with_database_endpoint
from deployctl.services.cloud.discovery import discover_hosts
from deployctl.services.secret_sources import environment_source, fetch_secrets
from deployctl.services.env import Env
from tests.integration.aws.moto_state import REGION

pytestmark = pytest.mark.integration
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG5vdC1hLXJlYWwta2V5LWp1c3QtYS10ZXN0 deploy@ci"


def write_config(tmp_path: Path, app: str, *, desired: int = 2, username: str = "app", secrets: str | None = None,
                 deletion_protection: bool = False, load_balancer: bool = True,
                 certificate_arn: str | None = None) -> Path:
    """certificate_arn: the load balancer's (an ACM certificate in moto); None: a certificate
    made here, in moto's ACM, by the same endpoint deployctl uses."""
    if load_balancer and certificate_arn is None:
        certificate_arn = acm_certificate(app)
    (tmp_path / "deploy.pub").write_text(KEY + "\n")
    path = tmp_path / "deploy.toml"
    path.write_text(f"""
app = "{app}"
[registry]
server = "127.0.0.1:5999"
[services.web]
context = "web"
routed = true
secrets = ["DATABASE_PASSWORD"]
[environments.production]
target = "ssh"
secrets = "{secrets or f'ssm:/{app}/production/'}"
[environments.production.infra]
region = "{REGION}"
ami = "ami-12345678"
admin_cidr = "203.0.113.0/24"
ssh_public_key_file = "deploy.pub"
root_device = "/dev/sda1"          # moto's images' root device (real ones: /dev/xvda on Amazon Linux)
hosts = {{ min = 1, max = 4, desired = {desired} }}
{f'load_balancer = {{ certificate_arn = "{certificate_arn}" }}' if load_balancer else ""}
[environments.production.infra.database]
engine = "mariadb"
engine_version = "10.11"
username = "{username}"
deletion_protection = {str(deletion_protection).lower()}
""")
    return path


_certificates: dict[str, str] = {}


def acm_certificate(app: str) -> str:
    """The app's certificate in moto's ACM (its HTTPS listeners must name one that exists),
    made once per app through the endpoint the `aws` fixture points this process at."""
    import os

    import boto3

    if app not in _certificates:
        acm = boto3.client("acm", region_name=REGION, endpoint_url=os.environ["DEPLOYCTL_AWS_ENDPOINT_URL"])
        _certificates[app] = acm.request_certificate(DomainName=f"{app}.example.com",
                                                     ValidationMethod="DNS")["CertificateArn"]
    return _certificates[app]


def cli(capsys, config: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["--config", str(config), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def result_of(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def app() -> str:
    return "i" + uuid.uuid4().hex[:10]  # moto's state is shared by the session


def stack(boto, name: str) -> dict | None:
    stacks = [s for s in boto("cloudformation").list_stacks()["StackSummaries"]
              if s["StackName"] == name and s["StackStatus"] != "DELETE_COMPLETE"]
    return stacks[0] if stacks else None


def running(boto, app: str, tag: str = "deployctl:environment") -> list[dict]:
    """The app's running hosts (tag deployctl:environment), or its bastion (deployctl:bastion)."""
    pages = boto("ec2").describe_instances(Filters=[{"Name": "tag:deployctl:app", "Values": [app]},
                                                    {"Name": f"tag:{tag}", "Values": ["production"]},
                                                    {"Name": "instance-state-name", "Values": ["running"]}])
    return [i for r in pages["Reservations"] for i in r["Instances"]]


def test_plan_on_an_empty_account_lists_every_resource_and_changes_nothing(aws, boto, app, tmp_path, capsys):
    config = write_config(tmp_path, app)
    code, out, err = cli(capsys, config, "infra", "plan", "--env", "production", "--json")
    assert code == 0, err
    result = result_of(out)
    code, body, _ = cli(capsys, config, "infra", "template", "--env", "production")
    resources = json.loads(body)["Resources"]
    assert result["exists"] is False
    assert sorted(c["logical_id"] for c in result["changes"]) == sorted(resources)
    assert {c["action"] for c in result["changes"]} == {"add"}
    assert {"Vpc", "HostGroup", "LoadBalancer", "TargetGroup", "Database"} <= set(resources)
    # Nothing was made: no stack (not even the empty one a CREATE change set leaves), no hosts, no password.
    assert stack(boto, f"{app}-production") is None
    assert running(boto, app) == []
    assert boto("ssm").get_parameters(Names=[f"/{app}/production/DATABASE_PASSWORD"])["Parameters"] == []

    code, out, _ = cli(capsys, config, "infra", "plan", "--env", "production")
    assert code == 0 and f"stack {app}-production in {REGION}: would create {len(resources)} resources" in out
    assert "+ add" in out and "Database" in out


def test_apply_creates_the_stack_and_hosts_lists_the_groups_instances(aws, boto, app, tmp_path, capsys):
    certificate = acm_certificate(app)
    config = write_config(tmp_path, app, certificate_arn=certificate)
    code, out, err = cli(capsys, config, "infra", "apply", "--env", "production", "--json")
    assert code == 0, out + err
    lines = [json.loads(line) for line in out.strip().splitlines()]
    result = lines[-1]
    assert {c["action"] for c in result["changes"]} == {"add"}
    assert any(e.get("step") == "infra apply" and e.get("event") == "step_progress" for e in lines)
    [db] = boto("rds").describe_db_instances(DBInstanceIdentifier=f"{app}-production-db")["DBInstances"]
    assert result["outputs"]["DatabaseAddress"] == db["Endpoint"]["Address"]
    assert result["outputs"]["DatabasePasswordLocation"] == f"SSM parameter /{app}/production/DATABASE_PASSWORD"
    assert db["PubliclyAccessible"] is False and db["MasterUsername"] == "app"
    password = boto("ssm").get_parameter(Name=f"/{app}/production/DATABASE_PASSWORD",
                                         WithDecryption=True)["Parameter"]
    assert password["Type"] == "SecureString" and len(password["Value"]) == 32
    assert password["Value"] not in out + err

    instances = running(boto, app)
    assert len(instances) == 2
    code, out, err = cli(capsys, config, "hosts", "--env", "production", "--json")
    assert code == 0, err
    hosts = result_of(out)
    assert hosts["source"] == "infra"
    assert sorted(h["instance"] for h in hosts["hosts"]) == sorted(i["InstanceId"] for i in instances)
    assert sorted(h["address"] for h in hosts["hosts"]) == sorted(i["PrivateIpAddress"] for i in instances)

    # Private by default: the hosts have no public IP; the bastion, in a public subnet, is the
    # jump host every SSH connection of the environment goes through (ssh.proxy_jump unset).
    assert all(not i.get("PublicIpAddress") for i in instances), instances
    [bastion] = running(boto, app, tag="deployctl:bastion")
    assert bastion["PublicIpAddress"]
    from deployctl.services.hosts import connectors_for

    connectors = connectors_for(load_config(config), "production")
    assert sorted(c.address for c in connectors) == sorted(i["PrivateIpAddress"] for i in instances)
    assert {(c.jump.address, c.jump.port, c.jump.user) for c in connectors} == {(bastion["PublicIpAddress"], 22, "deploy")}
    # HTTPS with the certificate; HTTP redirected to it.
    balancer = boto("cloudformation").describe_stack_resource(StackName=f"{app}-production", LogicalResourceId=
                                                             "LoadBalancer")["StackResourceDetail"]["PhysicalResourceId"]
    listeners = {l["Port"]: l for l in boto("elbv2").describe_listeners(LoadBalancerArn=balancer)["Listeners"]}
    assert sorted((port, l["Protocol"]) for port, l in listeners.items()) == [(80, "HTTP"), (443, "HTTPS")]
    assert [c["CertificateArn"] for c in listeners[443]["Certificates"]] == [certificate]
    assert listeners[443]["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert [(a["Type"], a["RedirectConfig"]["Protocol"], a["RedirectConfig"]["StatusCode"])
            for a in listeners[80]["DefaultActions"]] == [("redirect", "HTTPS", "HTTP_301")]
    # Encrypted root volumes, on the hosts and the bastion.
    volumes = boto("ec2").describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [
        i["InstanceId"] for i in [*instances, bastion]]}])["Volumes"]
    seen = {(a["InstanceId"], a["Device"], v["Encrypted"], v["Size"]) for v in volumes for a in v["Attachments"]}
    # moto's Auto Scaling also attaches its own default 8 GiB volume at /dev/sda1 beside the
    # mapped one (EC2 maps the one root device); what the template asks for is there on each.
    assert {(i["InstanceId"], "/dev/sda1", True, 30) for i in [*instances, bastion]} <= seen, seen

    code, out, err = cli(capsys, config, "infra", "output", "--env", "production", "--json")
    assert code == 0 and result_of(out)["outputs"]["DatabaseIdentifier"] == f"{app}-production-db"
    # Applying the same config again changes nothing and keeps the password.
    code, out, err = cli(capsys, config, "infra", "apply", "--env", "production", "--json")
    assert code == 0 and result_of(out)["changes"] == [], out + err
    assert boto("ssm").get_parameter(Name=f"/{app}/production/DATABASE_PASSWORD",
                                     WithDecryption=True)["Parameter"]["Value"] == password["Value"]


def test_a_capacity_change_from_2_to_4_plans_as_one_modify_and_applies(aws, boto, app, tmp_path, capsys):
    config = write_config(tmp_path, app, desired=2)
    assert cli(capsys, config, "infra", "apply", "--env", "production", "--json")[0] == 0
    config = write_config(tmp_path, app, desired=4)
    code, out, err = cli(capsys, config, "infra", "plan", "--env", "production", "--json")
    assert code == 0, err
    assert [(c["action"], c["logical_id"]) for c in result_of(out)["changes"]] == [("modify", "HostGroup")]
    code, out, err = cli(capsys, config, "infra", "apply", "--env", "production", "--json")
    assert code == 0, out + err
    assert len(running(boto, app)) == 4
    code, out, err = cli(capsys, config, "hosts", "--env", "production", "--json")
    assert code == 0, out + err
    assert len(result_of(out)["hosts"]) == 4


def test_a_change_that_replaces_the_database_is_flagged_and_refused_without_allow_replace(
        aws, boto, app, tmp_path, capsys):
    config = write_config(tmp_path, app, username="app")
    assert cli(capsys, config, "infra", "apply", "--env", "production", "--json")[0] == 0
    config = write_config(tmp_path, app, username="owner")  # MasterUsername: "Update requires: Replacement"

    code, out, err = cli(capsys, config, "infra", "plan", "--env", "production")
    assert code == 0, err
    assert "-/+ REPLACE" in out and "DATABASE REPLACED: its data is lost (changes MasterUsername)" in out
    assert "WARNING: 1 resource(s) would be replaced or removed: Database" in out

    code, out, err = cli(capsys, config, "infra", "apply", "--env", "production")
    assert code == 6
    assert "refused: this change would replace the database: Database (replace: changes MasterUsername)" in err
    assert "--allow-replace" in err and "Traceback" not in err
    [db] = boto("rds").describe_db_instances(DBInstanceIdentifier=f"{app}-production-db")["DBInstances"]
    assert db["MasterUsername"] == "app"  # untouched
    pending = [c for c in boto("cloudformation").list_change_sets(StackName=f"{app}-production")["Summaries"]
               if c.get("ExecutionStatus") == "AVAILABLE"]
    assert pending == []  # the refused change set was deleted (moto lists executed ones too)

    code, out, err = cli(capsys, config, "infra", "apply", "--env", "production", "--allow-replace", "--json")
    assert code == 0, out + err
    assert [(c["action"], c["logical_id"], c["destroys_data"]) for c in result_of(out)["changes"]] == [
        ("replace", "Database", True)]


def test_destroy_asks_refuses_under_deletion_protection_and_deletes_what_moto_can(aws, boto, app, tmp_path, capsys,
                                                                                 monkeypatch):
    config = write_config(tmp_path, app)
    assert cli(capsys, config, "infra", "apply", "--env", "production", "--json")[0] == 0
    name = f"{app}-production"

    code, _, err = cli(capsys, config, "infra", "destroy", "--env", "production")  # stdin is no terminal here
    assert code == 6 and "pass --yes" in err and stack(boto, name) is not None

    boto("rds").modify_db_instance(DBInstanceIdentifier=f"{name}-db", DeletionProtection=True)
    code, _, err = cli(capsys, config, "infra", "destroy", "--env", "production", "--yes")
    assert code == 6 and f"refused: the database {name}-db has deletion protection" in err
    assert stack(boto, name) is not None

    boto("rds").modify_db_instance(DBInstanceIdentifier=f"{name}-db", DeletionProtection=False)
    code, out, err = cli(capsys, config, "infra", "destroy", "--env", "production", "--yes")
    # moto deletes the stack's resources in passes and gives up on the VPC (DependencyViolation:
    # it does not detach the internet gateway); real CloudFormation deletes in dependency order.
    assert code == 0 or (code == 6 and "DependencyViolation" in err), out + err
    assert "Traceback" not in err
    assert stack(boto, name) is None
    assert boto("rds").describe_db_instances(Filters=[
        {"Name": "db-instance-id", "Values": [f"{name}-db"]}])["DBInstances"] == []
    assert running(boto, app) == []
    code, _, err = cli(capsys, config, "infra", "output", "--env", "production")
    assert code == 3 and f"there is no stack '{name}'" in err


@pytest.mark.parametrize("source", ["ssm", "secretsmanager"])
def test_the_environment_deploys_onto_what_apply_made(aws, boto, app, tmp_path, capsys, source):
    """Host discovery, the database endpoint and the password lookup deploy uses resolve to
    what the stack made, with no hosts, discover or database table in deploy.toml."""
    secrets = f"ssm:/{app}/production/" if source == "ssm" else f"secretsmanager:{app}/production"
    if source == "secretsmanager":  # an existing secret keeps its other keys
        boto("secretsmanager").create_secret(Name=f"{app}/production", SecretString=json.dumps({"OTHER": "kept"}))
    config = write_config(tmp_path, app, secrets=secrets, load_balancer=False)
    code, out, err = cli(capsys, config, "infra", "apply", "--env", "production", "--json")
    assert code == 0, out + err

    loaded = load_config(config)
    environment = loaded.environment("production")
    hosts = discover_hosts(loaded.config, environment, "production")
    assert sorted(h.instance.id for h in hosts) == sorted(i["InstanceId"] for i in running(boto, app))
    assert all(h.instance.tags["deployctl:environment"] == "production" for h in hosts)

    resolved = with_database_endpoint(Env.resolve(loaded, "production")).settings
    [db] = boto("rds").describe_db_instances(DBInstanceIdentifier=f"{app}-production-db")["DBInstances"]
    assert resolved.env["DATABASE_HOST"] == db["Endpoint"]["Address"]
    assert resolved.env["DATABASE_PORT"] == str(db["Endpoint"]["Port"])

    values = fetch_secrets(environment_source(loaded.config, environment), ["DATABASE_PASSWORD"])
    if source == "ssm":
        stored = boto("ssm").get_parameter(Name=f"/{app}/production/DATABASE_PASSWORD",
                                           WithDecryption=True)["Parameter"]["Value"]
    else:
        data = json.loads(boto("secretsmanager").get_secret_value(SecretId=f"{app}/production")["SecretString"])
        assert data["OTHER"] == "kept"
        stored = data["DATABASE_PASSWORD"]
    assert values["DATABASE_PASSWORD"].reveal() == stored
    assert redactor(stored) == "***"

    code, out, err = cli(capsys, config, "deploy", "--env", "production", "--dry-run", "--json")
    assert stored not in out + err


def test_aws_unreachable_is_exit_4(aws, app, tmp_path, capsys, monkeypatch):
    from tests.support.net import free_port

    monkeypatch.setenv("DEPLOYCTL_AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    config = write_config(tmp_path, app, certificate_arn=f"arn:aws:acm:{REGION}:123456789012:certificate/unreached")
    code, _, err = cli(capsys, config, "infra", "plan", "--env", "production")
    assert code == 4 and "cannot reach AWS for CloudFormation DescribeStacks" in err and "Traceback" not in err
