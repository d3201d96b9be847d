"""`deployctl accessory exec` in a real MariaDB accessory on this machine's engine, booted
before any deploy (issue 25, item 1), in one walk: CMD's exit code and both streams passed
through; a query through the documented pattern (`sh -c` reading the password the
container already has from its env, never on deployctl's argv) returning its row, and a
wrong password refused by the server with the client's code; the history's lines (the
accessory, the exit codes, never the output nor the password); `-i` through a real pty (the
`mariadb` client's own prompt, a query typed at it, the terminal's size); the same
accessory over SSH (the test sshd in front of this engine), streamed and with `-i`; a host that cannot be reached
(4), an unknown accessory (2) and a stopped one (2, with the boot hint). The Swarm's is a step of
tests/integration/swarm/test_swarm_accessory.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deployctl.adapters.ssh import SSHConnector
from deployctl.config import load_config
from deployctl.errors import ExecNotStarted
from deployctl.plan.lifecycle.releases import History
from deployctl.plan.operate.exec import NOTHING_LIVE
from deployctl.services.hosts import layout_for
from deployctl.services.operate.accessory_exec import AccessoryExecRequest, run_accessory_exec
from tests.integration.deploy_fixtures import DEPLOYCTL, free_port, remove_app_with_data, unique_app
from tests.support.terminal import through_pty

pytestmark = pytest.mark.integration
ROOT_PASSWORD = "accexec-r00t-Sekr3t-41"
# The pattern docs/exec.md gives: the shell in the container expands the variable.
CLIENT = 'mariadb -h127.0.0.1 -uroot -p"$MARIADB_ROOT_PASSWORD" -N -B shop'


SSH_INTERACTIVE = """
import sys
from deployctl.adapters.ssh import SSHConnector
from deployctl.config import load_config
from deployctl.services.operate.accessory_exec import AccessoryExecRequest, run_accessory_exec
config, host, port, user, key, known = sys.argv[1:]
conn = SSHConnector(host, port=int(port), user=user, key_file=key, known_hosts=known)
request = AccessoryExecRequest(env="local", accessory="db", command=("sh", "-c", "mariadb -uroot shop; exit 6"),
                               interactive=True)
