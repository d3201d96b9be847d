"""plan/cloud/aws.py: regions, discovery filters, host choice and order, secret-name mapping. No I/O."""

from __future__ import annotations

import pytest

from deployctl.config import parse_config
from deployctl.config.models import Discover
from deployctl.errors import ConfigError, ExitCode
from deployctl.plan.cloud.aws import Instance, choose_hosts, database_env, instance_filters, json_secret_values, region_for, ssm_parameter

TAGS = {"Role": "usersapp", "Env": "production"}


def discover(address: str = "private_ip") -> Discover:
    return Discover(tags=TAGS, address=address)


def vm(id: str, state: str = "running", private: str | None = None, public: str | None = None, **tags: str) -> Instance:
    return Instance(id, state, private, public, {**TAGS, **tags})


def test_filters_and_every_tag_in_key_order():
    assert instance_filters(TAGS) == [{"Name": "tag:Env", "Values": ["production"]},
                                      {"Name": "tag:Role", "Values": ["usersapp"]}]


def test_only_running_instances_numeric_ip_order_then_id():
    found = choose_hosts([vm("i-c", private="10.0.0.10"), vm("i-b", "stopped", private="10.0.0.1"),
                          vm("i-a", private="10.0.0.9"), vm("i-d", "pending", private="10.0.0.2"),
                          vm("i-e", "terminated", private="10.0.0.3")], discover(), "eu-west-1", "x")
    assert [(h.address, h.instance.id) for h in found] == [("10.0.0.9", "i-a"), ("10.0.0.10", "i-c")]


def test_order_does_not_depend_on_what_aws_returns_first():
    instances = [vm(f"i-{n}", private=f"10.0.{n % 3}.{n}") for n in range(1, 9)]
    first = choose_hosts(instances, discover(), None, "x")
    assert choose_hosts(list(reversed(instances)), discover(), None, "x") == first


def test_address_public_ip_or_a_tag_that_may_carry_a_port():
    one = vm("i-1", private="10.0.0.5", public="54.1.2.3", Ssh="127.0.0.1:2201", Name="web-1")
    assert choose_hosts([one], discover("public_ip"), None, "x")[0].address == "54.1.2.3"
    assert choose_hosts([one], discover("tag:Ssh"), None, "x")[0].address == "127.0.0.1:2201"
    hosts = choose_hosts([vm("i-2", Ssh="b.internal"), vm("i-3", Ssh="a.internal:2222")], discover("tag:Ssh"), None, "x")
    assert [h.address for h in hosts] == ["a.internal:2222", "b.internal"]


def test_no_running_match_is_a_config_error_naming_tags_region_and_stopped_ones():
    with pytest.raises(ConfigError) as info:
        choose_hosts([vm("i-9", "stopped", Name="old")], discover(), "eu-west-1", "environments.production.discover")
    assert info.value.exit_code == ExitCode.CONFIG
    assert info.value.problems == [
        "environments.production.discover: no running EC2 instance in eu-west-1 has tags Env=production, "
        "Role=usersapp (matching but not running: i-9 (old) stopped)"]
    with pytest.raises(ConfigError, match=r"has tags Env=production, Role=usersapp$"):
        choose_hosts([], discover(), None, "x")


def test_a_running_instance_without_a_usable_address_is_refused_not_skipped():
    with pytest.raises(ConfigError) as info:
        choose_hosts([vm("i-1", private="10.0.0.1"), vm("i-2", private="10.0.0.2", Name="web-2")],
                     discover("public_ip"), None, "d")
    assert info.value.problems == ["d: running instance i-1 has no public IP",
                                   "d: running instance i-2 (web-2) has no public IP"]
    with pytest.raises(ConfigError, match="i-3: tag:Ssh: 'not a host!' is not a valid host"):
        choose_hosts([vm("i-3", Ssh="not a host!")], discover("tag:Ssh"), None, "d")
    with pytest.raises(ConfigError, match="instances i-4 and i-5 both have address 10.0.0.4"):
        choose_hosts([vm("i-4", Ssh="10.0.0.4"), vm("i-5", Ssh="10.0.0.4")], discover("tag:Ssh"), None, "d")


CONFIG = """
app = "shop"
[registry]
provider = "ecr"
server = "1.dkr.ecr.us-east-1.amazonaws.com"
region = "us-east-1"
[services.web]
context = "web"
routed = true
[environments.a]
target = "ssh"
hosts = ["h1"]
[environments.b]
target = "ssh"
aws_region = "eu-west-1"
discover = { region = "eu-central-1", tags = { Role = "web" } }
[environments.c]
target = "ssh"
discover = { region = "eu-central-1", tags = { Role = "web" } }
"""


def test_region_own_then_environment_then_discover_then_ecr_registry():
    config = parse_config(CONFIG)
    a, b, c = (config.environments[n] for n in "abc")
    assert region_for(config, a) == "us-east-1"
    assert region_for(config, b) == "eu-west-1"
    assert region_for(config, b, b.discover.region) == "eu-central-1"
    assert region_for(config, c) == "eu-central-1"
    assert region_for(config, a, "ap-south-1") == "ap-south-1"
    plain = parse_config(CONFIG.replace('provider = "ecr"', 'provider = "basic"'))
    assert region_for(plain, plain.environments["a"]) is None  # the AWS SDK's own chain decides


def test_ssm_parameter_names_with_or_without_the_trailing_slash():
    assert ssm_parameter("/usersapp/production/", "DB_PASSWORD") == "/usersapp/production/DB_PASSWORD"
    assert ssm_parameter("/usersapp/production", "DB_PASSWORD") == "/usersapp/production/DB_PASSWORD"


def test_json_secret_maps_keys_numbers_become_strings_absent_or_empty_is_missing():
    text = '{"A_PASSWORD": "a-value", "PIN": 1234, "EMPTY": "", "NULL": null}'
    assert json_secret_values("app/prod", text, ["A_PASSWORD", "PIN", "EMPTY", "NULL", "GONE"]) == {
        "A_PASSWORD": "a-value", "PIN": "1234", "EMPTY": None, "NULL": None, "GONE": None}


@pytest.mark.parametrize("text", ['["hunter2-value"]', "hunter2-value", '"hunter2-value"'])
def test_a_secret_that_is_not_a_json_object_is_refused_without_quoting_it(text):
    with pytest.raises(ConfigError) as info:
        json_secret_values("app/prod", text, ["X"])
    assert info.value.problems == ["Secrets Manager secret 'app/prod' is not a JSON object"]
    assert "hunter2" not in str(info.value.lines())


def test_nested_values_are_refused_by_key():
    with pytest.raises(ConfigError, match="key 'X' is not a string"):
        json_secret_values("s", '{"X": {"inner": "hunter2"}}', ["X"])


def test_database_env_uses_the_configured_names():
    config = parse_config(CONFIG.replace('hosts = ["h1"]', 'hosts = ["h1"]\ndatabase = { rds_instance = "db-1", '
                                                            'host_env = "DB_HOST" }'))
    assert database_env(config.environments["a"].database, "db-1.x.rds.amazonaws.com", 3306) == {
        "DB_HOST": "db-1.x.rds.amazonaws.com", "DATABASE_PORT": "3306"}
