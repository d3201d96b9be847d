"""The CloudFormation template of an environment's infrastructure, from its `[infra]` table.

A pure function: the same config renders the same template, byte for byte (the reviewed
fixture tests/fixtures/infra/production.template.json holds it to that). What it makes:

- a VPC cut into four subnets: two public (the load balancer, the bastion, the NAT gateway)
  and two private (the hosts, the database), in the region's first two availability zones;
  an internet gateway for the public ones; one NAT gateway (and a free S3 gateway endpoint,
  which carries ECR's image layers and Amazon Linux's package repositories past the NAT's
  per-GB charge) for the private ones' outbound traffic;
- the hosts: a launch template (Docker installed and the deploy user authorised by user
  data, IMDSv2 only, the root volume encrypted) and an Auto Scaling group in the private
  subnets (no public IP) whose instances carry the discovery tags;
- a bastion (unless `bastion = false`): one small instance in a public subnet, SSH from
  `admin_cidr` only, the deploy user authorised; `ssh.proxy_jump` goes through it by default;
- security groups: SSH to the hosts from the bastion's group (or `admin_cidr` without a
  bastion); the proxy port from the load balancer's group or the world; the database port
  from the hosts' group only;
- optionally an Application Load Balancer whose target group checks `proxy.healthcheck`,
  with an HTTPS listener and HTTP redirected to it (plan/cloud/infra_https.py);
- optionally an RDS instance (MySQL or MariaDB) in the private subnets: encrypted, never
  publicly accessible, its master password a dynamic reference (`{{resolve:ssm-secure:...}}`
  or `{{resolve:secretsmanager:...}}`) to where `infra apply` generated it: the environment's
  secret source, under `database.password_secret`. The value is in no template, parameter or
  output.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from dataclasses import dataclass
from typing import Any

from ...config.models import Infra
from .cfn import att as _att, ingress as _ingress, ref as _ref

IMAGE_PARAMETER = "ImageId"
DB_RESOURCE = "Database"
DB_TYPE = "AWS::RDS::DBInstance"


@dataclass(frozen=True)
class InfraSpec:
    """Everything the template depends on, gathered by the caller (services/cloud/infra.py): the
    infra table, plus what other parts of deploy.toml say about the hosts."""

    app: str
    environment: str
    infra: Infra
    ssh_public_key: str  # the key's line (read from ssh_public_key_file by the caller)
    ssh_user: str = "deploy"
    state_dir: str = "/var/lib/deployctl"
    proxy_port: int = 80  # where the hosts' proxy listens (environment.proxy_port or proxy.port)
    proxy_healthcheck: str = "/nginx-health"
    # Where apply stores the database password: a CloudFormation dynamic reference to it, and
    # the same place in words (plan/cloud/infra.py: password_store).
    password_reference: str = ""
    password_location: str = ""
    proxy_hosts: tuple[str, ...] = ()  # [proxy] hosts: the names a new certificate is for

    @property
    def stack_name(self) -> str:
        return self.infra.stack_name or f"{self.app}-{self.environment}"

    @property
    def tags(self) -> dict[str, str]:
        """On every taggable resource and every host: discovery finds the hosts by these."""
        return {"deployctl:app": self.app, "deployctl:environment": self.environment}

    @property
    def db_identifier(self) -> str:
        return db_identifier(self.stack_name)

    @property
    def bastion_tags(self) -> dict[str, str]:
        return bastion_tags(self.app, self.environment)


def bastion_tags(app: str, environment: str) -> dict[str, str]:
    """The bastion's tags: not the hosts' discovery tags (it must never be deployed to), and
    what deployctl finds it by (services/hosts.py: jump_host)."""
    return {"deployctl:app": app, "deployctl:bastion": environment}


def db_identifier(stack_name: str) -> str:
    """The RDS instance's identifier: fixed by the stack's name, so deployctl finds it with
    DescribeDBInstances without asking CloudFormation."""
    return (stack_name.lower() + "-db")[:63].rstrip("-")


def subnet_blocks(vpc_cidr: str) -> list[str]:
    """The VPC's block in four: public A, public B, private A, private B."""
    return [str(net) for net in ipaddress.ip_network(vpc_cidr).subnets(prefixlen_diff=2)]


