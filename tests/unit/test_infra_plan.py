"""The infra template (pure): the reviewed production fixture, cfn-lint, our own security
rules, the infra table's validation (exit 3 naming the key), and how a change set's changes
are classified (the database's replacement flagged)."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest

from deployctl.cli.main import main
from deployctl.config import load_config, parse_config
from deployctl.errors import ConfigError
from deployctl.plan.cloud.infra import classify, derived_database, derived_discover, security_problems
from deployctl.plan.cloud.infra_template import template_text
from deployctl.services.cloud.infra import target_for
from deployctl.services.env import Env

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "infra" / "production.template.json"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG5vdC1hLXJlYWwta2V5LWp1c3QtYS10ZXN0 deploy@ci"

BASE = """
app = "shop"
[registry]
server = "registry.example:5000"
[services.web]
context = "web"
routed = true
[environments.prod]
target = "ssh"
secrets = "ssm:/shop/prod/"
"""


def config_with(infra: str, *, env_extra: str = "") -> str:
    return BASE.replace("[environments.prod]", PROXY_HOSTS + "[environments.prod]", 1) + env_extra + f'[environments.prod.infra]\nadmin_cidr = "198.51.100.0/24"\nssh_public_key = "{KEY}"\n' + infra


def target(tmp_path: Path, infra: str, **kw):
    path = tmp_path / "deploy.toml"
    path.write_text(config_with(infra, **kw))
    return target_for(Env.resolve(load_config(path), "prod"))


ARN = "arn:aws:acm:eu-west-1:123456789012:certificate/0f6c1c7e-2b4d-4f7e-9a51-6c0d1e2f3a4b"
ZONE = "Z0123456789ABCDEFGHIJ"
VARIANTS = {
    "alb with an ACM certificate by DNS, db": f'ami = "ami-0123456789abcdef0"\nload_balancer = {{ hosted_zone_id = "{ZONE}" }}\n'
              '[environments.prod.infra.database]\nengine = "mysql"\nengine_version = "8.4.7"\n',
    "world, fixed count, no db, no bastion": 'hosts = { count = 2 }\nbastion = false\n',
    "alb with a certificate ARN and world, mariadb multi-az": f'load_balancer = {{ port = 8080, https_port = 8443, '
                                       f'certificate_arn = "{ARN}" }}\nproxy_open_to = "world"\n'
                                       '[environments.prod.infra.database]\nmulti_az = true\nname = "shop"\n',
    "alb on plain http (said so)": 'load_balancer = { plain_http = true }\nroot_device = "/dev/sda1"\n',
}
PROXY_HOSTS = '[proxy]\nhosts = ["shop.example.com", "www.shop.example.com"]\n'


def test_the_production_template_is_the_reviewed_fixture():
    rendered = target_for(Env.resolve(load_config(REPO / "deploy.toml"), "production")).body
    assert rendered == FIXTURE.read_text(), (
        "the production template changed: review it, then `deployctl infra template --env production "
        "-o tests/fixtures/infra/production.template.json`")


def lint(text: str) -> list[str]:
    """cfn-lint's errors and warnings (what its command line reports by default; lint_all also
    returns informational I-rules)."""
    from cfnlint.api import lint_all

    return [str(match) for match in lint_all(text) if match.rule.id[:1] in ("E", "W")]


def test_cfn_lint_passes_on_the_production_fixture():
    assert lint(FIXTURE.read_text()) == []


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cfn_lint_and_our_security_rules_pass_on_every_shape(tmp_path, variant):
    made = target(tmp_path, VARIANTS[variant])
    assert lint(made.body) == []
    lb = made.infra.load_balancer
    listeners = [lb.port, lb.https_port] if lb else []
    assert security_problems(made.template, proxy_port=80, listener_ports=listeners,
                             plain_http=bool(lb and lb.plain_http)) == []


def world_ports(template: dict) -> set[int]:
    return {rule["FromPort"] for r in template["Resources"].values() if r["Type"] == "AWS::EC2::SecurityGroup"
            for rule in r["Properties"]["SecurityGroupIngress"] if rule.get("CidrIp") == "0.0.0.0/0"}


def test_the_production_template_keeps_everything_but_the_web_ports_private():
    template = json.loads(FIXTURE.read_text())
    resources = template["Resources"]
    assert security_problems(template, proxy_port=80, listener_ports=[80, 443]) == []
    hosts = resources["HostSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [(r["FromPort"], r.get("CidrIp"), r.get("SourceSecurityGroupId")) for r in hosts] == [
        (22, None, {"Fn::GetAtt": ["BastionSecurityGroup", "GroupId"]}),
        (80, None, {"Fn::GetAtt": ["LoadBalancerSecurityGroup", "GroupId"]})]
    bastion = resources["BastionSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [(r["FromPort"], r.get("CidrIp")) for r in bastion] == [(22, "203.0.113.0/24")]
    db_rules = resources["DatabaseSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [(r["FromPort"], r["SourceSecurityGroupId"]) for r in db_rules] == [
        (3306, {"Fn::GetAtt": ["HostSecurityGroup", "GroupId"]})]
    db = resources["Database"]["Properties"]
    assert db["PubliclyAccessible"] is False and db["StorageEncrypted"] is True and db["MultiAZ"] is True
    assert db["DBSubnetGroupName"] == {"Ref": "DatabaseSubnetGroup"}
    assert resources["DatabaseSubnetGroup"]["Properties"]["SubnetIds"] == [{"Ref": "PrivateSubnetA"},
                                                                          {"Ref": "PrivateSubnetB"}]
    assert db["MasterUserPassword"] == "{{resolve:ssm-secure:/usersapp/production/DATABASE_PASSWORD}}"
    assert world_ports(template) == {80, 443}  # the load balancer's listeners only
    assert resources["TargetGroup"]["Properties"]["HealthCheckPath"] == "/nginx-health"
    group = resources["HostGroup"]["Properties"]
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == ("2", "6", "3")
    assert {t["Key"]: t["Value"] for t in group["Tags"]}["deployctl:environment"] == "production"
    assert template["Parameters"]["ImageId"]["Default"].startswith("/aws/service/ami-amazon-linux-latest/")


@pytest.mark.parametrize("breakage, expected", [
    (lambda r: r["HostSecurityGroup"]["Properties"]["SecurityGroupIngress"][0].update(CidrIp="0.0.0.0/0"),
     "HostSecurityGroup: SSH is open to 0.0.0.0/0"),
    (lambda r: r["DatabaseSecurityGroup"]["Properties"]["SecurityGroupIngress"].append(
        {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "CidrIp": "0.0.0.0/0"}),
     "DatabaseSecurityGroup: ingress on ports 3306-3306 is open to 0.0.0.0/0"),
    (lambda r: r["Database"]["Properties"].update(PubliclyAccessible=True),
     "Database: the database must not be publicly accessible"),
    (lambda r: r["Database"]["Properties"].pop("StorageEncrypted"), "Database: the database's storage must be encrypted"),
    # no host with a public IP
    (lambda r: r["HostGroup"]["Properties"].update(VPCZoneIdentifier=[{"Ref": "PublicSubnetA"}]),
     "HostGroup: hosts in PublicSubnetA get a public IP (MapPublicIpOnLaunch): app hosts belong in private subnets"),
    (lambda r: r["LaunchTemplate"]["Properties"]["LaunchTemplateData"].update(
        NetworkInterfaces=[{"DeviceIndex": 0, "AssociatePublicIpAddress": True}]),
     "LaunchTemplate: its hosts get a public IP (AssociatePublicIpAddress)"),
    (lambda r: r["Bastion"]["Properties"].update(Tags=[{"Key": "Name", "Value": "not the bastion"}]),
     "Bastion: a host with a public IP (only the bastion may have one)"),
    # volumes encrypted
    (lambda r: r["LaunchTemplate"]["Properties"]["LaunchTemplateData"].pop("BlockDeviceMappings"),
     "LaunchTemplate: its root volume is not mapped as encrypted (BlockDeviceMappings with Ebs.Encrypted true)"),
    (lambda r: r["Bastion"]["Properties"]["BlockDeviceMappings"][0]["Ebs"].update(Encrypted=False),
     "Bastion: a volume is not encrypted (Ebs.Encrypted must be true)"),
    # HTTPS listener present, HTTP redirected
    (lambda r: r.pop("HttpsListener"), "LoadBalancer: no HTTPS listener with a certificate"),
    (lambda r: r["HttpsListener"]["Properties"].pop("Certificates"), "LoadBalancer: no HTTPS listener with a certificate"),
    (lambda r: r["Listener"]["Properties"].update(DefaultActions=r["HttpsListener"]["Properties"]["DefaultActions"]),
     "Listener: HTTP is served, not redirected to HTTPS"),
])
def test_our_security_rules_catch_each_breakage(breakage, expected):
    template = copy.deepcopy(json.loads(FIXTURE.read_text()))
    breakage(template["Resources"])
    assert expected in security_problems(template, proxy_port=80, listener_ports=[80, 443])


def test_user_data_installs_docker_and_authorises_the_deploy_key(tmp_path):
    made = target(tmp_path, "")
    script = made.template["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    assert "systemctl enable --now docker" in script and "usermod -aG docker deploy" in script
    assert f"printf '%s\\n' '{KEY}' > /home/deploy/.ssh/authorized_keys" in script
    assert "install -d -m 755 -o deploy -g deploy /var/lib/deployctl" in script


def test_user_data_publishes_the_host_keys_on_the_console_as_hosts_trust_reads_them(tmp_path):
    """The printed block, run by a real shell against a stand-in key file, parses back into
    that key with the parser `hosts trust --from-console` uses."""
    from deployctl.plan.operate.host_keys import HostKey, console_keys

    made = target(tmp_path, "")
    script = made.template["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    line = next(line for line in script.splitlines() if "SSH HOST KEY KEYS" in line)
    assert "cat /etc/ssh/ssh_host_*_key.pub" in line and line.endswith("> /dev/console 2>/dev/null || true")
    key = HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIKVTLcAuTteK/YXRjwLpqWPW58DUciuuQpDtjwrYx3Ly")
    (tmp_path / "ssh_host_ed25519_key.pub").write_text(f"{key.key_type} {key.blob} root@ip-10-20-1-5\n")
    runnable = line.replace("/etc/ssh/", f"{tmp_path}/").replace("> /dev/console 2>/dev/null || true", "")
    printed = subprocess.run(["bash", "-c", runnable], capture_output=True, text=True, check=True)
    assert console_keys(printed.stdout) == [key]


@pytest.mark.parametrize("infra, env_extra, expected", [
    ('admin_cidr = "0.0.0.0/0"\n', "", "environments.prod.infra.admin_cidr: '0.0.0.0/0' would open SSH to the whole internet"),
    ('admin_cidr = "::/0"\n', "", "environments.prod.infra.admin_cidr: '::/0' would open SSH to the whole internet"),
    ('vpc_cidr = "10.0.0.0/8"\n', "", "environments.prod.infra.vpc_cidr: '10.0.0.0/8': a VPC needs an IPv4 block"),
    ('hosts = { count = 2, min = 1 }\n', "", "environments.prod.infra.hosts: give either count or min/max/desired"),
    ('hosts = { min = 3, desired = 2 }\n', "", "environments.prod.infra.hosts: need min <= desired <= max"),
    ('ssh_public_key_file = "k.pub"\n', "", "environments.prod.infra: give either ssh_public_key or ssh_public_key_file"),
    ('proxy_open_to = "load_balancer"\n', "", 'environments.prod.infra: proxy_open_to = "load_balancer" needs'),
    ('[environments.prod.infra.database]\nengine = "postgres"\n', "",
     "environments.prod.infra.database.engine: 'postgres' is not allowed"),
    ('[environments.prod.infra.database]\n', 'aws_region = "eu-west-1"\n', None),
])
def test_infra_mistakes_name_their_key(infra, env_extra, expected):
    text = config_with(infra, env_extra=env_extra)
    if "admin_cidr" in infra:  # replace the default one
        text = text.replace('admin_cidr = "198.51.100.0/24"\n', "", 1)
    if "ssh_public_key_file" in infra:
        text = text.replace(f'ssh_public_key = "{KEY}"\n', f'ssh_public_key = "{KEY}"\n', 1)
    if expected is None:
        parse_config(text)
        return
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert any(expected in line for line in caught.value.problems), caught.value.problems


def test_infra_database_needs_an_aws_secret_source_and_no_database_table():
    text = config_with("[environments.prod.infra.database]\n").replace('secrets = "ssm:/shop/prod/"', 'secrets = "env"')
    with pytest.raises(ConfigError, match=r"environments.prod: infra.database: `infra apply` stores the generated "
                                          r"password in the secret source"):
        parse_config(text)
    text = config_with("[environments.prod.infra.database]\n", env_extra='database = { rds_instance = "x" }\n')
    with pytest.raises(ConfigError, match="give either database .* or infra.database, not both"):
        parse_config(text)


def test_a_private_key_is_refused_without_echoing_it(tmp_path, capsys):
    path = tmp_path / "deploy.toml"
    path.write_text(config_with("").replace(KEY, "-----BEGIN OPENSSH PRIVATE KEY----- c2VjcmV0"))
    code = main(["--config", str(path), "infra", "template", "--env", "prod"])
    _, err = capsys.readouterr()
    assert code == 3 and "environments.prod.infra.ssh_public_key" in err and "this is a private key" in err
    assert "c2VjcmV0" not in err


def test_a_missing_key_file_and_a_missing_table_exit_3_naming_the_key(tmp_path, capsys):
    path = tmp_path / "deploy.toml"
    path.write_text(config_with("").replace(f'ssh_public_key = "{KEY}"', 'ssh_public_key_file = "keys/none.pub"'))
    code = main(["--config", str(path), "infra", "plan", "--env", "prod"])
    _, err = capsys.readouterr()
    assert code == 3 and "environments.prod.infra.ssh_public_key_file: cannot read" in err and "Traceback" not in err
    code = main(["--config", str(REPO / "deploy.toml"), "infra", "plan", "--env", "staging"])
    _, err = capsys.readouterr()
    assert code == 3 and "environments.staging: no infra table" in err


def test_template_writes_a_file_or_stdout(tmp_path, capsys):
    out = tmp_path / "t.json"
    assert main(["--config", str(REPO / "deploy.toml"), "infra", "template", "--env", "production", "-o", str(out)]) == 0
    assert out.read_text() == FIXTURE.read_text()
    capsys.readouterr()
    assert main(["--config", str(REPO / "deploy.toml"), "infra", "template", "--env", "production"]) == 0
    assert capsys.readouterr().out == FIXTURE.read_text()


def test_an_infra_environment_discovers_its_stack_and_database():
    loaded = load_config(REPO / "deploy.toml")
    environment = loaded.environment("production")
    discover = derived_discover("usersapp", "production", environment)
    assert discover.tags == {"deployctl:app": "usersapp", "deployctl:environment": "production"}
    assert discover.address == "private_ip"
    database = derived_database("usersapp", "production", environment)
    assert (database.rds_instance, database.host_env, database.port_env) == (
        "usersapp-production-db", "DATABASE_HOST", "DATABASE_PORT")
    assert derived_discover("usersapp", "staging", loaded.environment("staging")) is None


def change(action: str, logical: str, rtype: str, replacement: str | None = None) -> dict:
    rc = {"Action": action, "LogicalResourceId": logical, "ResourceType": rtype}
    if replacement:
        rc["Replacement"] = replacement
    return {"Type": "Resource", "ResourceChange": rc}


def test_classify_flags_replacements_from_aws_or_from_the_property_table():
    old = json.loads(FIXTURE.read_text())
    new = copy.deepcopy(old)
    new["Resources"]["Database"]["Properties"]["MasterUsername"] = "owner"
    new["Resources"]["HostGroup"]["Properties"]["DesiredCapacity"] = "4"
    rows = classify([change("Modify", "HostGroup", "AWS::AutoScaling::AutoScalingGroup"),
                     change("Modify", "Database", "AWS::RDS::DBInstance"),
                     change("Modify", "LoadBalancer", "AWS::ElasticLoadBalancingV2::LoadBalancer", "Conditional"),
                     change("Add", "Extra", "AWS::EC2::Subnet"), change("Remove", "Old", "AWS::EC2::Subnet")],
                    old, new)
    assert [(r.action, r.logical_id, r.reason, r.destroys_data) for r in rows] == [
        ("remove", "Old", "", False),
        ("replace", "Database", "changes MasterUsername", True),
        ("replace", "LoadBalancer", "AWS: replacement Conditional", False),
        ("modify", "HostGroup", "", False),
        ("add", "Extra", "", False),
    ]
    assert classify([change("Remove", "Database", "AWS::RDS::DBInstance")], old, new)[0].destroys_data


def test_the_template_text_is_stable():
    template = json.loads(FIXTURE.read_text())
    assert template_text(template) == FIXTURE.read_text()


def test_hosts_are_private_go_out_through_a_nat_and_only_the_bastion_has_a_public_ip():
    resources = json.loads(FIXTURE.read_text())["Resources"]
    subnets = {n: r["Properties"]["MapPublicIpOnLaunch"] for n, r in resources.items() if r["Type"] == "AWS::EC2::Subnet"}
    assert subnets == {"PublicSubnetA": True, "PublicSubnetB": True, "PrivateSubnetA": False, "PrivateSubnetB": False}
    assert resources["HostGroup"]["Properties"]["VPCZoneIdentifier"] == [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]
    assert resources["PrivateDefaultRoute"]["Properties"] == {
        "RouteTableId": {"Ref": "PrivateRouteTable"}, "DestinationCidrBlock": "0.0.0.0/0",
        "NatGatewayId": {"Ref": "NatGateway"}}
    assert resources["NatGateway"]["Properties"]["SubnetId"] == {"Ref": "PublicSubnetA"}
    endpoint = resources["S3Endpoint"]["Properties"]
    assert endpoint["VpcEndpointType"] == "Gateway" and endpoint["RouteTableIds"] == [{"Ref": "PrivateRouteTable"}]
    bastion = resources["Bastion"]["Properties"]
    tags = {t["Key"]: t["Value"] for t in bastion["Tags"]}
    # Not the hosts' discovery tags: the bastion is never deployed to.
    assert tags["deployctl:bastion"] == "production" and "deployctl:environment" not in tags
    assert bastion["NetworkInterfaces"][0]["SubnetId"] == {"Ref": "PublicSubnetA"}
    script = bastion["UserData"]["Fn::Base64"]
    assert "docker" not in script and "/home/deploy/.ssh/authorized_keys" in script and "SSH HOST KEY KEYS" in script
    for mappings in (bastion["BlockDeviceMappings"],
                     resources["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["BlockDeviceMappings"]):
        assert mappings == [{"DeviceName": "/dev/xvda",
                             "Ebs": {"Encrypted": True, "VolumeType": "gp3", "VolumeSize": 30,
                                     "DeleteOnTermination": True}}]


def test_the_load_balancer_serves_https_with_the_certificate_and_redirects_http():
    resources = json.loads(FIXTURE.read_text())["Resources"]
    https = resources["HttpsListener"]["Properties"]
    assert (https["Port"], https["Protocol"], https["SslPolicy"]) == (443, "HTTPS", "ELBSecurityPolicy-TLS13-1-2-2021-06")
    assert https["Certificates"] == [{"CertificateArn": ARN}]
    assert https["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": {"Ref": "TargetGroup"}}]
    assert resources["Listener"]["Properties"]["DefaultActions"] == [
        {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}]


def test_a_new_certificate_is_for_the_proxy_hosts_validated_in_the_named_zone(tmp_path):
    made = target(tmp_path, f'load_balancer = {{ hosted_zone_id = "{ZONE}" }}\n')
    certificate = made.template["Resources"]["Certificate"]["Properties"]
    assert (certificate["DomainName"], certificate["SubjectAlternativeNames"], certificate["ValidationMethod"]) == (
        "shop.example.com", ["www.shop.example.com"], "DNS")
    assert certificate["DomainValidationOptions"] == [{"DomainName": "shop.example.com", "HostedZoneId": ZONE},
                                                      {"DomainName": "www.shop.example.com", "HostedZoneId": ZONE}]
    assert made.template["Resources"]["HttpsListener"]["Properties"]["Certificates"] == [
        {"CertificateArn": {"Ref": "Certificate"}}]


def test_plain_http_is_said_explicitly_and_then_forwards():
    path_text = config_with("load_balancer = { plain_http = true }\n")
    template = target_for_text(path_text).template
    assert "HttpsListener" not in template["Resources"]
    assert template["Resources"]["Listener"]["Properties"]["DefaultActions"][0]["Type"] == "forward"
    assert security_problems(template, proxy_port=80, listener_ports=[80]) == [
        "LoadBalancer: no HTTPS listener with a certificate", "Listener: HTTP is served, not redirected to HTTPS"]


def test_without_a_bastion_ssh_comes_from_the_admin_network_and_nothing_has_a_public_ip(tmp_path):
    made = target(tmp_path, "bastion = false\n")
    resources = made.template["Resources"]
    assert "Bastion" not in resources and "BastionSecurityGroup" not in resources
    rules = resources["HostSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert (rules[0]["FromPort"], rules[0]["CidrIp"]) == (22, "198.51.100.0/24")


def target_for_text(text: str):
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "deploy.toml"
        path.write_text(text)
        return target_for(Env.resolve(load_config(path), "prod"))


@pytest.mark.parametrize("text, expected", [
    (config_with("load_balancer = {}\n"),
     "environments.prod.infra.load_balancer: the load balancer's HTTPS listener needs a certificate: set "
     "certificate_arn (an ACM certificate), or hosted_zone_id"),
    (config_with(f'load_balancer = {{ hosted_zone_id = "{ZONE}" }}\n').replace(PROXY_HOSTS, ""),
     "environments.prod.infra.load_balancer.hosted_zone_id: a new certificate is requested for [proxy] hosts, "
     "which is empty"),
])
def test_a_load_balancer_without_a_certificate_source_is_refused_naming_the_keys(text, expected):
    with pytest.raises(ConfigError) as caught:
        target_for_text(text)
    assert expected in "\n".join(caught.value.lines())


@pytest.mark.parametrize("infra, expected", [
    (f'load_balancer = {{ certificate_arn = "{ARN}", hosted_zone_id = "{ZONE}" }}\n',
     "environments.prod.infra.load_balancer: give either certificate_arn"),
    ('load_balancer = { certificate_arn = "arn:aws:iam::123456789012:server-certificate/x" }\n',
     "environments.prod.infra.load_balancer.certificate_arn: 'arn:aws:iam::123456789012:server-certificate/x' is "
     "not an ACM certificate ARN"),
    ('load_balancer = { hosted_zone_id = "example.com" }\n',
     "environments.prod.infra.load_balancer.hosted_zone_id: 'example.com' is not a Route 53 hosted zone id"),
    ('load_balancer = { port = 443, https_port = 443, plain_http = true }\n',
     "environments.prod.infra.load_balancer: port and https_port are both 443"),
    ('address = "public_ip"\n', 'environments.prod.infra: address = "public_ip": the hosts infra makes are in '
                                 'private subnets with no public IP'),
])
def test_https_and_address_mistakes_name_their_key(infra, expected):
    with pytest.raises(ConfigError) as caught:
        parse_config(config_with(infra))
    assert expected in "\n".join(caught.value.lines())
