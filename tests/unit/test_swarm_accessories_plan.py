"""Accessories on a Swarm (plan/swarm/swarm_accessories.py): the config asks a pinned node of an
accessory with data, refuses what cannot reach a node yet, and the service an accessory
becomes is exact data: one task, its constraint, its alias on the app's network, its
volumes, Docker secrets and health check, no secret value on the argv."""

from __future__ import annotations

import pytest

from deployctl.config.load import parse_config
from deployctl.plan.data import accessories as acc
from deployctl.plan.swarm import swarm_accessories as sa
from deployctl.plan.lifecycle.names import Names, StateLayout

CONFIG_TEXT = """
app = "shop"
[registry]
server = "registry.example:5000"
[services.web]
context = "web"
routed = true
[services.web.env]
CACHE_URL = "{{ cache.url }}"
[accessories.cache]
image = "registry.example:5000/redis@sha256:r"
port = 6379
volumes = ["data:/data"]
secrets = ["CACHE_PASSWORD"]
placement = ["node.hostname==cache-1"]
command = ["redis-server", "--appendonly", "yes"]
[accessories.cache.env]
REDIS_ARGS = "--requirepass {{ secret.CACHE_PASSWORD }}"
MODE = "primary"
[accessories.cache.healthcheck]
command = ["redis-cli", "ping"]
interval = 2
timeout = 40
[environments.prod]
target = "swarm"
manager = "10.0.0.1"
accessories = ["cache"]
"""


def test_an_accessory_on_a_swarm_is_accepted_when_pinned_and_its_placement_is_checked():
    config = parse_config(CONFIG_TEXT)
    assert config.accessories["cache"].placement == ["node.hostname==cache-1"]
    unpinned = CONFIG_TEXT.replace('placement = ["node.hostname==cache-1"]\n', "")
    with pytest.raises(Exception, match=r"accessories\.cache\.placement: .*volumes.* must be pinned to a node"):
        parse_config(unpinned)
    # Without volumes Swarm may run it anywhere.
    parse_config(unpinned.replace('volumes = ["data:/data"]\n', ""))
    with pytest.raises(Exception, match=r"accessories\.cache\.placement\[0\]: 'hostname=cache-1' is not a Swarm "
                                        r"placement constraint"):
        parse_config(CONFIG_TEXT.replace("node.hostname==cache-1", "hostname=cache-1"))
    # Its files are accepted: Docker configs carry them to the node (next test).
    parse_config(CONFIG_TEXT.replace("placement =", 'files = ["redis.conf:/etc/redis.conf"]\nplacement ='))


def test_an_accessorys_files_become_docker_configs_named_by_their_content_and_mounted_read_only():
    config = parse_config(CONFIG_TEXT.replace(
        "placement =", 'files = ["conf/redis.conf:/etc/redis.conf", "init.sql:/docker-entrypoint-initdb.d/1.sql"]\n'
                       "placement ="))
    layout = StateLayout("/var/lib/deployctl", "shop", "prod")
    spec = acc.accessory_spec(config, "prod", "cache", layout, environ={})
    names = Names("shop", "prod")
    contents = {spec.files[0].host: b"maxmemory 64mb\n", spec.files[1].host: b"CREATE TABLE t (id INT);\n"}
    configs = sa.config_names(names, spec, contents)
    import hashlib
    digest = hashlib.sha256(b"maxmemory 64mb\n").hexdigest()[:12]
    assert configs["/etc/redis.conf"] == f"shop-prod-cache-file0-{digest}"
    assert configs["/docker-entrypoint-initdb.d/1.sql"].startswith("shop-prod-cache-file1-")
    changed = sa.config_names(names, spec, {**contents, spec.files[0].host: b"maxmemory 128mb\n"})
    assert changed["/etc/redis.conf"] != configs["/etc/redis.conf"]  # immutable: new content, new config
    assert changed["/docker-entrypoint-initdb.d/1.sql"] == configs["/docker-entrypoint-initdb.d/1.sql"]
    argv = sa.create(spec, names, ("node.hostname==cache-1",), configs=configs)
    at = argv.index("--config")
    assert argv[at:at + 4] == [
        "--config", f"source={configs['/docker-entrypoint-initdb.d/1.sql']},target=/docker-entrypoint-initdb.d/1.sql,"
                    "mode=0444",
        "--config", f"source={configs['/etc/redis.conf']},target=/etc/redis.conf,mode=0444"]
    assert b"maxmemory".decode() not in " ".join(argv)  # the content goes on stdin, never on the argv
    long = sa.config_name(Names("a" * 40, "production"), "database", 3, b"x")
    assert len(long) <= 64 and long.endswith("-file3-" + hashlib.sha256(b"x").hexdigest()[:12])
    steps = sa.planned_steps(config, "prod", layout, environ={}, files=contents)
    described = [s.detail for s in steps]
    assert f"cache: docker config {configs['/etc/redis.conf']} from conf/redis.conf (stdin), if missing" in described


