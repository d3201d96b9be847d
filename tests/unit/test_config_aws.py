"""deploy.toml keys for AWS: discover, aws_region, database; each mistake one line with its key path."""

from __future__ import annotations

import pytest

from deployctl.config import parse_config
from deployctl.plan.resolved_config import resolve
from deployctl.errors import ConfigError

HEAD = """
app = "shop"
[registry]
server = "registry.example:5000"
[services.web]
context = "web"
routed = true
"""


def env(body: str) -> str:
    return HEAD + "[environments.production]\n" + body


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.problems


def test_ssh_with_discover_and_no_hosts_is_valid_with_defaults():
    config = parse_config(env('target = "ssh"\naws_region = "eu-west-1"\n'
                              'discover = { tags = { Role = "usersapp", Env = "production" } }\n'
                              '[environments.production.database]\nrds_instance = "usersapp-prod"\n'))
    production = config.environments["production"]
    assert production.hosts == [] and production.discover.address == "private_ip"
    assert production.discover.region is None and production.aws_region == "eu-west-1"
    assert (production.database.host_env, production.database.port_env) == ("DATABASE_HOST", "DATABASE_PORT")


@pytest.mark.parametrize("body, expected", [
    ('target = "ssh"\nhosts = ["h1"]\ndiscover = { tags = { Role = "x" } }',
     "environments.production: give either hosts or discover, not both"),
    ('target = "local"\ndiscover = { tags = { Role = "x" } }',
     "environments.production: a local environment deploys to this machine's engine; remove discover"),
    ('target = "ssh"\ndiscover = { tags = {} }',
     "environments.production.discover.tags: table should have at least 1 item after validation, not 0"),
    ('target = "ssh"\ndiscover = { tags = { Role = "x" }, address = "ipv6" }',
     "environments.production.discover.address: 'ipv6' is not an address choice "
     "(expected 'private_ip', 'public_ip' or 'tag:NAME')"),
    ('target = "ssh"\ndiscover = { region = "eu-west1", tags = { Role = "x" } }',
     "environments.production.discover.region: 'eu-west1' is not an AWS region (e.g. 'eu-west-1')"),
    ('target = "ssh"\ndiscover = { tags = { Role = "x" }, tag = "y" }',
     "environments.production.discover.tag: unknown key (did you mean 'tags'?)"),
    ('target = "ssh"\nhosts = ["h"]\ndatabase = { rds_instance = "1db" }',
     "environments.production.database.rds_instance: '1db' is not an RDS DB instance identifier "
     "(letters, digits and single '-', starting with a letter, at most 63)"),
    ('target = "ssh"\nhosts = ["h"]\ndatabase = { rds_instance = "db", port_env = "DATABASE_HOST" }',
     "environments.production.database: host_env and port_env are both 'DATABASE_HOST'; give them different names"),
    ('target = "ssh"\nhosts = ["h"]\ndatabase = { rds_instance = "db" }\nenv = { DATABASE_HOST = "x" }',
     "environments.production: env.DATABASE_HOST is also set from database.rds_instance; remove one of them"),
])
def test_each_mistake_is_one_line_after_its_key_path(body, expected):
    assert problems(env(body)) == [f"deploy.toml: {expected}"]


def test_config_view_shows_discovery_and_database_without_asking_aws(tmp_path):
    from deployctl.config import load_config

    path = tmp_path / "deploy.toml"
    path.write_text(env('target = "ssh"\ndiscover = { region = "eu-west-1", tags = { Role = "x" }, '
                        'address = "tag:Name" }\ndatabase = { rds_instance = "db" }\nsecrets = "ssm:/shop/prod/"\n'))
    view = resolve(load_config(path), "production")
    assert view["hosts"] == [] and view["secret_source"] == "ssm:/shop/prod/"
    assert view["discover"] == {"region": "eu-west-1", "tags": {"Role": "x"}, "address": "tag:Name"}
    assert view["database"] == {"rds_instance": "db", "host_env": "DATABASE_HOST", "port_env": "DATABASE_PORT"}
