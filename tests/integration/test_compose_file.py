"""docker-compose.yaml (the local development stack) is valid for Debian's docker-compose
1.29 and keeps its promises: base images from the environment, the backend and the
database unpublished, passwords as file secrets rather than inline values."""
from __future__ import annotations

import functools
import os
import shutil
import subprocess

import pytest
import yaml

from tests.support.app_stack import REPO

pytestmark = pytest.mark.integration

OVERRIDES = ("PYTHON_BASE_IMAGE", "NGINX_BASE_IMAGE", "MARIADB_IMAGE", "HTTP_PORT", "HTTP_BIND",
             "DEV_DB_PASSWORD_FILE", "DEV_FRONTEND_SECRET_KEY_FILE")


def compose(*args: str, **env: str) -> subprocess.CompletedProcess:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed: apt-get install -y docker-compose", pytrace=False)
    clean = {k: v for k, v in os.environ.items() if k not in OVERRIDES}
    return subprocess.run(["docker-compose", "-f", str(REPO / "docker-compose.yaml"), *args],
                          env={**clean, **env}, capture_output=True, text=True, timeout=60, cwd=REPO)


@functools.lru_cache(maxsize=None)
def resolved(**env: str) -> dict:
    done = compose("config", **env)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_config_is_valid():
    done = compose("config", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


def test_official_images_are_the_defaults():
    services = resolved()["services"]
    assert services["backend"]["build"]["args"]["BASE_IMAGE"] == "python:3.12-slim"
    assert services["frontend"]["build"]["args"]["BASE_IMAGE"] == "python:3.12-slim"
    assert services["nginx"]["build"]["args"]["BASE_IMAGE"] == "nginx:1.27-alpine"
    assert services["db"]["image"] == "mariadb:11"


def test_base_images_come_from_the_environment():
    services = resolved(PYTHON_BASE_IMAGE="deployctl-standin/python:3.11-bookworm",
                        NGINX_BASE_IMAGE="deployctl-standin/nginx:bookworm",
                        MARIADB_IMAGE="deployctl-standin/mariadb:bookworm")["services"]
    assert services["migrate"]["build"]["args"]["BASE_IMAGE"] == "deployctl-standin/python:3.11-bookworm"
    assert services["nginx"]["build"]["args"]["BASE_IMAGE"] == "deployctl-standin/nginx:bookworm"
    assert services["db"]["image"] == "deployctl-standin/mariadb:bookworm"


def test_only_nginx_publishes_a_port_and_it_cannot_reach_the_backend():
    services = resolved()["services"]
    assert [name for name, s in services.items() if s.get("ports")] == ["nginx"]
    assert set(services["nginx"]["networks"]) == {"edge"}
    assert "edge" not in services["backend"]["networks"] and "edge" not in services["db"]["networks"]


def test_passwords_are_file_secrets_not_inline_values():
    config = resolved()
    for name in ("migrate", "backend"):
        env = config["services"][name]["environment"]
        assert env["DATABASE_PASSWORD_FILE"] == "/run/secrets/db_password"
        assert "DATABASE_PASSWORD" not in env
    assert config["services"]["db"]["environment"]["MARIADB_PASSWORD_FILE"] == "/run/secrets/db_password"
    for secret in config["secrets"].values():
        assert os.path.isfile(secret["file"])


def test_migrations_run_before_the_backend_starts():
    depends = resolved()["services"]["backend"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