def test_an_accessory_becomes_one_pinned_swarm_service_with_its_alias_volumes_secrets_and_health():
    config = parse_config(CONFIG_TEXT)
    layout = StateLayout("/var/lib/deployctl", "shop", "prod")
    spec = acc.accessory_spec(config, "prod", "cache", layout, environ={})
    names = Names("shop", "prod")
    labels = ["io.deployctl.accessory=cache", "io.deployctl.app=shop", "io.deployctl.env=prod",
              "io.deployctl.role=accessory"]
    assert sa.create(spec, names, ("node.hostname==cache-1",)) == [
        "docker", "service", "create", "--detach", "--name", "shop-prod-cache", "--replicas", "1",
        "--endpoint-mode", "dnsrr", "--network", "name=shop-prod,alias=cache",
        "--constraint", "node.hostname==cache-1",
        *[a for label in labels for a in ("--label", label)],
        *[a for label in labels for a in ("--container-label", label)],
        "--env", "CACHE_PASSWORD_FILE=/run/secrets/CACHE_PASSWORD", "--env", "MODE=primary",
        "--env-file", "/var/lib/deployctl/shop/prod/accessories/cache/env",
        "--mount", "type=volume,source=shop-prod-cache-data,target=/data",
        "--secret", "source=shop-prod-cache-CACHE_PASSWORD,target=CACHE_PASSWORD",
        "--restart-condition", "any", "--restart-delay", "1s", "--stop-grace-period", "30s",
        "--log-opt", "max-size=10m", "--no-resolve-image",
        "--health-cmd", "redis-cli ping", "--health-interval", "2000ms", "--health-timeout", "5000ms",
        "--health-retries", "3", "--health-start-period", "40000ms",
        "registry.example:5000/redis@sha256:r", "redis-server", "--appendonly", "yes",
    ]
    assert "{{ secret" not in " ".join(sa.create(spec, names, ()))  # the template stays in the env file
    assert "--with-registry-auth" in sa.create(spec, names, (), registry_auth=True)


def test_an_accessory_services_other_verbs_are_exact():
    config = parse_config(CONFIG_TEXT)
    spec = acc.accessory_spec(config, "prod", "cache", StateLayout("/s", "shop", "prod"), environ={})
    assert sa.scale(spec, 0) == ["docker", "service", "scale", "--detach", "shop-prod-cache=0"]
    assert sa.remove(spec) == ["docker", "service", "rm", "shop-prod-cache"]
    assert sa.logs(spec, 5, follow=True) == ["docker", "service", "logs", "--tail", "5", "--follow", "shop-prod-cache"]
    assert sa.inspect(spec)[-1] == "shop-prod-cache"
    assert sa.secret_name(Names("shop", "prod"), "cache", "X") == "shop-prod-cache-X"
    assert len(sa.secret_name(Names("a" * 40, "production"), "cache", "PASSWORD")) <= 64


def test_the_swarm_dry_run_shows_the_accessory_service_it_creates_and_no_secret_value():
    config = parse_config(CONFIG_TEXT)
    layout = StateLayout("/var/lib/deployctl", "shop", "prod")
    steps = sa.planned_steps(config, "prod", layout, environ={})
    spec = acc.accessory_spec(config, "prod", "cache", layout, environ={})
    assert [s.step for s in steps] == ["accessory"] * 3
    assert "shop-prod-cache-CACHE_PASSWORD from stdin" in steps[0].detail
    assert "REDIS_ARGS" in steps[1].detail
    assert steps[2].argv == tuple(sa.create(spec, Names("shop", "prod"), ("node.hostname==cache-1",)))
