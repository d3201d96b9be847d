"""Accessories: config validation, names, the exact docker argv, placeholders that reach an
accessory, and which secrets a deploy fetches — compared as data, no I/O."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.config import load_config, parse_config
from deployctl.config.load import LoadedConfig
from deployctl.errors import ConfigError
from deployctl.plan.data import accessories as acc
from deployctl.plan.lifecycle.containers import release_containers
from deployctl.plan.lifecycle.names import StateLayout
from deployctl.services.lifecycle.deploy_inputs import secret_names
from deployctl.services.env import Env

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
        "--network-alias", "db",
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
    [web] = release_containers(CONFIG, CONFIG.environments["local"], "local", "20261127-101500-abc1234", "abc", {"web": "img"}, LAYOUT)
    assert web.env["DB_HOST"] == "shop-local-db"
    assert web.env["DB_URL"] == "http://shop-local-db:3306"
    assert web.env["DB_PORT"] == "3306"  # from the environment's env


def test_dry_run_steps_show_the_boot_only_if_absent():
    steps = acc.planned_steps(CONFIG, "local", LAYOUT, environ={})
    assert [s.step for s in steps] == ["accessory"] * 4
    assert "write /srv/state/shop/local/accessories/db/secrets/DB_PASSWORD (mode 0444, in a 0700 folder)" in steps[0].detail
    assert steps[2].argv[:3] == ("docker", "run", "--detach") and steps[3].argv[:2] == ("docker", "exec")


def test_deploy_fetches_the_environments_accessory_secrets_once(tmp_path):
    text = BASE.replace('secrets = ["DB_PASSWORD"]\ncommand', 'secrets = ["DB_PASSWORD", "DB_ROOT_PASSWORD"]\ncommand')
    loaded = LoadedConfig(tmp_path / "deploy.toml", parse_config(text))
    assert secret_names(Env.resolve(loaded, "local")) == ["DB_PASSWORD", "DB_ROOT_PASSWORD"]


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
    specs = release_containers(loaded.config, loaded.environment("local"), "local", "20261127-101500-abc1234", None,
                               {"backend": "b", "frontend": "f"}, layout)
    backend = next(s for s in specs if s.service == "backend")
    assert (backend.env["DATABASE_HOST"], backend.env["DATABASE_PORT"]) == ("usersapp-local-db", "3306")
    assert loaded.environment("staging").accessories == []  # staging and production use their own databases


# -- issue 11: the alias, {{ secret.NAME }} in env values, files, build ------------------------

RICH = BASE.replace("[accessories.db.env]\n", """[accessories.db.env]
MYSQL_ROOT_PASSWORD = "{{ secret.DB_ROOT_PASSWORD }}"
MYSQL_DATABASE = "shop"
DSN = "mysql://root:{{ secret.DB_ROOT_PASSWORD }}@localhost/{{ secret.DB_NAME }}"
""").replace('volumes = ["data:/var/lib/mysql"]',
             'volumes = ["data:/var/lib/mysql"]\nfiles = ["db/init.sql:/docker-entrypoint-initdb.d/init.sql", '
             '"conf/my.cnf:/etc/mysql/conf.d/my.cnf"]')


def test_secret_env_values_go_to_an_env_file_never_to_argv_and_files_mount_read_only():
    spec = acc.accessory_spec(parse_config(RICH), "local", "db", LAYOUT, environ={})
    assert spec.env == {"MARIADB_PASSWORD_FILE": "/run/secrets/DB_PASSWORD", "MYSQL_DATABASE": "shop",
                        "DB_PASSWORD_FILE": "/run/secrets/DB_PASSWORD"}
    assert spec.env_templates == {
        "MYSQL_ROOT_PASSWORD": "{{ secret.DB_ROOT_PASSWORD }}",
        "DSN": "mysql://root:{{ secret.DB_ROOT_PASSWORD }}@localhost/{{ secret.DB_NAME }}"}
    assert spec.env_file == "/srv/state/shop/local/accessories/db/env"
    assert spec.secret_names() == ["DB_PASSWORD", "DB_ROOT_PASSWORD", "DB_NAME"]
    assert [(f.key, f.local, f.host, f.inside) for f in spec.files] == [
        ("accessories.db.files[0]", "db/init.sql",
         "/srv/state/shop/local/accessories/db/files/docker-entrypoint-initdb.d/init.sql",
         "/docker-entrypoint-initdb.d/init.sql"),
        ("accessories.db.files[1]", "conf/my.cnf", "/srv/state/shop/local/accessories/db/files/etc/mysql/conf.d/my.cnf",
         "/etc/mysql/conf.d/my.cnf"),
    ]
    assert acc.run(spec, "shop-local") == [
        "docker", "run", "--detach", "--name", "shop-local-db", "--network", "shop-local",
        "--network-alias", "db",
        "--restart", "unless-stopped", "--log-opt", "max-size=10m", "--stop-timeout", "30",
        "--label", "io.deployctl.accessory=db", "--label", "io.deployctl.app=shop",
        "--label", "io.deployctl.env=local", "--label", "io.deployctl.role=accessory",
        "-e", "DB_PASSWORD_FILE=/run/secrets/DB_PASSWORD", "-e", "MARIADB_PASSWORD_FILE=/run/secrets/DB_PASSWORD",
        "-e", "MYSQL_DATABASE=shop",
        "--env-file", "/srv/state/shop/local/accessories/db/env",
        "-v", "shop-local-db-data:/var/lib/mysql",
        "-v", "/srv/state/shop/local/accessories/db/secrets/DB_PASSWORD:/run/secrets/DB_PASSWORD:ro",
        "-v", "/srv/state/shop/local/accessories/db/files/docker-entrypoint-initdb.d/init.sql:"
              "/docker-entrypoint-initdb.d/init.sql:ro",
        "-v", "/srv/state/shop/local/accessories/db/files/etc/mysql/conf.d/my.cnf:/etc/mysql/conf.d/my.cnf:ro",
        "mariadb:11", "--character-set-server=utf8mb4",
    ]


def test_env_file_body_is_rendered_sorted_and_literal():
    from deployctl.plan.lifecycle.env_values import env_file
    from deployctl.secrets import Secret

    spec = acc.accessory_spec(parse_config(RICH), "local", "db", LAYOUT, environ={})
    body = env_file(spec.env_templates, {"DB_ROOT_PASSWORD": Secret("r00t pw$x"), "DB_NAME": Secret("shop")})
    assert body == b"DSN=mysql://root:r00t pw$x@localhost/shop\nMYSQL_ROOT_PASSWORD=r00t pw$x\n"


def test_dry_run_names_the_env_file_and_files_but_shows_no_secret_value():
    steps = acc.planned_steps(parse_config(RICH), "local", LAYOUT, environ={})
    details = [s.detail for s in steps]
    assert ("db: write /srv/state/shop/local/accessories/db/env (mode 0600) with DSN, MYSQL_ROOT_PASSWORD, "
            "only if absent") in details
    assert ("db: upload db/init.sql to /srv/state/shop/local/accessories/db/files/docker-entrypoint-initdb.d/init.sql "
            "(mode 0644) when it differs") in details
    run = next(s.argv for s in steps if s.argv and s.argv[:2] == ("docker", "run"))
    assert "--env-file" in run and not any("secret." in a or "ROOT_PASSWORD" in a for a in run)


def test_deploy_fetches_secrets_used_in_accessory_env_values(tmp_path):
    loaded = LoadedConfig(tmp_path / "deploy.toml", parse_config(RICH))
    assert secret_names(Env.resolve(loaded, "local")) == ["DB_PASSWORD", "DB_ROOT_PASSWORD", "DB_NAME"]


def test_state_format_reports_aliases_per_network():
    assert acc.parse_aliases("shop-local=db,0123abcd;bridge=;\n") == {"shop-local": ["db", "0123abcd"], "bridge": []}
    assert acc.parse_aliases("") == {}
    assert acc.inspect(["shop-local-db"]) == ["docker", "container", "inspect", "--format", acc.STATE_FORMAT,
                                              "shop-local-db"]
    assert acc.STATE_FORMAT.endswith("{{range $net, $ep := .NetworkSettings.Networks}}"
                                     '{{$net}}={{range $ep.Aliases}}{{.}},{{end}};{{end}}')


BUILT = BASE.replace('image = "mariadb:11"\nimage_env = "MARIADB_IMAGE"', 'build = "db"\ndockerfile = "Containerfile"')


def test_a_built_accessory_is_built_and_recorded_beside_the_services():
    from deployctl.plan.pipeline.build import plan_builds
    from deployctl.plan.pipeline.images import built_image_names, image_names

    config = parse_config(BUILT)
    assert image_names(config) == ["web"]  # a release's images: accessories are not part of one
    assert built_image_names(config) == ["web", "db"]
    loaded = LoadedConfig(Path("/p/deploy.toml"), config)
    [web, db] = plan_builds(loaded, ["web", "db"], tag="abc", git=None, created="2026-01-01T00:00:00Z")
    assert (db.name, db.repository, db.reference, db.context, db.dockerfile, db.target, db.test_target) == (
        "db", "shop/db", "shop/db:abc", Path("/p/db"), "Containerfile", None, None)
    assert db.labels["io.deployctl.service"] == "db"
    spec = acc.accessory_spec(config, "local", "db", LAYOUT, environ={})
    assert (spec.build, spec.image) == ("db", "")  # the image comes from the artifacts file


def test_a_deploy_runs_the_built_accessory_image_from_the_artifacts_file(tmp_path):
    from deployctl.artifacts import Artifacts, ImageArtifact
    from deployctl.services.lifecycle.release_images import resolve_images

    text = BUILT.replace('[environments.local]', '[registry]\nserver = "reg:5000"\n[environments.prod]\n'
                         'target = "ssh"\nhosts = ["h1"]\naccessories = ["db"]\n[environments.local]')
    loaded = LoadedConfig(tmp_path / "deploy.toml", parse_config(text))
    web = ImageArtifact("reg:5000/web", "t1", "sha256:w", digest="sha256:wd")
    built = Artifacts("shop", None, False, "t1", "2026-01-01T00:00:00Z",
                      {"web": web, "db": ImageArtifact("reg:5000/db", "t1", "sha256:d")})
    local = resolve_images(Env.resolve(loaded, "local"), built)
    assert (local.images, local.accessories) == ({"web": "sha256:w"}, {"db": "sha256:d"})
    # ssh hosts pull by digest: an accessory image not pushed yet is left out (booting it fails then).
    assert resolve_images(Env.resolve(loaded, "prod"), built).accessories == {}
    pushed = built.with_image("db", ImageArtifact("reg:5000/db", "t1", "sha256:d", digest="sha256:dd"))
    assert resolve_images(Env.resolve(loaded, "prod"), pushed).accessories == {"db": "reg:5000/db@sha256:dd"}

    env = Env.resolve(loaded, "local")
    laid = env.with_accessory_images(local.accessories)
    spec = acc.accessory_spec(laid.config, "local", "db", LAYOUT, environ={})
    assert (spec.image, spec.build) == ("sha256:d", "db")
    assert laid.loaded.config is laid.config and laid.settings is laid.config.environments["local"]
    assert (laid.names, laid.layout, laid.proxy_port) == (env.names, env.layout, env.proxy_port)
    assert loaded.config.accessories["db"].image is None  # the loaded config itself is left as it was
    assert env.config.accessories["db"].image is None  # and so is the Env it was laid over
    assert env.with_accessory_images({}) is env


# -- the boot's health wait: a crash ends it at once ---------------------------------------

class CrashingEngine:
    """`docker container inspect` answers from a script (the last line repeats); `docker
    logs` gives the accessory's output; its health command never passes."""

    host = "localhost"

    def __init__(self, *states: tuple[str, int, int]) -> None:
        self.states, self.inspects = list(states), 0

    def run(self, argv, *, stdin=None, timeout=None, on_line=None):  # type: ignore[no-untyped-def]
        from deployctl.adapters.connector import CommandResult

        if argv[:3] == ["docker", "container", "inspect"]:
            self.inspects += 1
            status, code, restarts = self.states[min(self.inspects, len(self.states)) - 1]
            return CommandResult(0, f"/shop-local-db|{status}|mariadb:11||2026-12-06T00:00:00Z|abc|{code}|{restarts}|"
                                    "shop-local=db,;\n", "")
        if argv[:2] == ["docker", "logs"]:
            return CommandResult(0, "", "[ERROR] mariadbd: unknown variable 'innodb_bogus=1'\n")
        if argv[:2] == ["docker", "exec"]:
            return CommandResult(1, "", "connection refused")
        raise AssertionError(f"unexpected argv {argv}")