def user_data(spec: InfraSpec, *, bastion: bool = False) -> str:
    """The hosts' first-boot script: Docker installed and running, the deploy user in the
    docker group with the deploy key authorised, deployctl's state directory its own, the
    SSH host keys published on the console. The bastion's: only the user, its key and the
    console keys (it runs nothing; deployctl only tunnels through it).
    Works on Amazon Linux (dnf/yum) and Debian/Ubuntu (apt-get) images."""
    user, home = spec.ssh_user, f"/home/{spec.ssh_user}"
    q = shlex.quote
    docker = [] if bastion else [
        "if command -v dnf >/dev/null; then dnf install -y docker",
        "elif command -v yum >/dev/null; then yum install -y docker",
        "else export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q docker.io; fi",
        "systemctl enable --now docker",
    ]
    what = "the bastion's" if bastion else "Docker, and the"
    return "\n".join([
        "#!/bin/bash",
        f"# deployctl infra: {what} deploy user {user} with its key ({spec.app}/{spec.environment})",
        "set -euo pipefail",
        *docker,
        f"id -u {q(user)} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {q(user)}",
        *([] if bastion else [f"usermod -aG docker {q(user)}"]),
        f"install -d -m 700 -o {q(user)} -g {q(user)} {q(home + '/.ssh')}",
        f"printf '%s\\n' {q(spec.ssh_public_key)} > {q(home + '/.ssh/authorized_keys')}",
        f"chown {q(user)}:{q(user)} {q(home + '/.ssh/authorized_keys')}",
        f"chmod 600 {q(home + '/.ssh/authorized_keys')}",
        *([] if bastion else [f"install -d -m 755 -o {q(user)} -g {q(user)} {q(spec.state_dir)}"]),
        # The host keys on the serial console, where `deployctl hosts trust --from-console` reads
        # them (EC2 GetConsoleOutput). cloud-init prints the same block on most images; this
        # does not depend on the image's cloud-init settings. Only root can write the console.
        "{ echo '-----BEGIN SSH HOST KEY KEYS-----'; cat /etc/ssh/ssh_host_*_key.pub; "
        "echo '-----END SSH HOST KEY KEYS-----'; } > /dev/console 2>/dev/null || true",
        "",
    ])