sys.exit(run_accessory_exec(load_config(config), request, lambda *a: None, connectors=[conn]))
"""


def write_project(root: Path, app: str, image: str) -> Path:
    (root / "web").mkdir(parents=True, exist_ok=True)
    (root / "web" / "Dockerfile").write_text(f"FROM {image}\n")
    config = root / "deploy.toml"
    config.write_text(textwrap.dedent(f"""
        app = "{app}"
        [services.web]
        context = "web"
        routed = true
        [accessories.db]
        image = "{image}"
        volumes = ["data:/var/lib/mysql"]
        [accessories.db.env]
        MARIADB_ROOT_PASSWORD = "{{{{ secret.DB_ROOT_PASSWORD }}}}"
        MARIADB_DATABASE = "shop"
        [accessories.db.healthcheck]
        command = ["healthcheck.sh", "--connect"]
        interval = 0.5
        timeout = 120
        [environments.local]
        target = "local"
        state_dir = "{root / 'state'}"
        accessories = ["db"]
        """))
    return config


@pytest.fixture
def project(tmp_path, standin_images):
    app = unique_app()
    config = write_project(tmp_path, app, standin_images["mariadb"])
    yield app, config
    remove_app_with_data(app)


def cli(config: Path, *args: str, **env: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run([DEPLOYCTL, "--config", str(config), *args], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, env={**os.environ, **env})


def exec_lines(config: Path) -> list:  # type: ignore[type-arg]
    text = Path(layout_for(load_config(config), "local").history).read_text()
    assert ROOT_PASSWORD not in text
    return [r for r in History.parse(text).records if r.action == "exec"]


def test_accessory_exec_in_a_real_mariadb(project, ssh_host):
    app, config = project
    booted = cli(config, "accessory", "boot", "db", DB_ROOT_PASSWORD=ROOT_PASSWORD)
    assert booted.returncode == 0, booted.stdout + booted.stderr

    # The command's code and both streams, as they come (no secret source in this shell:
    # exec needs none, the password is in the container already).
    done = cli(config, "accessory", "exec", "db", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    query = cli(config, "accessory", "exec", "db", "--", "sh", "-c",
                f'{CLIENT} -e "CREATE TABLE items (id INT); INSERT INTO items VALUES (7); SELECT CONCAT(CHAR(97, 110, 115, 119, 101, 114, 45), id * 6) FROM items"')
    assert (query.returncode, query.stdout) == (0, "answer-42\n"), query.stderr
    wrong = cli(config, "accessory", "exec", "db", "--", "sh", "-c",
                'mariadb -h127.0.0.1 -uroot -pnot-it -e "SELECT 1"')
    assert wrong.returncode == 1 and "Access denied" in wrong.stderr, wrong.stderr
    lines = exec_lines(config)
    assert [(r.release, r.extra["accessory"], r.extra["exit_code"]) for r in lines] == [
        (NOTHING_LIVE, "db", 3), (NOTHING_LIVE, "db", 0), (NOTHING_LIVE, "db", 1)]
    assert lines[1].extra["command"][2].startswith('mariadb -h127.0.0.1 -uroot -p"$MARIADB_ROOT_PASSWORD"')
    # Never the output (a word the command itself does not hold: a bare "42" is in some timestamps).
    assert "answer-42" not in Path(layout_for(load_config(config), "local").history).read_text()

    # -i: the client's own prompt on a real pty, a query typed at it, the terminal's size.
    code, seen = through_pty([DEPLOYCTL, "--config", str(config), "accessory", "exec", "db", "-i", "--", "sh", "-c",
                               "mariadb -uroot shop; exit 5"],
                              b"SELECT CONCAT('ro', 'w-', id) FROM items;\n\\! stty size\nquit\n", prompts=(b"]> ",))
    assert code == 5, seen
    assert b"MariaDB [shop]> " in seen and b"row-7" in seen and b"33 111" in seen, seen
    assert exec_lines(config)[-1].extra == {"accessory": "db", "command": ["sh", "-c", "mariadb -uroot shop; exit 5"],
                                            "exit_code": 5}

    # Over SSH: the same accessory through the SSH connector (sshd in front of this engine).
    conn = SSHConnector(ssh_host.host, port=ssh_host.port, user=ssh_host.user, key_file=ssh_host.key_file,
                        known_hosts=ssh_host.known_hosts_file)
    out: list[tuple[str, str, bytes]] = []
    code = run_accessory_exec(load_config(config), AccessoryExecRequest(
        env="local", accessory="db", command=("sh", "-c", "mariadb -N -B shop -e 'SELECT COUNT(*) FROM items'; exit 4")),
        lambda host, stream, data: out.append((host, stream, data)), connectors=[conn])
    assert code == 4 and b"".join(d for _, s, d in out if s == "stdout") == b"1\n", out
    assert {h for h, _, _ in out} == {conn.host} and exec_lines(config)[-1].extra["exit_code"] == 4

    # -i over SSH: a paramiko pty of this terminal's size.
    code, seen = through_pty([sys.executable, "-c", SSH_INTERACTIVE, str(config), ssh_host.host, str(ssh_host.port),
                               ssh_host.user, ssh_host.key_file, ssh_host.known_hosts_file],
                              b"SELECT 6 * 7 AS answer;\n\\! stty size\nquit\n", prompts=(b"]> ",))
    assert code == 6 and b"MariaDB [shop]> " in seen and b"42" in seen and b"33 111" in seen, seen
    assert exec_lines(config)[-1].extra["exit_code"] == 6

    # A host that cannot be reached (nothing listens there): 125 naming it (the command never ran).
    closed = SSHConnector("127.0.0.1", port=free_port(), user=ssh_host.user, key_file=ssh_host.key_file,
                          known_hosts=ssh_host.known_hosts_file)
    with pytest.raises(ExecNotStarted, match=r"^127\.0\.0\.1") as info:
        run_accessory_exec(load_config(config), AccessoryExecRequest(env="local", accessory="db", command=("true",)),
                           lambda *a: None, connectors=[closed])
    assert info.value.exit_code == 125

    # Errors of ours: 125 as exec's (the command's own 2 or 4 stays its own), no traceback.
    unknown = cli(config, "accessory", "exec", "dbx", "--", "true")
    assert unknown.returncode == 125 and "no accessory 'dbx'" in unknown.stderr, unknown.stderr
    assert cli(config, "accessory", "stop", "db").returncode == 0
    stopped = cli(config, "accessory", "exec", "db", "--", "true")
    assert stopped.returncode == 125, stopped.stderr
    assert "accessory db is not running" in stopped.stderr and "deployctl accessory boot db" in stopped.stderr
    assert "Traceback" not in unknown.stderr + stopped.stderr
