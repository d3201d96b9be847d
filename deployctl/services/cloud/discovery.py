"""An environment's hosts found by EC2 tags (`discover`), so an autoscaled fleet needs no
host list in deploy.toml. Asked afresh by every command that works on the hosts."""

from __future__ import annotations

from ...config.models import Config, Environment
from ...config.models import Discover
from ...plan.cloud.aws import DiscoveredHost, choose_hosts, instance_filters, region_for


def discover_for(config: Config, environment: Environment, env_name: str) -> Discover | None:
    """The environment's discover table, or for an environment with an infra table and no
    hosts, the tags `deployctl infra` puts on its hosts (plan/cloud/infra.py)."""
    from ...plan.cloud.infra import derived_discover

    return derived_discover(config.app, env_name, environment)


def discover_hosts(config: Config, environment: Environment, env_name: str) -> list[DiscoveredHost]:
    """The running instances carrying every configured tag, sorted; ConfigError (exit 3)
    when none is running, ConnectError (exit 4) when AWS cannot be asked."""
    from ...adapters.aws import describe_instances

    discover = discover_for(config, environment, env_name)
    if discover is None:
        raise ValueError(f"environment {env_name!r} has no discover table")  # callers check first
    region = region_for(config, environment, discover.region)
    instances = describe_instances(region, instance_filters(discover.tags))
    where = f"environments.{env_name}." + ("discover" if environment.discover is not None else "infra (its stack's hosts)")
    return choose_hosts(instances, discover, region, where)
