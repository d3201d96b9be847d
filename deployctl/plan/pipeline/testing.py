"""What `deployctl test` does for a service, and the environment its test command gets. Pure.

Three flows, chosen from deploy.toml alone:
- "stage": `test_target` names a Dockerfile stage; pytest runs in the image built from it.
- "command": `[services.NAME.test]` gives a command run in the *shipped* image, with `test.env`
  rendered here and reports copied from the paths `test.reports` names.
- "none": neither; the service is reported as having no tests (not an error).
"""

from __future__ import annotations

import posixpath
import re
from typing import Mapping

from ...config.models import SECRET_REF_RE, Service, TestReports
from ...secrets import Secret
from ..lifecycle.env_values import refs_in

STAGE = "stage"
COMMAND = "command"
NO_TESTS = "none"

# Every {{ ... }} in a test env value; each must be a secret or a test_database field.
PLACEHOLDER_ANY_RE = re.compile(r"\{\{(.*?)\}\}")
TEST_DATABASE_RE = re.compile(r"\{\{\s*test_database\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
TEST_DATABASE_FIELDS = ("host", "port", "user", "password")
# The local file names reports are copied to, as the pytest flow writes them.
JUNIT_FILE = "junit.xml"
COVERAGE_FILE = "coverage.xml"


class TestEnvError(ValueError):
    """test.env cannot be rendered; `problems` has one line per finding, each naming its key."""

    __test__ = False

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def flow_of(service: Service) -> str:
    if service.test_target:  # "" in deploy.toml means none
        return STAGE
    if service.test is not None:
        return COMMAND
    return NO_TESTS


def secrets_used(env: Mapping[str, str]) -> list[str]:
    """The secret names test.env uses, in order, each once."""
    return refs_in(env.values())


def check_test_env(env: Mapping[str, str], where: str) -> list[str]:
    """Problems with test.env's placeholders: only {{ secret.NAME }} and
    {{ test_database.host|port|user|password }} exist there."""
    problems = []
    for key, value in env.items():
        for match in PLACEHOLDER_ANY_RE.finditer(value):
            text = match.group(0)
            if SECRET_REF_RE.fullmatch(text):
                continue
            field = TEST_DATABASE_RE.fullmatch(text)
            if field and field.group(1) in TEST_DATABASE_FIELDS:
                continue
            problems.append(f"{where}.{key}: {text} is not available in a test env (use {{{{ secret.NAME }}}} "
                            f"or {{{{ test_database.{'|'.join(TEST_DATABASE_FIELDS)} }}}})")
    return problems


def render_test_env(env: Mapping[str, str], *, secrets: Mapping[str, Secret],
                    database: Mapping[str, str | Secret | None], where: str,
                    unset_help: Mapping[str, str] | None = None) -> dict[str, str]:
    """test.env with its placeholders replaced. `database` maps host/port/user/password to
    their values (None: not set); `unset_help` says how to set each one. Raises TestEnvError
    naming every key that cannot be rendered (the values are never part of a message)."""
    problems = check_test_env(env, where)
    if problems:
        raise TestEnvError(problems)
    rendered: dict[str, str] = {}
    for key, value in env.items():
        def database_field(match: re.Match[str], key: str = key) -> str:
            name = match.group(1)
            field = database.get(name)
            if field is None:
                how = (unset_help or {}).get(name, "")
                problems.append(f"{where}.{key}: {{{{ test_database.{name} }}}} is not set{'; ' + how if how else ''}")
                return ""
            return field.reveal() if isinstance(field, Secret) else str(field)

        def secret(match: re.Match[str], key: str = key) -> str:
            name = match.group(1)
            if name not in secrets:
                problems.append(f"{where}.{key}: the secret {name!r} was not fetched")
                return ""
            return secrets[name].reveal()

        rendered[key] = SECRET_REF_RE.sub(secret, TEST_DATABASE_RE.sub(database_field, value))
    if problems:
        raise TestEnvError(problems)
    return rendered


def report_paths(reports: TestReports, workdir: str | None) -> dict[str, str]:
    """Local file name -> absolute path in the container. A relative path in test.reports
    is taken from the image's working directory, as the command itself would."""
    wanted = {JUNIT_FILE: reports.junit, COVERAGE_FILE: reports.coverage}
    return {local: posixpath.normpath(posixpath.join(workdir or "/", path))
            for local, path in wanted.items() if path}
