"""Small throwaway projects for the build/test/push integration tests: a git repository
with a deploy.toml, one Python service FROM the python stand-in, and a proxy FROM the
nginx stand-in. Small so a test builds in seconds; real so the engine does real work.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployctl.cli.main import main

API_DOCKERFILE = """\
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE} AS runtime
RUN useradd --create-home --uid 10001 app
WORKDIR /home/app
COPY app.py ./
USER app
CMD ["python", "app.py"]

FROM runtime AS test
USER root
RUN pip install --no-cache-dir pytest pytest-cov
COPY .coveragerc test_app.py ./
USER app
"""

APP = """\
def double(x):
    return 2 * x


def unused(x):  # uncovered unless a suite calls it: lets a test push coverage under a floor
    if x:
        return 1
    return 0


if __name__ == "__main__":
    print(double(21))
"""

PASSING_SUITE = """\
import os
import socket

import pytest

from app import double


def test_double():
    assert double(2) == 4


def test_database_is_reachable():
    # The contract: TEST_DATABASE_* point at a server this process can reach.
    with socket.create_connection((os.environ["TEST_DATABASE_HOST"], int(os.environ["TEST_DATABASE_PORT"])), timeout=5):
        pass


@pytest.mark.skip(reason="shows up as skipped in the summary")
def test_skipped():
    pass
"""

FAILING_SUITE = """\
from app import double


def test_double():
    assert double(2) == 4


def test_broken():
    print("about to fail")
    assert double(2) == 5, "deliberately broken"
"""

# For tests about pushing: `FROM scratch` needs no base image and makes kilobyte layers, so a
# push to a fresh registry takes a moment instead of gzipping a 200 MB Debian tree.
SCRATCH_DOCKERFILE = """\
FROM scratch AS runtime
COPY app.py /app/app.py
COPY .coveragerc /app/.coveragerc

