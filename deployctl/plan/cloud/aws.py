"""Pure AWS decisions: which region a lookup uses, the EC2 filters for discovery, which
instances are hosts and at which address, SSM parameter names, and how a Secrets Manager
JSON secret maps to secret names. No boto3 here: adapters/aws.py does the calls.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ...config.models import Config, Database, Discover, Environment, check_host, split_host
from ...errors import ConfigError

RUNNING = "running"


@dataclass(frozen=True)
class Instance:
    """What discovery needs of an EC2 instance (the adapter's DescribeInstances, flattened)."""

    id: str
    state: str
    private_ip: str | None = None
    public_ip: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.tags.get("Name", "")

    def label(self) -> str:
        return f"{self.id} ({self.name})" if self.name else self.id


@dataclass(frozen=True)
class DiscoveredHost:
    address: str  # what SSH connects to: an IP, or a tag's value (which may carry :port)
    instance: Instance


def region_for(config: Config, environment: Environment, own: str | None = None) -> str | None:
    """A lookup's region: its own (discover.region), else the environment's aws_region, else
    infra.region, else discover.region, else the ECR registry's region. None leaves it to the AWS SDK's own
    chain (AWS_REGION, AWS_DEFAULT_REGION, the profile)."""
    registry = config.registry
    return (own or environment.aws_region
            or (environment.infra.region if environment.infra else None)
            or (environment.discover.region if environment.discover else None)
            or (registry.region if registry is not None and registry.provider == "ecr" else None))


def instance_filters(tags: Mapping[str, str]) -> list[dict]:
    """DescribeInstances filters: every tag must match (EC2 ANDs filters). The state is
    filtered afterwards, so that "matches, but stopped" can be told apart from "no match"."""
    return [{"Name": f"tag:{key}", "Values": [value]} for key, value in sorted(tags.items())]


def address_of(instance: Instance, choice: str) -> str | None:
    if choice == "private_ip":
        return instance.private_ip
    if choice == "public_ip":
        return instance.public_ip
    return instance.tags.get(choice.removeprefix("tag:")) or None


def sort_key(host: DiscoveredHost) -> tuple:
    """IP addresses in numeric order, then names; the instance id breaks ties. The order
    decides batches and which host runs migrations, so it must not depend on AWS's."""
    name, port = split_host(host.address)
    try:
        ip = ipaddress.ip_address(name)
        return (0, ip.version, int(ip), "", port or 0, host.instance.id)
    except ValueError:
        return (1, 0, 0, name.lower(), port or 0, host.instance.id)


def describe_tags(tags: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))


def choose_hosts(instances: Sequence[Instance], discover: Discover, region: str | None,
                 where: str) -> list[DiscoveredHost]:
    """The running instances as hosts, sorted. Refuses (ConfigError) rather than deploying to
    fewer hosts than intended: no running match, a running match without the chosen address,
    an address that is not a host, or two instances giving the same address."""
    running = [i for i in instances if i.state == RUNNING]
    in_region = f" in {region}" if region else ""
    if not running:
        others = ", ".join(f"{i.label()} {i.state}" for i in sorted(instances, key=lambda i: i.id))
        raise ConfigError(
            [f"{where}: no running EC2 instance{in_region} has tags {describe_tags(discover.tags)}"
             + (f" (matching but not running: {others})" if others else "")],
            hint="check the tags and the region; stopped, pending and terminated instances are never deploy targets",
        )
    problems, hosts, seen = [], [], {}
    for instance in running:
        address = address_of(instance, discover.address)
        if address is None:
            problems.append(f"{where}: running instance {instance.label()} has no {_what(discover.address)}")
            continue
        try:
            check_host(address)
        except ValueError as exc:
            problems.append(f"{where}: instance {instance.label()}: {discover.address}: {exc}")
            continue
        if address in seen:
            problems.append(f"{where}: instances {seen[address]} and {instance.id} both have address {address}")
            continue
        seen[address] = instance.id
        hosts.append(DiscoveredHost(address, instance))
    if problems:
        raise ConfigError(problems, hint=f"fix the instances, or choose another address (now {discover.address!r})")
    return sorted(hosts, key=sort_key)


def _what(choice: str) -> str:
    return {"private_ip": "private IP", "public_ip": "public IP"}.get(choice, f"tag {choice.removeprefix('tag:')!r}")


# -- secrets ---------------------------------------------------------------------------------

def ssm_parameter(prefix: str, name: str) -> str:
    """`ssm:/usersapp/production/` + DATABASE_PASSWORD -> /usersapp/production/DATABASE_PASSWORD
    (the trailing slash may be left out)."""
    return prefix.rstrip("/") + "/" + name


def json_secret_values(secret_id: str, text: str, names: Sequence[str]) -> dict[str, str | None]:
    """Each name's value from a Secrets Manager JSON secret ({"NAME": "value", ...}). Numbers
    become strings; a key that is absent, null or empty counts as missing. Error messages
    never quote the secret's text."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ConfigError([f"Secrets Manager secret {secret_id!r} is not a JSON object"],
                          hint='store the secrets as one JSON object: {"DATABASE_PASSWORD": "...", ...}')
    out: dict[str, str | None] = {}
    bad = []
    for name in names:
        value = data.get(name)
        if isinstance(value, bool) or isinstance(value, (dict, list)):
            bad.append(name)
            value = None
        elif isinstance(value, (int, float)):
            value = str(value)
        out[name] = value or None
    if bad:
        raise ConfigError([f"Secrets Manager secret {secret_id!r}: key {name!r} is not a string" for name in bad])
    return out


def database_env(database: Database, address: str, port: int) -> dict[str, str]:
    return {database.host_env: address, database.port_env: str(port)}