def _tag_list(spec: InfraSpec, name: str) -> list[dict]:
    tags = {**spec.tags, "Name": f"{spec.stack_name}-{name}"}
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def render_template(spec: InfraSpec) -> dict[str, Any]:
    infra = spec.infra
    resources: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    parameters: dict[str, Any] = {}
    blocks = subnet_blocks(infra.vpc_cidr)

    resources["Vpc"] = {"Type": "AWS::EC2::VPC", "Properties": {
        "CidrBlock": infra.vpc_cidr, "EnableDnsSupport": True, "EnableDnsHostnames": True,
        "Tags": _tag_list(spec, "vpc")}}
    resources["InternetGateway"] = {"Type": "AWS::EC2::InternetGateway", "Properties": {
        "Tags": _tag_list(spec, "igw")}}
    resources["GatewayAttachment"] = {"Type": "AWS::EC2::VPCGatewayAttachment", "Properties": {
        "VpcId": _ref("Vpc"), "InternetGatewayId": _ref("InternetGateway")}}
    for index, (name, public) in enumerate([("PublicSubnetA", True), ("PublicSubnetB", True),
                                            ("PrivateSubnetA", False), ("PrivateSubnetB", False)]):
        resources[name] = {"Type": "AWS::EC2::Subnet", "Properties": {
            "VpcId": _ref("Vpc"), "CidrBlock": blocks[index],
            "AvailabilityZone": {"Fn::Select": [index % 2, {"Fn::GetAZs": ""}]},
            "MapPublicIpOnLaunch": public, "Tags": _tag_list(spec, name[:-1].lower() + "-" + name[-1].lower())}}
    for kind in ("Public", "Private"):
        resources[f"{kind}RouteTable"] = {"Type": "AWS::EC2::RouteTable", "Properties": {
            "VpcId": _ref("Vpc"), "Tags": _tag_list(spec, kind.lower())}}
        for zone in "AB":
            resources[f"{kind}Subnet{zone}Routes"] = {"Type": "AWS::EC2::SubnetRouteTableAssociation", "Properties": {
                "SubnetId": _ref(f"{kind}Subnet{zone}"), "RouteTableId": _ref(f"{kind}RouteTable")}}
    resources["PublicDefaultRoute"] = {"Type": "AWS::EC2::Route", "DependsOn": "GatewayAttachment", "Properties": {
        "RouteTableId": _ref("PublicRouteTable"), "DestinationCidrBlock": "0.0.0.0/0",
        "GatewayId": _ref("InternetGateway")}}
    # The private subnets' way out (package installs, image pulls from any registry): one
    # NAT gateway, in zone A (one per zone doubles its cost; docs/infra.md).
    resources["NatAddress"] = {"Type": "AWS::EC2::EIP", "DependsOn": "GatewayAttachment", "Properties": {
        "Domain": "vpc", "Tags": _tag_list(spec, "nat")}}
    resources["NatGateway"] = {"Type": "AWS::EC2::NatGateway", "Properties": {
        "AllocationId": _att("NatAddress", "AllocationId"), "SubnetId": _ref("PublicSubnetA"),
        "Tags": _tag_list(spec, "nat")}}
    resources["PrivateDefaultRoute"] = {"Type": "AWS::EC2::Route", "Properties": {
        "RouteTableId": _ref("PrivateRouteTable"), "DestinationCidrBlock": "0.0.0.0/0",
        "NatGatewayId": _ref("NatGateway")}}
    resources["S3Endpoint"] = {"Type": "AWS::EC2::VPCEndpoint", "Properties": {
        "VpcId": _ref("Vpc"), "VpcEndpointType": "Gateway",
        "ServiceName": {"Fn::Sub": "com.amazonaws.${AWS::Region}.s3"},
        "RouteTableIds": [_ref("PrivateRouteTable")]}}

    if infra.bastion:
        host_ingress = [_ingress(22, "SSH from the bastion", group="BastionSecurityGroup")]
        resources["BastionSecurityGroup"] = {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": f"{spec.stack_name} bastion", "VpcId": _ref("Vpc"),
            "SecurityGroupIngress": [_ingress(22, "SSH from the admin network", cidr=infra.admin_cidr)],
            "Tags": _tag_list(spec, "bastion")}}
    else:
        host_ingress = [_ingress(22, "SSH from the admin network", cidr=infra.admin_cidr)]
    if infra.load_balancer is not None:
        host_ingress.append(_ingress(spec.proxy_port, "the proxy, from the load balancer", group="LoadBalancerSecurityGroup"))
    if infra.proxy_ingress == "world":
        host_ingress.append(_ingress(spec.proxy_port, "the proxy, from anywhere", cidr="0.0.0.0/0"))
    resources["HostSecurityGroup"] = {"Type": "AWS::EC2::SecurityGroup", "Properties": {
        "GroupDescription": f"{spec.stack_name} app hosts", "VpcId": _ref("Vpc"),
        "SecurityGroupIngress": host_ingress, "Tags": _tag_list(spec, "hosts")}}

    if infra.ami.startswith("/"):
        parameters[IMAGE_PARAMETER] = {"Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
                                       "Default": infra.ami, "Description": "The hosts' AMI, from this SSM parameter"}
        image: Any = _ref(IMAGE_PARAMETER)
    else:
        image = infra.ami
    root_volume = [{"DeviceName": infra.root_device,
                    "Ebs": {"Encrypted": True, "VolumeType": "gp3", "VolumeSize": infra.root_volume_gib,
                            "DeleteOnTermination": True}}]
    resources["LaunchTemplate"] = {"Type": "AWS::EC2::LaunchTemplate", "Properties": {
        "LaunchTemplateData": {
            "ImageId": image, "InstanceType": infra.instance_type,
            "SecurityGroupIds": [_att("HostSecurityGroup", "GroupId")],
            "BlockDeviceMappings": root_volume,
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
            "UserData": {"Fn::Base64": user_data(spec)},
            "TagSpecifications": [{"ResourceType": "volume", "Tags": _tag_list(spec, "host")}],
        }}}
    low, high, want = infra.hosts.size
    group: dict[str, Any] = {
        "MinSize": str(low), "MaxSize": str(high), "DesiredCapacity": str(want),
        "VPCZoneIdentifier": [_ref("PrivateSubnetA"), _ref("PrivateSubnetB")],
        "LaunchTemplate": {"LaunchTemplateId": _ref("LaunchTemplate"),
                           "Version": _att("LaunchTemplate", "LatestVersionNumber")},
        "Tags": [{**tag, "PropagateAtLaunch": True} for tag in _tag_list(spec, "host")],
    }

    if infra.load_balancer is not None:
        from .infra_https import render_load_balancer

        lb_resources, lb_outputs = render_load_balancer(
            infra.load_balancer, proxy_hosts=list(spec.proxy_hosts), stack=spec.stack_name, proxy_port=spec.proxy_port,
            healthcheck=spec.proxy_healthcheck, tags=lambda name: _tag_list(spec, name))
        resources.update(lb_resources)
        outputs.update(lb_outputs)
        group["TargetGroupARNs"] = [_ref("TargetGroup")]
        group["HealthCheckType"] = "ELB"
        group["HealthCheckGracePeriod"] = 300
        outputs["LoadBalancerDNSName"] = {"Description": "The load balancer's address",
                                          "Value": _att("LoadBalancer", "DNSName")}
    resources["HostGroup"] = {"Type": "AWS::AutoScaling::AutoScalingGroup", "Properties": group}

    if infra.bastion:
        resources["Bastion"] = {"Type": "AWS::EC2::Instance", "DependsOn": "GatewayAttachment", "Properties": {
            "ImageId": image, "InstanceType": infra.bastion_instance_type,
            "NetworkInterfaces": [{"DeviceIndex": "0", "SubnetId": _ref("PublicSubnetA"),
                                   "AssociatePublicIpAddress": True,
                                   "GroupSet": [_att("BastionSecurityGroup", "GroupId")]}],
            "BlockDeviceMappings": root_volume,
            "UserData": {"Fn::Base64": user_data(spec, bastion=True)},
            "Tags": [{"Key": k, "Value": v} for k, v in
                     {**spec.bastion_tags, "Name": f"{spec.stack_name}-bastion"}.items()]}}
        outputs["BastionPublicIp"] = {"Description": "The bastion: ssh.proxy_jump's default",
                                      "Value": _att("Bastion", "PublicIp")}

    database = infra.database
    if database is not None:
        resources["DatabaseSecurityGroup"] = {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": f"{spec.stack_name} database, from the app hosts only", "VpcId": _ref("Vpc"),
            "SecurityGroupIngress": [_ingress(database.port, "the database, from the app hosts",
                                              group="HostSecurityGroup")],
            "Tags": _tag_list(spec, "db")}}
        resources["DatabaseSubnetGroup"] = {"Type": "AWS::RDS::DBSubnetGroup", "Properties": {
            "DBSubnetGroupDescription": f"{spec.stack_name} private subnets",
            "SubnetIds": [_ref("PrivateSubnetA"), _ref("PrivateSubnetB")], "Tags": _tag_list(spec, "db")}}
        props: dict[str, Any] = {
            "DBInstanceIdentifier": spec.db_identifier, "Engine": database.engine,
            "DBInstanceClass": database.instance_class, "AllocatedStorage": str(database.storage),
            "StorageType": "gp3", "StorageEncrypted": True, "PubliclyAccessible": False,
            "MultiAZ": database.multi_az, "Port": str(database.port),
            "DBSubnetGroupName": _ref("DatabaseSubnetGroup"),
            "VPCSecurityGroups": [_att("DatabaseSecurityGroup", "GroupId")],
            "MasterUsername": database.username, "MasterUserPassword": spec.password_reference,
            "DeletionProtection": database.deletion_protection,
            "BackupRetentionPeriod": database.backup_retention_days, "CopyTagsToSnapshot": True,
            "Tags": _tag_list(spec, "db"),
        }
        if database.engine_version:
            props["EngineVersion"] = database.engine_version
        if database.name:
            props["DBName"] = database.name
        resources[DB_RESOURCE] = {"Type": DB_TYPE, "DeletionPolicy": "Snapshot", "UpdateReplacePolicy": "Snapshot",
                                  "Properties": props}
        outputs["DatabaseIdentifier"] = {"Description": "The RDS DB instance identifier", "Value": _ref(DB_RESOURCE)}
        outputs["DatabaseAddress"] = {"Description": "The database endpoint's address",
                                      "Value": _att(DB_RESOURCE, "Endpoint.Address")}
        outputs["DatabasePort"] = {"Description": "The database endpoint's port", "Value": _att(DB_RESOURCE, "Endpoint.Port")}
        outputs["DatabasePasswordLocation"] = {"Description": "Where infra apply stored the master password",
                                               "Value": spec.password_location}

    outputs = {
        "VpcId": {"Description": "The VPC", "Value": _ref("Vpc")},
        "HostGroupName": {"Description": "The app hosts' Auto Scaling group", "Value": _ref("HostGroup")},
        "HostSecurityGroupId": {"Description": "The app hosts' security group",
                                "Value": _att("HostSecurityGroup", "GroupId")},
        **outputs,
    }
    template: dict[str, Any] = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"deployctl infra: {spec.app} {spec.environment} (network, hosts"
                       + (", load balancer" if infra.load_balancer is not None else "")
                       + (", database" if database is not None else "") + ")",
    }
    if parameters:
        template["Parameters"] = parameters
    template["Resources"] = resources
    template["Outputs"] = outputs
    return template


def template_text(template: dict[str, Any]) -> str:
    """The template as written out and sent: stable key order, two-space indent, newline."""
    return json.dumps(template, indent=2) + "\n"
