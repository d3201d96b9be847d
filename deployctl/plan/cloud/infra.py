"""Pure decisions of `deployctl infra`: where the database password lives, which hosts an
infra-made environment deploys to, what a change set's changes mean (add / modify /
replace / remove, with the database's replacement flagged), and the security rules every
rendered template must pass. No boto3 here: adapters/cloudformation.py does the calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ...config.models import Database, Discover, Environment, Infra, JumpHost
from ...errors import ConnectError
from .aws import Instance
from .infra_template import DB_TYPE, InfraSpec, db_identifier

# Properties whose change makes CloudFormation replace the resource ("Update requires:
# Replacement" in the AWS resource reference). AWS's change sets say so themselves
# (ResourceChange.Replacement); moto's do not, so the plan also compares the deployed
# template with the new one against this table and flags the union.
REPLACING_PROPERTIES: dict[str, frozenset[str]] = {
    "AWS::EC2::VPC": frozenset({"CidrBlock", "InstanceTenancy"}),
    "AWS::EC2::Subnet": frozenset({"CidrBlock", "AvailabilityZone", "VpcId"}),
    "AWS::EC2::SecurityGroup": frozenset({"GroupDescription", "GroupName", "VpcId"}),
    "AWS::EC2::RouteTable": frozenset({"VpcId"}),
    "AWS::EC2::LaunchTemplate": frozenset({"LaunchTemplateName"}),
    "AWS::AutoScaling::AutoScalingGroup": frozenset({"AutoScalingGroupName"}),
    "AWS::ElasticLoadBalancingV2::LoadBalancer": frozenset({"Name", "Scheme", "Type"}),
    "AWS::ElasticLoadBalancingV2::TargetGroup": frozenset({"Name", "Port", "Protocol", "TargetType", "VpcId"}),
    "AWS::RDS::DBSubnetGroup": frozenset({"DBSubnetGroupName"}),
    "AWS::EC2::Instance": frozenset({"ImageId", "NetworkInterfaces", "SubnetId", "AvailabilityZone"}),
    "AWS::EC2::NatGateway": frozenset({"AllocationId", "SubnetId", "ConnectivityType"}),
    "AWS::EC2::VPCEndpoint": frozenset({"ServiceName", "VpcId", "VpcEndpointType"}),
    "AWS::CertificateManager::Certificate": frozenset({"DomainName", "SubjectAlternativeNames",
                                                       "DomainValidationOptions", "ValidationMethod"}),
    DB_TYPE: frozenset({"DBInstanceIdentifier", "DBName", "MasterUsername", "StorageEncrypted", "KmsKeyId",
                        "CharacterSetName", "Engine", "DBSubnetGroupName", "AvailabilityZone"}),
}


# -- the database password ------------------------------------------------------------------

@dataclass(frozen=True)
class PasswordStore:
    """Where `infra apply` puts the generated master password: the environment's secret
    source, under `infra.database.password_secret`, so a deploy finds it like any secret."""

    kind: str  # "ssm" | "secretsmanager"
    location: str  # the SSM parameter name, or the Secrets Manager secret id
    key: str  # the secret's name (and its key in a Secrets Manager JSON object)

    @property
    def reference(self) -> str:
        """The CloudFormation dynamic reference RDS resolves at create/update time."""
        if self.kind == "ssm":
            return f"{{{{resolve:ssm-secure:{self.location}}}}}"
        return f"{{{{resolve:secretsmanager:{self.location}:SecretString:{self.key}}}}}"

    def describe(self) -> str:
        if self.kind == "ssm":
            return f"SSM parameter {self.location}"
        return f"Secrets Manager secret {self.location}, key {self.key}"


def password_store(environment: Environment) -> PasswordStore | None:
    from .aws import ssm_parameter

    infra = environment.infra
    if infra is None or infra.database is None:
        return None
    name, spec = infra.database.password_secret, environment.secrets
    if spec.startswith("ssm:"):
        return PasswordStore("ssm", ssm_parameter(spec.removeprefix("ssm:"), name), name)
    if spec.startswith("secretsmanager:"):
        return PasswordStore("secretsmanager", spec.removeprefix("secretsmanager:"), name)
    raise ValueError("the model refuses infra.database with secrets = 'env'")  # pragma: no cover


def infra_spec(app: str, env_name: str, environment: Environment, ssh_public_key: str, *,
               proxy_port: int, proxy_healthcheck: str, proxy_hosts: Iterable[str] = ()) -> InfraSpec:
    infra = environment.infra
    assert infra is not None
    store = password_store(environment)
    return InfraSpec(app=app, environment=env_name, infra=infra, ssh_public_key=ssh_public_key.strip(),
                     ssh_user=environment.ssh.user, state_dir=environment.state_dir, proxy_port=proxy_port,
                     proxy_healthcheck=proxy_healthcheck, proxy_hosts=tuple(proxy_hosts),
                     password_reference=store.reference if store else "",
                     password_location=store.describe() if store else "")


# -- what the environment deploys onto ------------------------------------------------------

def stack_tags(app: str, env_name: str) -> dict[str, str]:
    return {"deployctl:app": app, "deployctl:environment": env_name}


def derived_discover(app: str, env_name: str, environment: Environment) -> Discover | None:
    """The environment's `discover`: its own, else (an infra table, no hosts) the running
    instances carrying the tags the template puts on every host."""
    if environment.discover is not None or environment.hosts or environment.infra is None:
        return environment.discover
    infra = environment.infra
    return Discover(region=infra.region, tags=stack_tags(app, env_name), address=infra.address)


def uses_stack_bastion(environment: Environment) -> bool:
    """Whether the environment's SSH goes through its infra stack's bastion by default: its
    hosts are the stack's (no hosts, no discover table), the stack has a bastion, and
    ssh.proxy_jump does not name another jump host."""
    infra = environment.infra
    return (infra is not None and infra.bastion and not environment.hosts and environment.discover is None
            and environment.ssh.proxy_jump is None)


def bastion_jump(instances: Iterable[Instance], user: str, env_name: str) -> JumpHost:
    """The stack's bastion as the jump host: the running instance with the bastion's tags and
    a public IP (the first by id, should there be two during a replacement)."""
    running = sorted((i for i in instances if i.state == "running" and i.public_ip), key=lambda i: i.id)
    if not running:
        raise ConnectError(f"environments.{env_name}: the infra stack's bastion is not running (no running instance "
                           f"tagged deployctl:bastion = {env_name} with a public IP); its hosts are reached through it",
                           hint=f"run `deployctl infra apply --env {env_name}`, or name a jump host in "
                                f"environments.{env_name}.ssh.proxy_jump")
    return JumpHost(running[0].public_ip, 22, user, instance_id=running[0].id)  # type: ignore[arg-type]


def stack_name(app: str, env_name: str, infra: Infra) -> str:
    return infra.stack_name or f"{app}-{env_name}"


def derived_database(app: str, env_name: str, environment: Environment) -> Database | None:
    """The environment's `database`: its own, else the RDS instance its infra stack made
    (found by identifier with DescribeDBInstances: moto leaves the stack's
    `Fn::GetAtt Endpoint.Address` output empty, and DescribeDBInstances is the truth anyway)."""
    infra = environment.infra
    if environment.database is not None or infra is None or infra.database is None:
        return environment.database
    return Database(rds_instance=db_identifier(stack_name(app, env_name, infra)), host_env=infra.database.host_env, port_env=infra.database.port_env)


# -- change sets ----------------------------------------------------------------------------

@dataclass(frozen=True)
class PlannedChange:
    action: str  # add | modify | replace | remove
    logical_id: str
    resource_type: str
    physical_id: str | None = None
    reason: str = ""  # for a replacement: the properties that force it

    @property
    def is_database(self) -> bool:
        return self.resource_type == DB_TYPE

    @property
    def destroys_data(self) -> bool:
        """Replacing or removing the database loses its data (a final snapshot is kept)."""
        return self.is_database and self.action in ("replace", "remove")

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "logical_id": self.logical_id, "type": self.resource_type,
                "physical_id": self.physical_id, "reason": self.reason, "destroys_data": self.destroys_data}


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def forced_replacement(resource_type: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[str]:
    """The properties whose change replaces this resource (old/new: its template entries)."""
    if not old or not new:
        return []
    replacing = REPLACING_PROPERTIES.get(resource_type, frozenset())
    old_props, new_props = old.get("Properties", {}), new.get("Properties", {})
    return sorted(key for key in replacing if not _same(old_props.get(key), new_props.get(key)))


def classify(changes: Iterable[Mapping[str, Any]], old_template: Mapping[str, Any] | None,
             new_template: Mapping[str, Any]) -> list[PlannedChange]:
    """A change set's resource changes as rows; a Modify that AWS says replaces
    (Replacement True or Conditional) or that our table says replaces is a `replace`."""
    old_resources = (old_template or {}).get("Resources", {})
    new_resources = new_template.get("Resources", {})
    out = []
    for change in changes:
        rc = change.get("ResourceChange") or {}
        if not rc:
            continue
        logical, rtype = rc.get("LogicalResourceId", "?"), rc.get("ResourceType", "?")
        action = (rc.get("Action") or "?").lower()
        reason = ""
        if action == "modify":
            forced = forced_replacement(rtype, old_resources.get(logical), new_resources.get(logical))
            aws_says = rc.get("Replacement") in ("True", "Conditional")
            if forced or aws_says:
                action = "replace"
                reason = ("changes " + ", ".join(forced)) if forced else f"AWS: replacement {rc.get('Replacement')}"
        out.append(PlannedChange(action, logical, rtype, rc.get("PhysicalResourceId") or None, reason))
    order = {"remove": 0, "replace": 1, "modify": 2, "add": 3}
    return sorted(out, key=lambda c: (order.get(c.action, 4), c.logical_id))


def no_changes_reason(reason: str | None) -> bool:
    """A change set that FAILED only because there was nothing to change."""
    text = (reason or "").lower()
    return "didn't contain changes" in text or "no updates are to be performed" in text


# -- security rules -------------------------------------------------------------------------

WORLD = {"0.0.0.0/0", "::/0"}


def security_problems(template: Mapping[str, Any], *, proxy_port: int, listener_ports: Iterable[int] = (),
                      plain_http: bool = False) -> list[str]:
    """Our own rules, checked on every rendered template (and in the unit tests): no ingress
    open to the world except the proxy port (or the load balancer's listeners), SSH never from
    the world, the database never publicly accessible and always encrypted, no host with a
    public IP (the bastion excepted), every volume encrypted, and a load balancer that serves
    HTTPS and redirects HTTP to it (unless the config says plain_http)."""
    problems = []
    allowed = {proxy_port, *listener_ports}
    resources = template.get("Resources", {})
    for name, resource in resources.items():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::EC2::SecurityGroup":
            for rule in props.get("SecurityGroupIngress", []):
                cidr = rule.get("CidrIp") or rule.get("CidrIpv6")
                ports = (rule.get("FromPort"), rule.get("ToPort"))
                if cidr in WORLD and (ports[0] != ports[1] or ports[0] not in allowed or rule.get("IpProtocol") != "tcp"):
                    problems.append(f"{name}: ingress on ports {ports[0]}-{ports[1]} is open to {cidr}")
                if cidr in WORLD and ports[0] is not None and ports[0] <= 22 <= ports[1]:
                    problems.append(f"{name}: SSH is open to {cidr}")
        if resource.get("Type") == "AWS::EC2::SecurityGroupIngress":
            problems.append(f"{name}: ingress rules belong inside their security group, where they are checked")
        if resource.get("Type") == DB_TYPE:
            if props.get("PubliclyAccessible") is not False:
                problems.append(f"{name}: the database must not be publicly accessible")
            if props.get("StorageEncrypted") is not True:
                problems.append(f"{name}: the database's storage must be encrypted")
    problems += public_ip_problems(resources)
    problems += volume_problems(resources)
    if not plain_http:
        problems += https_problems(resources)
    return problems


def _of_type(resources: Mapping[str, Any], kind: str) -> list[tuple[str, Mapping[str, Any]]]:
    return [(name, r.get("Properties", {})) for name, r in resources.items() if r.get("Type") == kind]


def _ref_name(value: Any) -> str | None:
    return value.get("Ref") if isinstance(value, Mapping) else None


def public_ip_problems(resources: Mapping[str, Any]) -> list[str]:
    """No host with a public IP: an Auto Scaling group only in subnets that give none, no
    launch template or instance that asks for one; the bastion (tagged deployctl:bastion) is
    the one instance allowed one (its SSH is admin_cidr's only, by the rules above)."""
    problems = []
    public = {name for name, props in _of_type(resources, "AWS::EC2::Subnet") if props.get("MapPublicIpOnLaunch") is True}
    for name, props in _of_type(resources, "AWS::AutoScaling::AutoScalingGroup"):
        for subnet in props.get("VPCZoneIdentifier", []):
            if _ref_name(subnet) in public:
                problems.append(f"{name}: hosts in {_ref_name(subnet)} get a public IP (MapPublicIpOnLaunch): "
                                "app hosts belong in private subnets")
    for name, props in _of_type(resources, "AWS::EC2::LaunchTemplate"):
        interfaces = props.get("LaunchTemplateData", {}).get("NetworkInterfaces", [])
        if any(i.get("AssociatePublicIpAddress") is True for i in interfaces):
            problems.append(f"{name}: its hosts get a public IP (AssociatePublicIpAddress)")
    for name, props in _of_type(resources, "AWS::EC2::Instance"):
        bastion = any(tag.get("Key") == "deployctl:bastion" for tag in props.get("Tags", []))
        interfaces = props.get("NetworkInterfaces", [])
        exposed = (any(i.get("AssociatePublicIpAddress") is True or _ref_name(i.get("SubnetId")) in public
                       for i in interfaces) or _ref_name(props.get("SubnetId")) in public)
        if exposed and not bastion:
            problems.append(f"{name}: a host with a public IP (only the bastion may have one)")
    return problems


def volume_problems(resources: Mapping[str, Any]) -> list[str]:
    """Every volume encrypted: launch templates and instances map their root volume
    encrypted (an AMI's own mapping is not), and every EBS mapping or volume says so."""
    problems = []
    mapped = [(name, props.get("LaunchTemplateData", {}).get("BlockDeviceMappings", []))
              for name, props in _of_type(resources, "AWS::EC2::LaunchTemplate")]
    mapped += [(name, props.get("BlockDeviceMappings", [])) for name, props in _of_type(resources, "AWS::EC2::Instance")]
    for name, mappings in mapped:
        ebs = [m.get("Ebs") for m in mappings if "Ebs" in m]
        if not ebs:
            problems.append(f"{name}: its root volume is not mapped as encrypted (BlockDeviceMappings with "
                            "Ebs.Encrypted true)")
        elif any(e.get("Encrypted") is not True for e in ebs):
            problems.append(f"{name}: a volume is not encrypted (Ebs.Encrypted must be true)")
    for name, props in _of_type(resources, "AWS::EC2::Volume"):
        if props.get("Encrypted") is not True:
            problems.append(f"{name}: the volume is not encrypted")
    return problems


def https_problems(resources: Mapping[str, Any]) -> list[str]:
    """Each load balancer has an HTTPS listener with a certificate, and its HTTP listeners
    redirect to HTTPS rather than forward."""
    problems = []
    listeners = _of_type(resources, "AWS::ElasticLoadBalancingV2::Listener")
    for lb, _ in _of_type(resources, "AWS::ElasticLoadBalancingV2::LoadBalancer"):
        own = [(name, props) for name, props in listeners if _ref_name(props.get("LoadBalancerArn")) == lb]
        if not any(props.get("Protocol") == "HTTPS" and props.get("Certificates") for _, props in own):
            problems.append(f"{lb}: no HTTPS listener with a certificate")
        for name, props in own:
            actions = props.get("DefaultActions", [])
            redirects = all(a.get("Type") == "redirect" and a.get("RedirectConfig", {}).get("Protocol") == "HTTPS"
                            for a in actions)
            if props.get("Protocol") == "HTTP" and not (actions and redirects):
                problems.append(f"{name}: HTTP is served, not redirected to HTTPS")
    return problems