def test_an_accessory_in_a_restart_loop_fails_its_wait_at_once_with_exit_code_and_last_line():
    from deployctl.services.data.accessories import AccessoryError, wait_healthy

    spec = acc.accessory_spec(CONFIG, "local", "db", LAYOUT, environ={})
    engine = CrashingEngine(("running", 0, 0), ("restarting", 7, 1))
    with pytest.raises(AccessoryError, match=r"accessory db crashed while starting: it exited with code 7 .*"
                                             r"its last log line: \[ERROR\] mariadbd: unknown variable"):
        wait_healthy(engine, spec, lambda e: None, sleep=lambda s: None)
    assert engine.inspects == 2


def test_an_accessory_that_restarted_before_the_wait_is_waited_for():
    from deployctl.services.data.accessories import AccessoryError, wait_healthy

    spec = acc.accessory_spec(CONFIG, "local", "db", LAYOUT, environ={})
    engine = CrashingEngine(("running", 0, 5))
    with pytest.raises(AccessoryError, match="not healthy after"):
        wait_healthy(engine, spec.__class__(**{**vars(spec), "health_timeout": 0.2}), lambda e: None,
                     sleep=lambda s: __import__("time").sleep(0.05))
    assert engine.inspects > 2


def test_an_accessorys_secret_files_are_readable_by_the_user_its_entrypoint_drops_to():
    """The official postgres/mariadb images start as root and read *_FILE after dropping to
    their own user: the file is 0444 (as Swarm mounts secrets), its host folder 0700."""
    from deployctl.secrets import Secret
    from deployctl.services.data.accessories import write_secrets
    from tests.support.fake_host import FakeHost

    spec = acc.accessory_spec(CONFIG, "local", "db", LAYOUT, environ={})
    host = FakeHost("local", images=["mariadb:11"])
    write_secrets(host, spec, {"DB_PASSWORD": Secret("s3cret-value")})
    assert host.files[f"{spec.secrets_dir}/DB_PASSWORD"] == (b"s3cret-value", 0o444)
    assert ("mkdir", spec.secrets_dir) in host.calls
    assert not [text for _, text in host.calls if "s3cret-value" in text]
