"""The users app as it ships: three images built from their Dockerfiles on the stand-in
bases, run on a Docker network against MariaDB, and driven through nginx over HTTP the
way a browser would (CSRF token from the form, cookies, redirects)."""
from __future__ import annotations

import re
import time

import pytest
import requests

from tests.support.app_stack import (
    UPSTREAM_FILE,
    build_app_images,
    running_app_stack,
    upstream_conf,
    wait_healthy,
)

pytestmark = pytest.mark.integration

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_LISTED = re.compile(r'<tr data-username="([^"]+)">')


@pytest.fixture(scope="module")
def app_images(docker_client, standin_images):
    return build_app_images(docker_client, standin_images)


@pytest.fixture(scope="module")
def stack(docker_client, app_images, mariadb):
    with running_app_stack(docker_client, app_images, mariadb) as running:
        yield running


class Browser:
    """requests with a cookie jar, reading the CSRF token from each page like a form would."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.session = requests.Session()
        self.page = ""

    def open(self, path: str = "/") -> requests.Response:
        response = self.session.get(self.base_url + path, timeout=10)
        self.page = response.text
        return response

    def submit(self, action: str, **fields) -> requests.Response:
        token = _TOKEN.search(self.page).group(1)
        response = self.session.post(self.base_url + action, data={**fields, "csrf_token": token}, timeout=10)
        self.page = response.text
        return response

    def usernames(self) -> list[str]:
        return _LISTED.findall(self.page)


def test_images_run_as_a_non_root_user_with_a_healthcheck(docker_client, app_images):
    for tag in (app_images.backend, app_images.frontend):
        config = docker_client.images.get(tag).attrs["Config"]
        assert config["User"] == "app"
        assert config["Healthcheck"]["Test"][0] == "CMD"
    assert docker_client.images.get(app_images.nginx).attrs["Config"]["Healthcheck"]["Test"][0] == "CMD"


def test_add_generate_delete_through_nginx(stack):
    browser = Browser(stack.url)
    assert browser.open().status_code == 200
    assert f'<span id="release-id">{stack.release}</span>' in browser.page
    assert browser.usernames() == []

    # Add one through the form: a 303 back to the list, which shows it.
    response = browser.submit("/users", username="ada_lovelace")
    assert response.status_code == 200 and response.history[0].status_code == 303
    assert browser.usernames() == ["ada_lovelace"]
    assert "Added ada_lovelace." in browser.page

    browser.submit("/users/generate", count="5")
    names = browser.usernames()
    assert len(names) == 6 and "ada_lovelace" in names
    assert "Generated 5 usernames: " in browser.page

    victim = next(n for n in names if n != "ada_lovelace")
    browser.submit(f"/users/{victim}/delete")
    assert victim not in browser.usernames() and len(browser.usernames()) == 5
    assert f"Deleted {victim}." in browser.page


def test_forms_without_a_csrf_token_are_refused(stack):
    response = requests.post(stack.url + "/users", data={"username": "mallory"}, timeout=10)
    assert response.status_code == 400
    assert "Form expired" in response.text


def test_version_names_both_releases(stack):
    body = requests.get(stack.url + "/version", timeout=10).json()
    assert body["frontend"]["release"] == stack.release == body["backend"]["release"]
    assert body["frontend"]["revision"] == body["backend"]["revision"]


def test_backend_is_not_reachable_from_outside(stack):
    backend = stack.containers["backend"]
    backend.reload()
    assert not backend.attrs["HostConfig"]["PortBindings"]
    assert all(not bindings for bindings in (backend.attrs["NetworkSettings"]["Ports"] or {}).values())
    for path in ("/api/users", "/api", "/api/users/generate"):
        response = requests.get(stack.url + path, timeout=10)
        assert response.status_code == 404, path
        assert response.headers["Content-Type"] == "application/json"
    assert requests.post(stack.url + "/api/users", json={"username": "x" * 5}, timeout=10).status_code == 404
    # /readyz exists only on the backend; through nginx it is the frontend's 404 page.
    assert requests.get(stack.url + "/readyz", timeout=10).status_code == 404


def test_security_headers_and_limits(stack):
    response = requests.get(stack.url + "/", timeout=10)
    headers = response.headers
    assert headers["Server"] == "nginx"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    too_big = requests.post(stack.url + "/users", data={"username": "x" * (100 * 1024)}, timeout=10)
    assert too_big.status_code == 413
    assert "X-Frame-Options" in too_big.headers
    assert requests.get(stack.url + "/nginx-health", timeout=10).text == "ok\n"


def test_access_log_shows_the_upstream_and_its_timing(stack):
    requests.get(stack.url + "/healthz", timeout=10)
    # nginx writes the line at once, but the engine copies container output into its log
    # asynchronously: poll briefly instead of reading once.
    deadline = time.monotonic() + 10
    lines: list[str] = []
    while not lines and time.monotonic() < deadline:
        lines = [l for l in stack.logs("nginx").splitlines() if '"GET /healthz ' in l]
        if not lines:
            time.sleep(0.2)
    assert lines, "no access-log line for GET /healthz within 10 s"
    line = lines[-1]
    assert re.search(r"upstream=\d+\.\d+\.\d+\.\d+:8000 ustatus=200 uct=[\d.]+ urt=[\d.]+$", line), line


def test_upstream_file_contract(stack):
    """What deployctl relies on: nginx -t refuses a name that does not resolve, and a
    rewrite + reload switches the upstream while the old config keeps serving meanwhile."""
    conf = stack.upstream_dir / "frontend.conf"
    good = conf.read_text()
    assert stack.nginx_exec("cat", UPSTREAM_FILE)[1] == good

    # Written the way deployctl must: a temporary file in the mounted directory, renamed over.
    def write(text):
        tmp = stack.upstream_dir / ".frontend.conf.tmp"
        tmp.write_text(text)
        tmp.chmod(0o644)
        tmp.replace(conf)

    write(upstream_conf("no-such-release-frontend:8000"))
    code, output = stack.nginx_exec("nginx", "-t")
    assert code != 0 and 'host not found in upstream "no-such-release-frontend:8000"' in output
    assert requests.get(stack.url + "/", timeout=10).status_code == 200  # never reloaded

    write(good)
    assert stack.nginx_exec("nginx", "-t")[0] == 0
    assert stack.nginx_exec("nginx", "-s", "reload")[0] == 0
    assert requests.get(stack.url + "/", timeout=10).status_code == 200


def test_containers_report_healthy(stack):
    for name in ("backend", "frontend", "nginx"):
        assert wait_healthy(stack.containers[name]) == "healthy", stack.logs(name)[-2000:]
