"""The README's first command, end to end: `deployctl release` on the local default of the
project's own deploy.toml (as scripts/quickstart runs it, stand-in base images as build
args), with the REAL app images and MariaDB as the `db` accessory — so the migrations and the
backend's DB-backed /readyz run through a real deploy. Then: a user added through the UI
survives a second release, a rollback, and a stop/boot of the accessory (its volume keeps
the data), and the accessory is never recreated by a deploy.

The deploy.toml is the repository's, with a unique app name, a free proxy port and a private
state directory, in a throwaway git repository (the build tags images from git state).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import requests
import tomli_w

from tests.support.net import free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DEPLOYCTL = str(Path(sys.executable).parent / "deployctl")
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
LISTED = re.compile(r'<tr data-username="([^"]+)">')


def docker(*args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 or not check, f"docker {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def project_copy(root: Path, app: str, port: int) -> Path:
    """The repository's deploy.toml for a unique app, committed in a git repository of its own."""
    data = tomllib.loads((REPO / "deploy.toml").read_text())
    data["app"] = app
    data["registry"]["namespace"] = app  # images <server>/<app>/<service>: none of the real project's tags
    for service in data["services"].values():
        service["context"] = str(REPO / service["context"])
    data.setdefault("proxy", {})["context"] = str(REPO / data.get("proxy", {}).get("context", "nginx"))
    data["environments"]["local"].update(proxy_port=port, state_dir=str(root / "state"))
    project = root / "project"
    project.mkdir()
    (project / "deploy.toml").write_text(tomli_w.dumps(data))
    (project / ".gitignore").write_text(".deployctl/\nreports/\n")
    git = ["git", "-C", str(project), "-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "e2e"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    return project / "deploy.toml"


class Site:
    def __init__(self, config: Path, environ: dict[str, str], url: str) -> None:
        self.config, self.environ, self.url = config, environ, url
        self.session = requests.Session()

    def deployctl(self, *args: str, timeout: float = 1500) -> subprocess.CompletedProcess:
        return subprocess.run([DEPLOYCTL, "--config", str(self.config), *args], capture_output=True, text=True,
                              env=self.environ, timeout=timeout)

    def json_lines(self, *args: str) -> list[dict]:
        done = self.deployctl(*args, "--json")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]

    def version(self) -> dict:
        return self.session.get(self.url + "version", timeout=10).json()

    def usernames(self) -> list[str]:
        page = self.session.get(self.url, timeout=10)
        assert page.status_code == 200, page.text[:500]
        return LISTED.findall(page.text)

    def add_user(self, name: str) -> None:
        page = self.session.get(self.url, timeout=10).text
        answer = self.session.post(self.url + "users", data={"username": name, "csrf_token": TOKEN.search(page)[1]},
                                   timeout=10)
        assert answer.status_code == 200 and f"Added {name}." in answer.text, answer.text[:500]


@pytest.fixture(scope="module")
def site(tmp_path_factory, standin_images, mariadb, scheduler_image):
    root = tmp_path_factory.mktemp("release-e2e")
    app, port = "e2e" + secrets.token_hex(4), free_port()
    config = project_copy(root, app, port)
    environ = {
        **os.environ,
        "DATABASE_PASSWORD": secrets.token_hex(16), "DATABASE_ROOT_PASSWORD": secrets.token_hex(16),
        "FRONTEND_SECRET_KEY": secrets.token_hex(32),
        "MARIADB_IMAGE": standin_images["mariadb"],
        "SCHEDULER_IMAGE": scheduler_image,  # runs the db's nightly backup (deploy.toml [scheduler] image_env)
        "TEST_DATABASE_HOST": mariadb.host, "TEST_DATABASE_PORT": str(mariadb.port),
        "TEST_DATABASE_USER": mariadb.user, "TEST_DATABASE_PASSWORD": mariadb.password,
        "NO_COLOR": "1",
    }
    yield Site(config, environ, f"http://127.0.0.1:{port}/")
    for container in docker("ps", "-aq", "--filter", f"label=io.deployctl.app={app}", check=False).split():
        docker("rm", "-f", "--volumes", container, check=False)
    # Every network of the app: `{app}-local` and each release's `{app}-local-<release>` (left
    # behind, they used up the engine's address pools: "could not find an available,
    # non-overlapping IPv4 address pool" for every test after them).
    for network in docker("network", "ls", "-q", "--filter", f"name={app}-", check=False).split():
        docker("network", "rm", network, check=False)
    for volume in docker("volume", "ls", "-q", "--filter", f"label=io.deployctl.app={app}", check=False).split():
        docker("volume", "rm", volume, check=False)
    images = docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).split()
    mine = [i for i in images if f"/{app}/" in i]
    if mine:
        docker("rmi", *mine, check=False)


def accessory(site: Site) -> dict:
    [state] = site.json_lines("accessory", "status", "db")[-1]["accessories"]
    return state


@pytest.fixture(scope="module")
def build_args(standin_images) -> list[str]:
    """As scripts/quickstart passes them."""
    return ["--build-arg", f"BASE_IMAGE={standin_images['python']}",
            "--build-arg", f"proxy:BASE_IMAGE={standin_images['nginx']}"]


