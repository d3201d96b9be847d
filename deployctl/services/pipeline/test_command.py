"""The "command" test flow: `[services.NAME.test]` `command` run in the image that ships.

The command's env (`test.env`) is rendered here: `{{ secret.NAME }}` from the secret source
(every value registered with the redactor, so no output of ours can show it), and
`{{ test_database.host|port|user|password }}` from `[test_database]`. The rendered env goes
to the engine in the container's create call (the Docker API's JSON body on the socket): it is
never on a command line and never in an image layer, and the container is removed afterwards.
Reports are copied out of the stopped container from the paths `test.reports` names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ...artifacts import Artifacts
from ...config.load import LoadedConfig
from ...errors import ConfigError, UsageError
from ...plan.pipeline.testing import COMMAND, TestEnvError, check_test_env, flow_of, render_test_env, report_paths, secrets_used
from ...secrets import Secret

@dataclass(frozen=True)
class SuiteDatabase:
    """Where the suites find MariaDB (they read TEST_DATABASE_*); None leaves the suite's default."""

    host: str = "127.0.0.1"
    port: int | None = None
    user: str | None = None
    password: Secret | None = None

    def environment(self, *, host: str | None = None) -> dict[str, str]:
        env = {"TEST_DATABASE_HOST": host or self.host}
        if self.port is not None:
            env["TEST_DATABASE_PORT"] = str(self.port)
        if self.user is not None:
            env["TEST_DATABASE_USER"] = self.user
        if self.password is not None:
            env["TEST_DATABASE_PASSWORD"] = self.password.reveal()
        return env


DEFAULT_TIMEOUT = 1800.0
UNSET_HELP = {
    "user": "set test_database.user in deploy.toml, or --db-user / TEST_DATABASE_USER",
    "password": "set the environment variable named by test_database.password_secret",
    "port": "set test_database.port",
}


def fetch_test_secrets(loaded: LoadedConfig, names: Sequence[str], source: Any) -> dict[str, Secret]:
    """The secrets the selected services' test.env use, all at once (a missing one fails
    before any container starts, exit 3, naming every missing secret)."""
    from ..secret_sources import EnvSecrets, fetch_secrets

    problems = []
    wanted: list[str] = []
    for name in names:
        service = loaded.config.services[name]
        if flow_of(service) != COMMAND or service.test is None:
            continue
        problems += check_test_env(service.test.env, f"services.{name}.test.env")
        wanted += secrets_used(service.test.env)
    if problems:
        raise ConfigError(problems)
    if not wanted:
        return {}
    return fetch_secrets(source if source is not None else EnvSecrets(), wanted, context="test.env")


def database_values(database: SuiteDatabase, host: str) -> dict[str, str | Secret | None]:
    return {"host": host, "port": str(database.port) if database.port is not None else None,
            "user": database.user, "password": database.password}


def command_env(loaded: LoadedConfig, name: str, secrets: Mapping[str, Secret],
                database: Mapping[str, str | Secret | None]) -> dict[str, str]:
    test = loaded.config.services[name].test
    assert test is not None
    try:
        return render_test_env(test.env, secrets=secrets, database=database, where=f"services.{name}.test.env",
                               unset_help=UNSET_HELP)
    except TestEnvError as exc:
        raise ConfigError(exc.problems) from None


Runner = Callable[[Path, Callable[[str], None]], tuple[int, bool]]


def command_runner(engine: Any, artifacts: Artifacts, loaded: LoadedConfig, name: str,
                   environment: Mapping[str, str], timeout: float | None) -> tuple[Runner, dict[str, str]]:
    """A runner for the suite, and the reports it copies (local name -> path in the container)."""
    test = loaded.config.services[name].test
    assert test is not None
    image = artifacts.images.get(name)
    if image is None:
        raise UsageError(f"the artifacts file has no image for {name}", hint="run `deployctl build` first")
    if engine.image_id(image.image_id) is None:
        raise UsageError(f"{name}: the image {image.reference} ({image.image_id[:19]}) is not on this engine",
                         hint="run `deployctl build` on this machine before `deployctl test`")
    files = report_paths(test.reports, engine.working_dir(image.image_id))
    limit = timeout or test.timeout or DEFAULT_TIMEOUT

    def run(reports: Path, on_line: Callable[[str], None]) -> tuple[int, bool]:
        status, copied = engine.run_and_copy_files(
            image=image.image_id, command=list(test.command), environment=dict(environment), files=files,
            into=reports, on_line=on_line, timeout=limit)
        return status, "junit.xml" in copied

    return run, files
