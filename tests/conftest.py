"""Session fixtures for real services (docs/TEAM-CONTRACT.md).

Machine-wide services (Docker engine, MariaDB, stand-in images) come from
``scripts/testenv.sh up``; a fixture whose service is missing FAILS with that command in
the message, it never skips. Registries and sshd are private to each pytest session and
start on free ports. Heavy libraries (docker, pymysql) are imported inside the fixtures,
so pure unit tests do not pay for them.
"""
from __future__ import annotations

import secrets

import pytest

from tests.support.engine import DOCKER_URL, START_COMMAND, STANDIN_IMAGES, connect_docker, missing_images
from tests.support.mariadb import MariaDB
from tests.support.registry import Registry, start_registry
from tests.support.sshd import SshHost, start_sshd


def _attempt(call):
    """call() or the exception it raised: failing outside the except block keeps the
    report to our one message instead of a chain of library tracebacks."""
    try:
        return call()
    except Exception as error:  # every failure to reach a service means the same here
        return error


def _missing(what: str, error: BaseException | str) -> None:
    pytest.fail(f"{what}: {error}\nStart the test services with: {START_COMMAND}", pytrace=False)


@pytest.fixture(scope="session")
def docker_client():
    """A pinged ``docker.DockerClient`` for this machine's engine."""
    client = _attempt(connect_docker)
    if isinstance(client, Exception):
        _missing(f"Docker engine not reachable at {DOCKER_URL}", client)
    yield client
    client.close()


@pytest.fixture(scope="session")
def standin_images(docker_client) -> dict[str, str]:
    """key -> stand-in base image name, each verified present in the engine."""
    missing = missing_images(docker_client, STANDIN_IMAGES)
    if missing:
        _missing("stand-in base images missing", ", ".join(missing))
    return dict(STANDIN_IMAGES)


@pytest.fixture(scope="session")
def probe_images(standin_images):
    """The deploy tests' probe images (tests/integration/probe_app), built once a session:
    ``.good``, ``.broken`` (its health check never passes) and ``.proxy`` (the project's nginx)."""
    from tests.integration.deploy_fixtures import build_probe_images

    return build_probe_images(standin_images)


@pytest.fixture(scope="session")
def scheduler_image(standin_images, tmp_path_factory) -> str:
    """A stand-in for the jobs' scheduler image (`docker:27-cli`), built once a session."""
    from tests.integration.deploy_fixtures import build_scheduler_image

    return build_scheduler_image(standin_images, tmp_path_factory.mktemp("scheduler"))


@pytest.fixture(scope="session")
def mariadb():
    """The machine's MariaDB as the test user; ``create_database(prefix)`` makes throwaway
    databases, dropped at session end."""
    server = MariaDB.from_env()
    connection = _attempt(server.connect)
    if isinstance(connection, Exception):
        _missing(f"MariaDB not reachable at {server.host}:{server.port} as {server.user}", connection)
    connection.close()
    yield server
    server.drop_created()


def _start(what: str, start):
    server = _attempt(start)
    if isinstance(server, FileNotFoundError):
        _missing(what, server)
    if isinstance(server, (RuntimeError, TimeoutError)):
        pytest.fail(f"{what} did not start: {server}", pytrace=False)
    if isinstance(server, Exception):
        raise server
    return server


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Registry:
    """An open registry: ``.address`` ("127.0.0.1:PORT"), ``.url``, ``.port``."""
    server = _start("registry", lambda: start_registry(tmp_path_factory.mktemp("registry")))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory) -> Registry:
    """A registry that requires basic auth: ``.address .url .port .username .password``."""
    server = _start("auth registry", lambda: start_registry(
        tmp_path_factory.mktemp("auth-registry"), username="deployctl", password=secrets.token_urlsafe(12)))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ssh_host(tmp_path_factory) -> SshHost:
    """A private sshd on 127.0.0.1 in front of this machine's engine:
    ``.host .port .user .key_file .known_hosts_file .host_key_fingerprint``."""
    server = _start("sshd", lambda: start_sshd(tmp_path_factory.mktemp("sshd")))
    yield server
    server.stop()