@pytest.fixture(scope="module")
def first(site, build_args):
    """The README's pipeline: build -> test -> (no push on local) -> deploy, plain output."""
    done = site.deployctl("release", *build_args)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    return output


def test_release_runs_every_stage_and_ends_with_the_url(site, first):
    lines = first.strip().splitlines()
    assert lines[-1] == f"The app answers at {site.url}"
    for stage in ("stage build done", "stage test done", "stage deploy done"):
        assert stage in first, stage
    assert "stage push skipped: local target" in first
    # The real suites ran in the built test images, against the test MariaDB.
    assert re.search(r"\[backend\] test done .*: \d+ passed, 0 failed", first)
    # The accessory came up before the release's migration, which ran against it.
    assert first.index("accessory health done") < first.index("migrate done")


def quickstart_check() -> str:
    """The Python scripts/quickstart runs after its release: the URL, and the page through nginx."""
    text = (REPO / "scripts" / "quickstart").read_text()
    return text.split("url=\"$(.venv/bin/python - <<'PY'\n", 1)[1].split("\nPY\n", 1)[0]


def test_quickstart_finds_the_url_and_the_page_as_it_runs_them(site, first):
    """The README's first command ends with this check: it failed with an AttributeError
    after app_urls came to take an Env, while the release it follows had succeeded."""
    done = subprocess.run([sys.executable, "-"], input=quickstart_check(), cwd=site.config.parent,
                          capture_output=True, text=True, env=site.environ, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, site.url), done.stdout + done.stderr


def test_the_app_answers_through_nginx_with_the_new_release(site, first):
    release = re.search(r"Released (\S+) to local", first)[1]
    body = site.version()
    assert body["frontend"]["release"] == body["backend"]["release"] == release
    assert f'<span id="release-id">{release}</span>' in site.session.get(site.url, timeout=10).text
    state = accessory(site)
    assert (state["status"], state["configured_image"]) == ("running", site.environ["MARIADB_IMAGE"])


def test_secrets_reach_the_containers_as_files_only(site, first):
    app = tomllib.loads(site.config.read_text())["app"]
    names = docker("ps", "--filter", f"label=io.deployctl.app={app}", "--format", "{{.Names}}").split()
    inspected = docker("inspect", *names)
    for name in ("DATABASE_PASSWORD", "DATABASE_ROOT_PASSWORD", "FRONTEND_SECRET_KEY"):
        assert site.environ[name] not in inspected, name
        assert site.environ[name] not in first, name
    db = json.loads(docker("inspect", f"{app}-local-db"))[0]
    assert "MARIADB_PASSWORD_FILE=/run/secrets/DATABASE_PASSWORD" in db["Config"]["Env"]
    assert {m["Destination"]: m["RW"] for m in db["Mounts"] if m["Destination"].startswith("/run/secrets/")} == {
        "/run/secrets/DATABASE_PASSWORD": False, "/run/secrets/DATABASE_ROOT_PASSWORD": False}
    assert not db["HostConfig"]["PortBindings"]  # only the app's network reaches the database
    state = site.config.parent.parent / "state" / app / "local"
    assert oct(state.stat().st_mode & 0o777) == "0o700"  # made by the accessory's boot, first of all
    # The files are 0444 so the database image's own user reads them after it drops root
    # (plan/data/accessories.SECRET_FILE_MODE); their folder is 0700, so no other user of the
    # host reaches them.
    folder = state / "accessories" / "db" / "secrets"
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    for secret in folder.iterdir():
        assert oct(secret.stat().st_mode & 0o777) == "0o444", secret


def test_data_survives_a_second_release_a_rollback_and_an_accessory_restart(site, first, build_args):
    before = accessory(site)
    site.add_user("ada_lovelace")
    v1 = site.version()["frontend"]["release"]

    events = site.json_lines("release", "--skip-tests", *build_args)
    result = events[-1]
    assert result["tests_skipped"] is True and result["url"] == site.url
    assert any(e.get("level") == "warning" and "TESTS SKIPPED" in e.get("text", "") for e in events)
    v2 = result["release"]
    assert v2 != v1 and site.version()["frontend"]["release"] == v2
    assert "ada_lovelace" in site.usernames()
    after = accessory(site)
    assert after["started"] == before["started"]  # the deploy neither recreated nor restarted it

    rolled = site.json_lines("rollback")[-1]
    assert rolled["hosts"][0]["release"] == v1 and site.version()["frontend"]["release"] == v1
    assert "ada_lovelace" in site.usernames()

    assert site.json_lines("accessory", "stop", "db")[-1]["accessories"][0]["stopped"] is True
    assert site.session.get(site.url, timeout=10).status_code == 503  # the frontend says the backend is down
    booted = site.json_lines("accessory", "boot", "db")[-1]["accessories"][0]
    assert booted["did"] == "started"
    assert "ada_lovelace" in site.usernames()
    logs = site.deployctl("accessory", "logs", "db", "--lines", "50")
    assert logs.returncode == 0 and "ready for connections" in logs.stdout
