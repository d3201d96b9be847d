"""examples/bootcamp-users is a real, working docker-compose app (and not written for
deployctl): built and started with Debian's docker-compose 1.29, its frontend lists the seed
row from db/init.sql through the backend, and a user added through the form shows up."""
from __future__ import annotations

import re
import secrets
import urllib.parse

import pytest

from tests.support.example_app import EXAMPLE, compose_with_port, run_compose, tag_official_names
from tests.support.net import direct, free_port, wait_until

pytestmark = pytest.mark.integration


def page(url: str) -> str | None:
    try:
        with direct.open(url, timeout=5) as response:
            return response.read().decode()
    except OSError:
        return None


def test_example_is_bootcamp_shaped():
    """No deployctl conventions: official base images, no health or version endpoints."""
    for service in ("frontend", "backend"):
        dockerfile = (EXAMPLE / service / "Dockerfile").read_text()
        assert dockerfile.splitlines()[0] == "FROM python:3.12-slim"
        assert "ARG" not in dockerfile
        source = (EXAMPLE / service / "app.py").read_text()
        assert not re.search(r"/(healthz|health|version)\b", source)
    assert not (EXAMPLE / "nginx").exists()
    assert not (EXAMPLE / "deploy.toml").exists()


def test_compose_up_serves_users_and_adds_one(docker_client, standin_images, tmp_path):
    tag_official_names(docker_client)
    port = free_port()
    compose_file = compose_with_port(EXAMPLE / "docker-compose.yml", tmp_path / "compose.yml", "frontend", port)
    project = f"dctlex{secrets.token_hex(4)}"
    env = {"DB_PASSWORD": secrets.token_urlsafe(12)}
    url = f"http://127.0.0.1:{port}/"
    try:
        up = run_compose(project, compose_file, "up", "-d", "--build", env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        # The database initialises on first start (init.sql); the page lists its seed row.
        try:
            wait_until(lambda: "Ada Lovelace" in (page(url) or ""), timeout=180, what="frontend page", interval=1)
        except TimeoutError:
            logs = run_compose(project, compose_file, "logs", "--tail", "30", env=env)
            pytest.fail(f"the frontend never listed the seed row; last page: {page(url)!r}\n{logs.stdout}")

        form = urllib.parse.urlencode({"name": "Grace Hopper", "email": "grace@example.com"}).encode()
        with direct.open(url + "add", data=form, timeout=10) as response:  # follows the redirect to /
            assert response.status == 200
            body = response.read().decode()
        assert "Grace Hopper" in body and "Ada Lovelace" in body
    finally:
        down = run_compose(project, compose_file, "down", "-v", "--rmi", "local", "--remove-orphans",
                           env=env, timeout=180)
        assert down.returncode == 0, down.stderr


def test_nginx_variant_is_valid_compose():
    done = run_compose("dctlexcfg", EXAMPLE / "docker-compose.nginx.yml", "config", "-q",
                       env={"DB_PASSWORD": "x"}, timeout=60)
    assert done.returncode == 0, done.stderr
