"""`deployctl accessory exec`: the argv it runs on each target (a host of a local or ssh
environment, a Swarm task's node), the exit code and streams passed through, the history
line (extra.accessory, never the output), and the errors of ours with their exit codes
(unknown accessory or host 2, not running 2 with the boot hint, unreachable host 4, a
connection lost after the start 125), on scripted connectors (tests/unit/test_exec.py's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.adapters.connector import CommandResult, ConnectionLost
from deployctl.config import LoadedConfig, parse_config
from deployctl.errors import ConnectError, ExecNotStarted
from deployctl.plan.data import accessories as acc
from deployctl.plan.lifecycle.releases import History
from deployctl.plan.operate import exec as plan
from deployctl.plan.swarm import services as sw
from deployctl.services.hosts import layout_for
from deployctl.services.operate.accessory_exec import AccessoryExecRequest, run_accessory_exec
from tests.unit.test_exec import Scripted

R = "20261201-101500-abc1234"
CONFIG = """
app = "shop"
[registry]
server = "registry.example:5000"
[services.web]
context = "web"
routed = true
[accessories.db]
image = "mariadb:11"
volumes = ["data:/var/lib/mysql"]
secrets = ["DB_ROOT_PASSWORD"]
placement = ["node.hostname==node-b"]
[accessories.db.env]
MARIADB_ROOT_PASSWORD_FILE = "/run/secrets/DB_ROOT_PASSWORD"
[environments.prod]
target = "ssh"
hosts = ["h1", "h2"]
state_dir = "/srv/state"
accessories = ["db"]
[environments.swarm]
target = "swarm"
manager = "10.0.0.1"
state_dir = "/srv/state"
accessories = ["db"]
"""
LOADED = LoadedConfig(Path("/p/deploy.toml"), parse_config(CONFIG))
PROD, SWARM = layout_for(LOADED, "prod"), layout_for(LOADED, "swarm")
DB = "shop-prod-db"


class Host(Scripted):
    """A scripted host with what accessory exec needs beyond test_exec's: mkdir, a
    terminal, a connect that can fail."""

    def __init__(self, host: str, answers: list, files: dict | None = None, *,  # type: ignore[type-arg]
                 unreachable: bool = False) -> None:
        super().__init__(host, answers, files)
        self.dirs: list[str] = []
        self.unreachable = unreachable
        self.terminal = ""
        self.closed = False

    def connect(self):  # type: ignore[no-untyped-def]
        if self.unreachable:
            raise ConnectError(f"{self.host}: cannot connect: timed out")
        return self

    def close(self) -> None:
        self.closed = True

    def mkdir(self, path, *, mode=0o755, exclusive=False):  # type: ignore[no-untyped-def]
        self.dirs.append(path)
        return True

    def interactive(self, argv):  # type: ignore[no-untyped-def]
        result = self.run(argv)
        self.terminal += result.stdout
        return result.rc


def state_line(status: str, container: str = DB) -> str:
    return f"/{container}|{status}|mariadb:11||2026-12-01T10:00:00Z|abc|0|0|shop-prod=db,;\n"


def host(name: str, status: str = "running", *, live: str | None = R, exec_answer=None, **kw) -> Host:  # type: ignore[no-untyped-def]
    answers = [(acc.inspect([DB]), CommandResult(0, state_line(status), "") if status != "missing"
                else CommandResult(1, "", "Error: No such object"))]
    answers.append((["docker", "exec"], exec_answer or CommandResult(3, "row-17\n", "warn-9\n")))
    files = {PROD.current: f"{live}\n".encode()} if live else {}
    return Host(name, answers, files, **kw)


def run(conns, *command: str, env: str = "prod", **kw):  # type: ignore[no-untyped-def]
    out: list = []
    nodes = kw.pop("node_connector", None)
    request = AccessoryExecRequest(env=env, accessory=kw.pop("accessory", "db"), command=command or ("sh", "-c", "x"),
                                   **kw)
    code = run_accessory_exec(LOADED, request, lambda h, s, d: out.append((h, s, d)), connectors=conns,
                              node_connector=nodes, now=lambda: 1_796_292_000)
    return code, out


def lines(conn: Host, layout=PROD) -> list:  # type: ignore[no-untyped-def]
    return list(History.parse((conn.files.get(layout.history) or b"").decode()).records)


# -- the argv and the record ---------------------------------------------------------------------

def test_the_argv_is_docker_exec_in_the_accessory_container():
    assert plan.live_exec(DB, ["mariadb", "-e", "SELECT 1"]) == ["docker", "exec", DB, "mariadb", "-e", "SELECT 1"]
    assert plan.live_exec(DB, ["mariadb"], interactive=True) == ["docker", "exec", "-i", "-t", DB, "mariadb"]


def test_record_names_the_accessory_and_masks_the_argv():
    line = plan.accessory_exec_record(release=R, accessory="db", command=["mariadb", "--password=hunter2"],
                                      exit_code=1, who="ann@box", now=1_796_292_000)
    assert (line.release, line.revision, line.action, line.outcome) == (R, None, "exec", "exited")
    assert line.extra == {"accessory": "db", "command": ["mariadb", "--password=***"], "exit_code": 1}
    before_any_deploy = plan.accessory_exec_record(release=None, accessory="db", command=["true"], exit_code=None,
                                                   who="a", now=0, error="ConnectionLost: gone")
    parsed = History.parse(before_any_deploy.to_line())
    assert parsed.skipped == () and parsed.records[0].release == plan.NOTHING_LIVE
    assert parsed.records[0].outcome == "unknown" and parsed.good() == [] and parsed.ids() == {plan.NOTHING_LIVE}


# -- a host of a local or ssh environment ---------------------------------------------------------

def test_runs_on_the_first_host_streams_and_returns_the_code():
    h1, h2 = host("h1"), host("h2")
    code, out = run([h1, h2], "sh", "-c", "echo out; echo err >&2; exit 3")
    assert code == 3
    assert out == [("h1", "stdout", b"row-17\n"), ("h1", "stderr", b"warn-9\n")]
    assert h1.ran == [acc.inspect([DB]), ["docker", "exec", DB, "sh", "-c", "echo out; echo err >&2; exit 3"]]
    assert h2.ran == [] and h1.closed and h2.closed
    [line] = lines(h1)
    assert (line.release, line.extra) == (R, {"accessory": "db", "command": ["sh", "-c", "echo out; echo err >&2; "
                                                                             "exit 3"], "exit_code": 3})
    assert PROD.root in h1.dirs  # an accessory booted before any deploy: the state dir made for the line
    assert b"row-17" not in h1.files[PROD.history] and b"warn-9" not in h1.files[PROD.history]  # never the output


def test_host_choice_and_interactive_terminal():
    h1, h2 = host("h1"), host("h2", exec_answer=CommandResult(5, "MariaDB [(none)]> \r\n", ""))
    code, out = run([h1, h2], "mariadb", host="h2", interactive=True)
    assert code == 5 and out == [] and h2.terminal == "MariaDB [(none)]> \r\n"
    assert h2.ran[-1] == ["docker", "exec", "-i", "-t", DB, "mariadb"] and h1.ran == []
    assert lines(h2)[-1].extra["exit_code"] == 5 and lines(h1) == []


def test_before_any_deploy_the_line_has_no_release():
    h1 = host("h1", live=None, exec_answer=CommandResult(0, "", ""))
    assert run([h1])[0] == 0
    assert lines(h1)[-1].release == plan.NOTHING_LIVE


def test_errors_of_ours_are_125_as_exec_s_so_no_code_of_ours_is_mistaken_for_the_command_s():
    """The command's own 2 or 4 stays the command's: whatever stops it from starting is 125
    (as `docker exec` says it), the message saying which."""
    with pytest.raises(ExecNotStarted, match="no accessory 'cache'") as info:
        run([host("h1")], accessory="cache")
    assert info.value.exit_code == 125
    with pytest.raises(ExecNotStarted, match="not 'all'"):
        run([host("h1")], accessory="all")
    with pytest.raises(ExecNotStarted, match="no command"):
        run_accessory_exec(LOADED, AccessoryExecRequest(env="prod", accessory="db", command=()), lambda *a: None,
                           connectors=[host("h1")])
    with pytest.raises(ExecNotStarted, match=r"--host h9: not a host of prod \(hosts: h1, h2\)"):
        run([host("h1"), host("h2")], host="h9")
    for status in ("exited", "missing"):
        stopped = host("h1", status)
        with pytest.raises(ExecNotStarted, match=f"h1: accessory db is not running \\({DB}: {status}\\)") as info:
            run([stopped])
        assert "`deployctl accessory boot db`" in (info.value.hint or "")
        assert not [argv for argv in stopped.ran if argv[:2] == ["docker", "exec"]] and lines(stopped) == []
    with pytest.raises(ExecNotStarted, match="h1: cannot connect") as info:
        run([host("h1", unreachable=True)])
    assert info.value.exit_code == 125


def test_a_connection_lost_before_the_start_or_after_it_is_125_only_the_second_recorded():
    gone = host("h1")
    gone.run = lambda argv, **kw: (_ for _ in ()).throw(ConnectionLost("h1: connection lost"))  # type: ignore[method-assign]
    with pytest.raises(ExecNotStarted, match="h1: .*connection lost"):
        run([gone])
    midway = host("h1")
    midway.stream = lambda argv, **kw: (_ for _ in ()).throw(ConnectionLost("connection lost"))  # type: ignore[method-assign]
    with pytest.raises(ExecNotStarted, match="the command's end was not seen") as info:
        run([midway])
    assert info.value.exit_code == 125
    assert lines(midway)[-1].outcome == "unknown"


# -- a Swarm: the accessory's one task, on its node -------------------------------------------------

def swarm_manager(tasks: str, *, service_ps_rc: int = 0) -> Host:
    stderr = "" if service_ps_rc == 0 else "Error: no such service: shop-swarm-db"
    return Host("10.0.0.1", [
        (sw.running_tasks("shop-swarm-db"), CommandResult(service_ps_rc, tasks, stderr)),
        (sw.inspect_listed_nodes(), CommandResult(0, "node-a\t10.0.0.1\tready\tactive\t10.0.0.1:2377\n"
                                                         "node-b\t10.0.0.2\tready\tactive\t\n", "")),
    ], files={SWARM.current: f"{R}\n".encode()})


def test_swarm_runs_in_the_task_container_on_its_node_and_records_on_the_manager():
    manager = swarm_manager("t7\tshop-swarm-db.1\tnode-b\tRunning\tRunning 2 hours ago\t\n")
    node = Host("10.0.0.2", [(["docker", "ps"], CommandResult(0, "c0ffee\n", "")),
                             (["docker", "exec"], CommandResult(4, "1\n", ""))])
    reached: list[str] = []
    code, out = run([manager], "mariadb", "-N", "-e", "SELECT 1", env="swarm",
                    node_connector=lambda address: reached.append(address) or node)
    assert code == 4 and reached == ["10.0.0.2"] and node.closed and manager.closed
    assert manager.ran[0] == ["docker", "service", "ps", "--no-trunc", "--filter", "desired-state=running",
                              "--format", "{{.ID}}\t{{.Name}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}"
                              "\t{{.Error}}", "shop-swarm-db"]
    assert node.ran == [["docker", "ps", "-q", "--no-trunc", "--filter", "label=com.docker.swarm.task.id=t7",
                         "--filter", "status=running"],
                        ["docker", "exec", "c0ffee", "mariadb", "-N", "-e", "SELECT 1"]]
    assert [o for o in out if o[2]] == [("10.0.0.2", "stdout", b"1\n")]
    [line] = lines(manager, SWARM)
    assert (line.release, line.extra["accessory"], line.extra["exit_code"]) == (R, "db", 4)


@pytest.mark.parametrize("tasks, rc", [("", 0), ("", 1), ("t7\tshop-swarm-db.1\tnode-b\tShutdown\tShutdown 1s ago\t\n", 0)])
def test_swarm_accessory_not_running_says_boot(tasks, rc):
    with pytest.raises(ExecNotStarted, match="the Swarm service shop-swarm-db has no running task") as info:
        run([swarm_manager(tasks, service_ps_rc=rc)], env="swarm", node_connector=lambda a: None)
    assert "`deployctl accessory boot db`" in (info.value.hint or "")


def test_swarm_node_unreachable_is_125_naming_it():
    manager = swarm_manager("t7\tshop-swarm-db.1\tnode-b\tRunning\tRunning 2 hours ago\t\n")
    with pytest.raises(ExecNotStarted, match="10.0.0.2: cannot connect"):
        run([manager], env="swarm", node_connector=lambda address: Host(address, [], unreachable=True))


def test_cli_lists_exec_and_refuses_an_unknown_accessory(tmp_path, monkeypatch, capsys):
    from deployctl.cli.main import main

    (tmp_path / "deploy.toml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    assert main(["accessory", "--help"]) == 0
    assert "exec" in capsys.readouterr().out
    assert main(["accessory", "exec", "cache", "--env", "prod", "--", "true"]) == 125
    err = capsys.readouterr().err
    assert "no accessory 'cache'" in err and "Traceback" not in err
