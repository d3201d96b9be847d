"""Least privilege and limits of a service's containers (plan/cloud/hardening.py): the config keys
(validated, named by key path), their `docker create` flags on hosts and `docker service
create` flags on a Swarm (exact lists), and the refusal of what a Swarm cannot do."""

from __future__ import annotations

import pytest

from deployctl.config import parse_config
from deployctl.errors import ConfigError
from deployctl.plan.lifecycle import docker_commands as dc
from deployctl.plan.swarm import services as sw
from deployctl.plan.lifecycle.containers import release_containers
from deployctl.plan.cloud.hardening import Hardening

R1 = "20261206-000000-abc1234"

BASE = '''app = "shop"
[registry]
server = "reg:5000"
[services.web]
context = "web"
routed = true
{keys}
[environments.prod]
target = "{target}"
{where}
state_dir = "/srv/state"
'''


def config(keys: str = "", target: str = "ssh"):  # type: ignore[no-untyped-def]
    where = 'manager = "m1"' if target == "swarm" else 'hosts = ["web1"]'
    return parse_config(BASE.format(keys=keys, target=target, where=where))


FULL = 'memory = "512M"\ncpus = 1.5\npids_limit = 200\ncap_drop = ["all", "CAP_NET_RAW"]\nread_only = true'


def test_docker_create_gets_no_new_privileges_by_default_and_every_limit_set() -> None:
    cfg = config(FULL)
    [web] = release_containers(cfg, cfg.environments["prod"], "prod", R1, "abc", {"web": "r/web@sha256:1"})
    create = dc.create_service(web, f"shop-prod-{R1}")
    start = create.index("max-size=10m") + 1
    assert create[start:create.index("--label")] == [
        "--security-opt", "no-new-privileges", "--cap-drop", "ALL", "--cap-drop", "NET_RAW",
        "--read-only", "--tmpfs", "/tmp", "--memory", "512m", "--cpus", "1.5", "--pids-limit", "200"]
    migrate = dc.run_migration(web, f"shop-prod-{R1}", "shop-prod", "m", ["migrate"], {})[0]
    assert migrate[migrate.index("web") + 1:migrate.index("web") + 3] == ["--security-opt", "no-new-privileges"]


def test_no_new_privileges_can_be_turned_off() -> None:
    cfg = config("no_new_privileges = false")
    [web] = release_containers(cfg, cfg.environments["prod"], "prod", R1, "abc", {"web": "i"})
    assert "--security-opt" not in dc.create_service(web, "n") and web.hardening == Hardening(no_new_privileges=False)


def test_swarm_service_flags() -> None:
    assert Hardening(cap_drop=("ALL",), read_only=True, memory="1g", cpus=2.0, pids_limit=64).swarm_flags() == [
        "--cap-drop", "ALL", "--read-only", "--mount", "type=tmpfs,destination=/tmp",
        "--limit-memory", "1g", "--limit-cpu", "2", "--limit-pids", "64"]
    assert Hardening().swarm_flags() == []


def test_a_swarm_release_service_carries_the_limits() -> None:
    from deployctl.plan.lifecycle.names import StateLayout
    from deployctl.plan.lifecycle.release_spec import release_spec

    cfg = config(FULL, target="swarm")
    env = cfg.environments["prod"]
    spec = release_spec(cfg, "prod", R1, "abc", {"web": "r/web@sha256:1"}, "nginx:1")
    [web] = sw.release_services(cfg, env, "prod", spec, StateLayout("/srv/state", "shop", "prod"))
    argv = sw.create_service(web, "shop-prod")
    assert argv[argv.index("--no-resolve-image") + 1:argv.index("--restart-condition")] == [
        "--cap-drop", "ALL", "--cap-drop", "NET_RAW", "--read-only", "--mount", "type=tmpfs,destination=/tmp",
        "--limit-memory", "512m", "--limit-cpu", "1.5", "--limit-pids", "200"]
    assert "--security-opt" not in argv


@pytest.mark.parametrize("keys,message", [
    ('memory = "lots"', "services.web.memory"),
    ('memory = "1m"', "below the engine's minimum memory limit of 6m"),
    ('cap_drop = ["NET_RAWW"]', "'NET_RAWW' is not a Linux capability"),
    ("cpus = 0", "services.web.cpus"),
    ("pids_limit = 0", "services.web.pids_limit"),
    ('read_only = "yes"', "services.web.read_only"),
])
def test_bad_values_are_refused_by_key(keys: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(keys)
    assert message in "\n".join(info.value.lines())


def test_swarm_refuses_an_explicit_no_new_privileges_by_name() -> None:
    with pytest.raises(ConfigError) as info:
        config("no_new_privileges = true", target="swarm")
    text = "\n".join(info.value.lines())
    assert "services.web.no_new_privileges" in text and "environments.prod is a swarm environment" in text
    config(target="swarm")  # left at its default: hosts only, no refusal
    config("no_new_privileges = true", target="ssh")
