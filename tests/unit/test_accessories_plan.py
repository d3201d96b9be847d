"""Accessories: config validation, names, the exact docker argv, placeholders that reach an
accessory, and which secrets a deploy fetches — compared as data, no I/O."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.config import load_config, parse_config
from deployctl.config.load import LoadedConfig
from deployctl.errors import ConfigError
from deployctl.plan import accessories as acc
from deployctl.plan.containers import release_containers
from deployctl.plan.names import StateLayout
from deployctl.services.deploy_inputs import secret_names

REPO = Path(__file__).resolve().parents[2]
BASE = """
app = "shop"
[services.web]
context = "web"
routed = true
secrets = ["DB_PASSWORD"]
[services.web.env]
DB_HOST = "{{ db.host }}"
DB_URL = "{{ db.url }}"
[accessories.db]
image = "mariadb:11"
image_env = "MARIADB_IMAGE"
port = 3306
volumes = ["data:/var/lib/mysql"]
secrets = ["DB_PASSWORD"]
command = ["--character-set-server=utf8mb4"]
[accessories.db.env]
MARIADB_PASSWORD_FILE = "/run/secrets/DB_PASSWORD"
[accessories.db.healthcheck]
command = ["healthcheck.sh", "--connect"]
timeout = 90
[environments.local]
target = "local"
state_dir = "/srv/state"
accessories = ["db"]
[environments.local.env]
DB_PORT = "{{ db.port }}"
"""
CONFIG = parse_config(BASE)
LAYOUT = StateLayout("/srv/state", "shop", "local")


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.problems


def test_spec_names_image_env_and_secret_files():
    spec = acc.accessory_spec(CONFIG, "local", "db", LAYOUT, environ={})
    assert (spec.container, spec.image) == ("shop-local-db", "mariadb:11")
    assert spec.volumes == (("shop-local-db-data", "/var/lib/mysql"),)
    assert spec.secrets_dir == "/srv/state/shop/local/accessories/db/secrets"
    assert spec.secret_mounts() == [("/srv/state/shop/local/accessories/db/secrets/DB_PASSWORD", "/run/secrets/DB_PASSWORD")]
    assert spec.env == {"MARIADB_PASSWORD_FILE": "/run/secrets/DB_PASSWORD", "DB_PASSWORD_FILE": "/run/secrets/DB_PASSWORD"}
    # image_env replaces the image only when set and non-empty.
    assert acc.accessory_spec(CONFIG, "local", "db", LAYOUT, environ={"MARIADB_IMAGE": "standin/mariadb:x"}).image == "standin/mariadb:x"
    assert acc.accessory_spec(CONFIG, "local", "db", LAYOUT, environ={"MARIADB_IMAGE": ""}).image == "mariadb:11"


def test_run_argv_mounts_secret_files_never_values_and_publishes_nothing():
    spec = acc.accessory_spec(CONFIG, "local", "db", LAYOUT, environ={})
    assert acc.run(spec, "shop-local") == [
        "docker", "run", "--detach", "--name", "shop-local-db", "--network", "shop-local",
        "--restart", "unless-stopped", "--log-opt", "max-size=10m", "--stop-timeout", "30",
        "--label", "io.deployctl.accessory=db", "--label", "io.deployctl.app=shop",
        "--label", "io.deployctl.env=local", "--label", "io.deployctl.role=accessory",
        "-e", "DB_PASSWORD_FILE=/run/secrets/DB_PASSWORD", "-e", "MARIADB_PASSWORD_FILE=/run/secrets/DB_PASSWORD",
        "-v", "shop-local-db-data:/var/lib/mysql",
        "-v", "/srv/state/shop/local/accessories/db/secrets/DB_PASSWORD:/run/secrets/DB_PASSWORD:ro",
        "mariadb:11", "--character-set-server=utf8mb4",
    ]
    assert acc.health(spec) == ["docker", "exec", "shop-local-db", "healthcheck.sh", "--connect"]
    assert acc.volume_create(spec, "shop-local-db-data")[-1] == "shop-local-db-data"
    assert acc.stop(spec) == ["docker", "stop", "--time", "30", "shop-local-db"]
    assert acc.remove(spec) == ["docker", "rm", "--force", "shop-local-db"]  # never --volumes: data stays


def test_placeholders_reach_the_accessory_and_services_of_the_same_release():
    [web] = release_containers(CONFIG, CONFIG.environments["local"], "local", "R1", "abc", {"web": "img"}, LAYOUT)
    assert web.env["DB_HOST"] == "shop-local-db"
    assert web.env["DB_URL"] == "http://shop-local-db:3306"
    assert web.env["DB_PORT"] == "3306"  # from the environment's env


def test_dry_run_steps_show_the_boot_only_if_absent():
    steps = acc.planned_steps(CONFIG, "local", LAYOUT, environ={})
    assert [s.step for s in steps] == ["accessory"] * 4
    assert "write /srv/state/shop/local/accessories/db/secrets/DB_PASSWORD (mode 0600)" in steps[0].detail
    assert steps[2].argv[:3] == ("docker", "run", "--detach") and steps[3].argv[:2] == ("docker", "exec")


def test_deploy_fetches_the_environments_accessory_secrets_once(tmp_path):
    text = BASE.replace('secrets = ["DB_PASSWORD"]\ncommand', 'secrets = ["DB_PASSWORD", "DB_ROOT_PASSWORD"]\ncommand')
    loaded = LoadedConfig(tmp_path / "deploy.toml", parse_config(text))
    assert secret_names(loaded, "local") == ["DB_PASSWORD", "DB_ROOT_PASSWORD"]


@pytest.mark.parametrize("change, expected", [
    (('accessories = ["db"]', 'accessories = ["cache"]'),
     "environments.local.accessories: no accessory 'cache' (defined: db)"),
    (("[environments.local]", '[accessories.web]\nimage = "x"\n[environments.local]'),
     "accessories.web: the name is taken by a service"),
    (("[environments.local]", '[accessories.proxy]\nimage = "x"\n[environments.local]'),
     "accessories.proxy: the name is taken by the proxy"),
    (('volumes = ["data:/var/lib/mysql"]', 'volumes = ["/srv/data:/var/lib/mysql"]'),
     "accessories.db.volumes[0]: '/srv/data:/var/lib/mysql' is not a volume"),
    (("port = 3306\n", ""), "environments.local.env.DB_PORT: {{ db.port }} needs accessories.db.port"),
    (('DB_HOST = "{{ db.host }}"', 'DB_HOST = "{{ cache.host }}"'),
     "services.web.env.DB_HOST: {{ cache... }} names no service or accessory (services: web; accessories: db)"),
    (("[accessories.db.env]\n", '[accessories.db.env]\nMARIADB_ROOT_PASSWORD = "hunter22"\n'),
     "accessories.db.env.MARIADB_ROOT_PASSWORD: looks like a secret value"),
    (('image = "mariadb:11"', 'image = "mariadb:11"\nimgae = "x"'), "accessories.db.imgae: unknown key"),
])
def test_mistakes_name_the_key(change, expected):
    text = BASE.replace(*change)
    assert text != BASE
    found = problems(text)
    assert any(expected in line for line in found), found


def test_the_projects_local_environment_runs_mariadb_as_an_accessory():
    loaded = load_config(REPO / "deploy.toml")
    layout = StateLayout("/var/lib/deployctl", "usersapp", "local")
    [db] = acc.environment_accessories(loaded.config, "local", layout, environ={})
    assert (db.container, db.image) == ("usersapp-local-db", "mariadb:11")
    assert db.env["MARIADB_PASSWORD_FILE"] == "/run/secrets/DATABASE_PASSWORD"  # the backend's own secret
    specs = release_containers(loaded.config, loaded.environment("local"), "local", "R1", None,
                               {"backend": "b", "frontend": "f"}, layout)
    backend = next(s for s in specs if s.service == "backend")
    assert (backend.env["DATABASE_HOST"], backend.env["DATABASE_PORT"]) == ("usersapp-local-db", "3306")
    assert loaded.environment("staging").accessories == []  # staging and production use their own databases
