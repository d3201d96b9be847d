"""Pure decisions of `deployctl infra`: where the database password lives, which hosts an
infra-made environment deploys to, what a change set's changes mean (add / modify /
replace / remove, with the database's replacement flagged), and the security rules every
rendered template must pass. No boto3 here: adapters/cloudformation.py does the calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..config.models import Database, Discover, Environment, Infra
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
               proxy_port: int, proxy_healthcheck: str) -> InfraSpec:
    infra = environment.infra
    assert infra is not None
    store = password_store(environment)
    return InfraSpec(app=app, environment=env_name, infra=infra, ssh_public_key=ssh_public_key.strip(),
                     ssh_user=environment.ssh.user, state_dir=environment.state_dir, proxy_port=proxy_port,
                     proxy_healthcheck=proxy_healthcheck,
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


def security_problems(template: Mapping[str, Any], *, proxy_port: int, listener_port: int | None) -> list[str]:
    """Our own rules, checked on every rendered template (and in the unit tests): no ingress
    open to the world except the proxy port (or the load balancer's listener), SSH never from
    the world, the database never publicly accessible and always encrypted."""
    problems = []
    allowed = {proxy_port} | ({listener_port} if listener_port is not None else set())
    for name, resource in template.get("Resources", {}).items():
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
    return problems