FROM runtime AS test
COPY test_app.py /app/test_app.py
"""

SCRATCH_PROXY_DOCKERFILE = """\
FROM scratch
COPY Dockerfile /etc/proxy/Dockerfile
"""

PROXY_DOCKERFILE = """\
ARG BASE_IMAGE=nginx:1.27-alpine
FROM ${BASE_IMAGE}
RUN echo ok > /usr/share/nginx/html/ok.txt || (mkdir -p /usr/share/nginx/html && echo ok > /usr/share/nginx/html/ok.txt)
"""


@dataclass
class Project:
    root: Path
    app: str

    @property
    def config(self) -> Path:
        return self.root / "deploy.toml"

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.root), *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def write(self, relative: str, text: str) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def make_project(root: Path, *, registry: str = "127.0.0.1:5000", registry_extra: str = "",
                 suite: str = PASSING_SUITE, coverage_floor: float = 0, api_dockerfile: str = API_DOCKERFILE,
                 proxy_dockerfile: str = PROXY_DOCKERFILE) -> Project:
    app = f"it{uuid.uuid4().hex[:10]}"
    project = Project(root, app)
    project.write("deploy.toml", textwrap.dedent(f"""\
        app = "{app}"
        [registry]
        server = "{registry}"
        namespace = "itest"
        {registry_extra}
        [services.api]
        context = "api"
        target = "runtime"
        test_target = "test"
        routed = true
        coverage_floor = {coverage_floor}
        [proxy]
        context = "proxy"
        [environments.local]
        target = "local"
        [environments.local.rollout]
        guard_window = 0  # the error-rate guard is tested in test_release_safety
        """))
    project.write("api/Dockerfile", api_dockerfile)
    project.write("api/app.py", APP)
    project.write("api/test_app.py", suite)
    project.write("api/.coveragerc", "[run]\nsource = app\nbranch = true\n")
    project.write("proxy/Dockerfile", proxy_dockerfile)
    project.write(".gitignore", ".deployctl/\nreports/\n")
    project.git("init", "-q")
    project.commit("initial")
    return project


def standin_args(standin_images: dict[str, str]) -> list[str]:
    return ["--build-arg", f"BASE_IMAGE={standin_images['python']}",
            "--build-arg", f"proxy:BASE_IMAGE={standin_images['nginx']}"]


@dataclass
class CliRun:
    code: int
    events: list[dict[str, Any]]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    stderr: str
    stdout: str

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind and all(e.get(k) == v for k, v in match.items())]


def run_cli(capsys: Any, project: Project, *args: str) -> CliRun:
    """The CLI in-process with --json: events, the result line and the error line, parsed."""
    code = main(["--json", "--config", str(project.config), *args])
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    result = next((line for line in lines if line["event"] == "result"), None)
    error = next((line for line in lines if line["event"] == "error"), None)
    events = [line for line in lines if line["event"] not in ("result", "error")]
    return CliRun(code, events, result, error, err, out)


def remove_images(docker_client: Any, app: str) -> None:
    for image in docker_client.images.list(filters={"label": f"io.deployctl.app={app}"}):
        for tag in image.tags or [image.id]:
            try:
                docker_client.images.remove(tag, force=True, noprune=True)  # keep layers: the next project reuses them from cache
            except Exception:  # noqa: BLE001 - best-effort cleanup of throwaway images
                pass


# "Any app": one stage, no test stage, tests run by a command in the shipped image. The
# suite is plain unittest; run_tests.py writes a JUnit report of this very run.
SINGLE_STAGE_DOCKERFILE = """\
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
RUN useradd --create-home --uid 10001 app
WORKDIR /home/app
COPY app.py run_tests.py test_app.py ./
USER app
CMD ["python", "app.py"]
"""

UNITTEST_JUNIT_RUNNER = '''\
"""Runs the unittest suite in this directory; writes a JUnit XML report of this run to argv[1]."""
import sys
import unittest
import xml.etree.ElementTree as ET


class Recording(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cases = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.cases.append((test, None, ""))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.cases.append((test, "failure", self._exc_info_to_string(err, test)))

    def addError(self, test, err):
        super().addError(test, err)
        self.cases.append((test, "error", self._exc_info_to_string(err, test)))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.cases.append((test, "skipped", reason))


def main(path):
    suite = unittest.defaultTestLoader.discover(".", pattern="test_*.py")
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=Recording).run(suite)
    root = ET.Element("testsuite", name="unittest", tests=str(result.testsRun),
                      failures=str(len(result.failures)), errors=str(len(result.errors)),
                      skipped=str(len(result.skipped)))
    for test, kind, detail in result.cases:
        case = ET.SubElement(root, "testcase", classname=type(test).__name__, name=test._testMethodName)
        if kind:
            ET.SubElement(case, kind, message=(detail.strip().splitlines() or [""])[-1]).text = detail
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return 0 if result.wasSuccessful() else 1


sys.exit(main(sys.argv[1]))
'''

# {token_sha256} and {password_sha256}: the suite proves it got the values without printing them
# in a form deployctl could miss; it also prints the token, which deployctl must mask.
UNITTEST_SUITE = '''\
import hashlib
import os
import socket
import unittest

from app import double


def sha256(value):
    return hashlib.sha256(value.encode()).hexdigest()


class AppTest(unittest.TestCase):
    def test_double(self):
        self.assertEqual(double(2), 4)

    def test_the_secret_reached_the_command(self):
        print("the token is", os.environ["API_TOKEN"])
        self.assertEqual(sha256(os.environ["API_TOKEN"]), "{token_sha256}")

    def test_the_test_database(self):
        self.assertEqual(sha256(os.environ["DB_PASSWORD"]), "{password_sha256}")
        with socket.create_connection((os.environ["DB_HOST"], int(os.environ["DB_PORT"])), timeout=5):
            pass

    @unittest.skip("shows up as skipped in the summary")
    def test_skipped(self):
        pass
{extra}'''

UNITTEST_BROKEN = '''

class BrokenTest(unittest.TestCase):
    def test_broken(self):
        print("about to fail")
        self.assertEqual(double(2), 5, "deliberately broken")
'''

COMMAND_TEST_TABLE = """\
[services.web.test]
command = ["python", "run_tests.py", "/tmp/junit.xml"]
reports = { junit = "/tmp/junit.xml" }
[services.web.test.env]
API_TOKEN = "{{ secret.WEB_API_TOKEN }}"
DB_HOST = "{{ test_database.host }}"
DB_PORT = "{{ test_database.port }}"
DB_PASSWORD = "{{ test_database.password }}"
"""


def make_single_stage_project(root: Path, *, service_extra: str = "", suite: str = "",
                              dockerfile: str = SINGLE_STAGE_DOCKERFILE, top_extra: str = "") -> Project:
    """A project with one service `web` built from a single-stage Dockerfile (no target, no
    test_target), no registry and deployctl's built-in proxy: only a deploy.toml and the app."""
    app = f"it{uuid.uuid4().hex[:10]}"
    project = Project(root, app)
    project.write("deploy.toml", f'app = "{app}"\n{top_extra}\n[services.web]\ncontext = "web"\nrouted = true\n'
                                 f'{service_extra}\n[environments.local]\ntarget = "local"\n'
                                 '[environments.local.rollout]\nguard_window = 0\n')
    project.write("web/Dockerfile", dockerfile)
    project.write("web/app.py", APP)
    project.write("web/run_tests.py", UNITTEST_JUNIT_RUNNER)
    project.write("web/test_app.py", suite or "import unittest\n")
    project.write(".gitignore", ".deployctl/\nreports/\n")
    project.git("init", "-q")
    project.commit("initial")
    return project
