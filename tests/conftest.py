"""Session fixtures for real services (docs/TEAM-CONTRACT.md).

Machine-wide services (Docker engine, MariaDB, stand-in images) come from
``scripts/testenv.sh up``; a fixture whose service is missing FAILS with that command in
the message, it never skips. Registries and sshd are private to each pytest session and
start on free ports. Heavy libraries (docker, pymysql) are imported inside the fixtures,
so pure unit tests do not pay for them.
"""
from __future__ import annotations

import json
import secrets
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from tests.support.engine import DOCKER_URL, START_COMMAND, STANDIN_IMAGES, connect_docker, missing_images
from tests.support.mariadb import MariaDB
from tests.support.registry import Registry, start_registry
from tests.support.sshd import SshHost, start_sshd

# A suite started in the background by a non-interactive shell (`scripts/test &`, `( .ci/run &)`)
# inherits SIGINT ignored (POSIX: no job control), and Python then installs no KeyboardInterrupt
# handler, so `_thread.interrupt_main()` and `os.kill(pid, SIGINT)` do nothing: every test that
# plays a user's Ctrl-C or the CLI's SIGTERM (tests/unit/test_lifecycle_rules.py) failed with
# "the rollout never took the interrupt". The tests need the handler a terminal run has.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The fleet's and the Swarm's session fixtures, defined once for every test under tests/
# (pytest reads pytest_plugins in this root conftest only). Imported into a test module or a
# conftest instead, a fixture function is registered again there, with an instance of its
# own: each importing place started a fleet (and a Swarm) of its own on the same worker.
pytest_plugins = ["tests.support.fleet_fixtures", "tests.support.swarm_fixtures"]


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


# -- parallel runs (pytest-xdist, `--dist loadgroup`: scripts/test, tests/README.md) ---------
# Each xdist worker is a pytest session of its own: the session fixtures above (registry,
# sshd, probe images) run once per worker, on free ports and in the worker's own basetemp.
# Tests that share something heavier or order-dependent are kept on one worker, in order:
# - the Swarm (3 nodes of stand-in hosts, formed once) and the fleet (3 stand-in hosts, each
#   with its own dockerd): one worker each, so each is started once, not once per worker;
# - a test whose fixtures include a module-, class- or package-scoped one (a fault module's
#   site, whose cells run in order on it; test_exec's site...): its whole module on one worker.
# A test that already carries an xdist_group marker keeps it.

# The session fixtures that get a worker of their own, by the file defining them (the plugins
# above): checked in this order (a Swarm test uses the fleet too); a unit test's own `fleet`
# (fake hosts) is not one. The fleet's tests and its fault cells go to "fleet", the Swarm's
# tests and its fault cells to "swarm", each group sharing its worker's one instance.
SHARED_SESSION_FIXTURES = {"swarm": "tests/support/swarm_fixtures.py",
                           "fleet": "tests/support/fleet_fixtures.py"}
SHARED_SCOPES = ("module", "class", "package")


def worker_group(item: pytest.Item) -> str | None:
    """The xdist group `item` must run in (tests/README.md), or None: any worker will do."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    resolved = {name: info.name2fixturedefs[name][-1] for name in item.fixturenames if info.name2fixturedefs.get(name)}
    for name, defined_in in SHARED_SESSION_FIXTURES.items():
        if name in resolved and resolved[name].func.__code__.co_filename.endswith(defined_in):
            return name
    if any(fixture.scope in SHARED_SCOPES for fixture in resolved.values()):
        return item.nodeid.split("::")[0]
    return None


def start_rank(item: pytest.Item) -> int:
    """Under xdist, the longest groups are handed out first (with `--no-loadscope-reorder`,
    as scripts/test runs it, the scheduler goes in collection order): the Swarm's and the
    fleet's tests take minutes one after another on one worker, then each fault module; any
    of them started last would be the run's tail. The single tests fill in around them."""
    group = group_of(item)
    if group is None:
        return 4
    return {"swarm": 0, "fleet": 1}.get(group, 2 if group.startswith("tests/faults/") else 3)


# The groups reach xdist's scheduler beside the node ids, not in them: xdist (3.8) appends
# "@group" to a node's `_nodeid`, which pytest 9.2 no longer reads (it keeps the id in `_id`),
# so with `--dist loadgroup` alone every grouped test went to any worker. Each worker writes
# {node id: group} to a directory the controller names; the controller's scheduler reads it
# once every worker has collected (tests/integration/test_parallel_groups.py checks it).
GROUPS_DIR = pytest.StashKey[str]()


def group_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("xdist_group")
    return str(marker.args[0] if marker.args else marker.kwargs.get("name", "default")) if marker else None


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the markers
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("xdist_group") is None and (group := worker_group(item)):
            item.add_marker(pytest.mark.xdist_group(group))
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return
    items.sort(key=start_rank)  # every worker collects, and sorts, the same way
    if groups_dir := workerinput.get("deployctl_groups"):
        groups = {item.nodeid: group for item in items if (group := group_of(item))}
        path = Path(groups_dir) / f"{workerinput['workerid']}.json"
        path.with_suffix(".tmp").write_text(json.dumps(groups))
        path.with_suffix(".tmp").replace(path)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """The controller: where this worker writes its groups."""
    if GROUPS_DIR not in node.config.stash:
        node.config.stash[GROUPS_DIR] = tempfile.mkdtemp(prefix="deployctl-xdist-groups-")
    node.workerinput["deployctl_groups"] = node.config.stash[GROUPS_DIR]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling  # noqa: PLC0415 - only under xdist

    class GroupsBesideIds(LoadGroupScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # first called once every worker's collection is in
                self.groups = {}
                for path in sorted(Path(config.stash[GROUPS_DIR]).glob("*.json")):
                    self.groups.update(json.loads(path.read_text()))
            return self.groups.get(nodeid) or super()._split_scope(nodeid)

    return GroupsBesideIds(config, log)


FAULT_OUTPUTS = pytest.StashKey[list]()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """The controller of an xdist run: each worker's fault-table rows (tests/faults/conftest.py
    writes them once, from every worker's)."""
    output = getattr(node, "workeroutput", {})
    if "fault_rows" in output:
        node.config.stash.setdefault(FAULT_OUTPUTS, []).append(output)


def pytest_sessionfinish(session, exitstatus):
    if GROUPS_DIR in session.config.stash:
        shutil.rmtree(session.config.stash[GROUPS_DIR], ignore_errors=True)
    outputs = session.config.stash.get(FAULT_OUTPUTS, [])
    if outputs and not hasattr(session.config, "workerinput"):
        from tests.faults.conftest import record_workers  # noqa: PLC0415 - only when fault cells ran

        record_workers(outputs, exitstatus)
