"""`deployctl exec`: its argv lists (plan/operate/exec.py), the exit-code passthrough and the history
record on the scripted host (tests/support/fake_host.py), and the history's readers (good,
previous_good, deployed, stats, `releases`) ignoring `exec` records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deployctl.adapters.connector import CommandResult
from deployctl.config import LoadedConfig, parse_config
from deployctl.errors import ExecNotStarted, ExitCode
from deployctl.plan.operate import exec as plan
from deployctl.plan.swarm import services as sw
from deployctl.plan import stats
from deployctl.plan.lifecycle.containers import ContainerSpec
from deployctl.plan.lifecycle.names import Names
from deployctl.plan.lifecycle.releases import EXEC, LIVE, History, ReleaseRecord
from deployctl.services.operate.exec import ExecRequest, run_exec
from deployctl.services.hosts import layout_for
from deployctl.services.inspect import releases as releases_view
from deployctl.services.env import Env
from tests.support.fake_host import FakeHost, Fault
from tests.unit.test_lifecycle_rules import LOADED, LOCAL, local_site, records, virtual_time  # noqa: F401

R = "20261201-101500-abc1234"
NAMES = Names("shop", "prod")


def spec(**kw) -> ContainerSpec:  # type: ignore[no-untyped-def]
    base = dict(service="backend", name=f"shop-prod-backend-{R}", image="reg/shop/backend@sha256:1", port=8000,
                health_path="/health", env={"A": "1", "DEPLOYCTL_RELEASE": R}, secrets=("DB_PASSWORD",),
                secrets_dir=f"/srv/shop/prod/secrets/{R}/backend", env_file=f"/srv/shop/prod/secrets/{R}/backend.env",
                secret_env={"DATABASE_URL": "mysql://u:{{ secret.DB_PASSWORD }}@db/x"})
    base.update(kw)
    return ContainerSpec(**base)  # type: ignore[arg-type]


# -- argv lists ----------------------------------------------------------------------------

def test_live_exec_argv():
    assert plan.live_exec("c1", ["sh", "-c", "echo hi"]) == ["docker", "exec", "c1", "sh", "-c", "echo hi"]
    assert plan.live_exec("c1", ["flask", "shell"], interactive=True) == ["docker", "exec", "-i", "-t", "c1",
                                                                          "flask", "shell"]


def test_one_off_argvs_carry_the_release_env_file_and_secret_mounts_and_no_alias():
    labels = NAMES.labels("exec", R, "backend")
    create, connect, start = plan.one_off(spec(), "reg/shop/backend@sha256:1", f"shop-prod-{R}", "shop-prod", "x1",
                                          ["env"], labels)
    assert create == [
        "docker", "create", "--rm", "--name", "x1", "--network", f"shop-prod-{R}",
        "--label", "io.deployctl.app=shop", "--label", "io.deployctl.env=prod", "--label", f"io.deployctl.release={R}",
        "--label", "io.deployctl.role=exec", "--label", "io.deployctl.service=backend",
        "-e", "A=1", "-e", f"DEPLOYCTL_RELEASE={R}",
        "--env-file", f"/srv/shop/prod/secrets/{R}/backend.env",
        "-v", f"/srv/shop/prod/secrets/{R}/backend/DB_PASSWORD:/run/secrets/DB_PASSWORD:ro",
        "reg/shop/backend@sha256:1", "env",
    ]
    assert "--network-alias" not in create  # the live service's name never resolves to it
    assert "s3cret" not in " ".join(create) and "{{" not in " ".join(create)  # secret values never on the argv
    assert connect == ["docker", "network", "connect", "shop-prod", "x1"]
    assert start == ["docker", "start", "--attach", "x1"]
    create_i, _, start_i = plan.one_off(spec(env={}, env_file="", secret_env={}, secrets=()), "img", "rn", "an", "x2",
                                        ["sh"], {}, interactive=True)
    assert create_i == ["docker", "create", "--rm", "--name", "x2", "-i", "-t", "--network", "rn", "img", "sh"]
    assert start_i == ["docker", "start", "--attach", "--interactive", "x2"]
    assert plan.remove("x1") == ["docker", "rm", "--force", "--volumes", "x1"]


def test_swarm_argvs():
    assert sw.running_tasks("shop-prod-backend-R") == [
        "docker", "service", "ps", "--no-trunc", "--filter", "desired-state=running", "--format",
        "{{.ID}}\t{{.Name}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}\t{{.Error}}", "shop-prod-backend-R"]
    assert plan.task_container("t1") == ["docker", "ps", "-q", "--no-trunc", "--filter",
                                         "label=com.docker.swarm.task.id=t1", "--filter", "status=running"]


def test_one_off_name_is_per_run():
    assert plan.one_off_name(NAMES, "backend", R, "a1b2c3") == f"shop-prod-exec-backend-{R}-a1b2c3"


# -- the history record ----------------------------------------------------------------------

def test_mask_argv():
    assert plan.mask_argv(["flask", "db", "upgrade"]) == ["flask", "db", "upgrade"]
    assert plan.mask_argv(["mysql", "--password", "hunter22", "-e", "select 1"]) == [
        "mysql", "--password", "***", "-e", "select 1"]
    assert plan.mask_argv(["app", "--api-key=abcd", "DB_PASSWORD=xyz", "USER=bob"]) == [
        "app", "--api-key=***", "DB_PASSWORD=***", "USER=bob"]
    assert plan.mask_argv(["curl", "https://u:pw123@example.com/"]) == ["curl", "***"]
    assert plan.mask_argv(["echo", "ghp_" + "a" * 36]) == ["echo", "***"]
    assert plan.mask_argv(["echo", "known-secret-value"], lambda t: t.replace("known-secret-value", "***")) == [
        "echo", "***"]


def test_exec_record_shape_and_round_trip():
    record = plan.exec_record(release=R, revision="abc1234", service="backend", command=["sh", "-c", "TOKEN=x y"],
                              mode="new", exit_code=3, who="ann@box", now=1_780_000_000)
    data = json.loads(record.to_line())
    assert data == {"release": R, "revision": "abc1234", "action": "exec", "outcome": "exited", "who": "ann@box",
                    "when": "2026-05-28T20:26:40Z",
                    "extra": {"service": "backend", "mode": "new", "command": ["sh", "-c", "TOKEN=***"],
                              "exit_code": 3}}
    history = History.parse(record.to_line())
    assert history.skipped == () and history.records[0].action == EXEC
    unseen = plan.exec_record(release=R, revision=None, service="backend", command=["sh"], mode="live",
                              exit_code=None, who="a", now=0, error="ConnectionLost: gone")
    assert unseen.outcome == "unknown" and "exit_code" not in unseen.extra and unseen.error


# -- readers ignore exec records ---------------------------------------------------------------

def _rec(release: str, action: str, outcome: str, when: str, previous: str | None = None) -> ReleaseRecord:
    return ReleaseRecord(release=release, revision="abc1234", images={"web": "img"}, action=action, outcome=outcome,
                         who="a", when=when, previous=previous)


R1, R2 = "20261201-100000-abc1234", "20261202-100000-abc1234"
BASE = [_rec(R1, "deploy", LIVE, "2026-12-01T10:00:00Z"), _rec(R2, "deploy", LIVE, "2026-12-02T10:00:00Z", R1)]
EXECS = [plan.exec_record(release=R2, revision="abc1234", service="web", command=["true"], mode="live",
                          exit_code=0, who="a", now=1_796_292_000),  # 2026-12-03
         plan.exec_record(release=R1, revision="abc1234", service="web", command=["false"], mode="new",
                          exit_code=1, who="a", now=1_796_292_060)]


def test_history_choices_ignore_exec_records():
    plain, with_exec = History(tuple(BASE)), History(tuple(BASE + EXECS))
    assert with_exec.good() == plain.good() == [R1, R2]
    assert with_exec.previous_good(R2) == plain.previous_good(R2) == R1
    assert with_exec.deployed(R2) == plain.deployed(R2) == BASE[1]


def test_stats_ignore_exec_records():
    now, window = 1_796_400_000.0, 30 * 86400.0
    assert stats.compute(BASE + EXECS, now=now, window=window) == stats.compute(BASE, now=now, window=window)
    merged = stats.merge([BASE + EXECS])
    assert stats.compute(merged, now=now, window=window) == stats.compute(BASE, now=now, window=window)


# -- on the scripted host: exit code, streams, the record, the one-off's removal ----------------

@pytest.fixture
def local():
    yield from local_site("local")


def _run(fake: FakeHost, **kw) -> tuple[int, list[tuple[str, str, bytes]]]:  # type: ignore[no-untyped-def]
    out: list[tuple[str, str, bytes]] = []
    request = ExecRequest(env="local", command=kw.pop("command", ("sh", "-c", "echo out; echo err >&2; exit 3")), **kw)
    code = run_exec(LOADED, request, lambda h, s, d: out.append((h, s, d)), connectors=[fake])
    return code, out


def test_live_exec_passes_the_exit_code_and_both_streams(local):
    site, host = local
    host.faults.append(Fault("run", r"^docker exec shop-local-frontend-", effect=lambda argv:
                             CommandResult(3, "out\n", "err\n")))
    code, out = _run(host)
    assert code == 3
    assert out == [("local", "stdout", b"out\n"), ("local", "stderr", b"err\n")]
    last = records(host)[-1]
    assert (last.action, last.release, last.outcome, last.extra["exit_code"], last.extra["service"],
            last.extra["mode"]) == ("exec", site.r1, "exited", 3, "frontend", "live")
    assert last.extra["command"] == ["sh", "-c", "echo out; echo err >&2; exit 3"]
    # The readers did not move: `releases` shows no exec row, rollback's target is unchanged.
    rows = releases_view(Env.resolve(LOADED, "local"), connectors=[host])["local"]
    assert [r["release"] for r in rows] == [site.r1] and "last_rollback" not in rows[0]


def test_new_exec_runs_a_one_off_and_removes_it_whatever_the_code(local):
    site, host = local
    host.faults.append(Fault("run", r"^docker start --attach shop-local-exec-backend-", effect=lambda argv:
                             CommandResult(7, "", "boom\n")))
    before = set(host.containers)
    code, out = _run(host, service="backend", new=True, command=("python", "-m", "task"))
    assert code == 7 and out == [("local", "stderr", b"boom\n")]
    creates = [text for call, text in host.calls if text.startswith("docker create --rm --name shop-local-exec-backend-")]
    assert len(creates) == 1  # this config's backend has no secret-valued env: no --env-file (see test_one_off_argvs)
    assert f"{LOCAL.secret_file(site.r1, 'backend', 'DB_PASSWORD')}:/run/secrets/DB_PASSWORD:ro" in creates[0]
    assert set(host.containers) == before  # removed afterwards
    assert records(host)[-1].extra == {"service": "backend", "mode": "new", "command": ["python", "-m", "task"],
                                       "exit_code": 7}


def test_interactive_uses_a_terminal(local):
    site, host = local
    host.faults.append(Fault("run", r"^docker exec -i -t shop-local-frontend-", effect=lambda argv:
                             CommandResult(5, "hi\r\n", "")))
    code, out = _run(host, interactive=True, command=("sh",))
    assert code == 5 and out == [] and host.terminal == "hi\r\n"


def test_failures_to_start_are_exit_125(local):
    site, host = local
    with pytest.raises(ExecNotStarted, match="no such service"):
        _run(host, service="nope")
    with pytest.raises(ExecNotStarted, match="not a host"):
        _run(host, host="elsewhere")
    host.containers[f"shop-local-frontend-{site.r1}"].status = "exited"
    with pytest.raises(ExecNotStarted, match="is not running") as info:
        _run(host)
    assert info.value.exit_code == ExitCode.EXEC_NOT_STARTED == 125
    host.files.pop(LOCAL.current)
    with pytest.raises(ExecNotStarted, match="nothing is deployed"):
        _run(host)


def test_new_refuses_when_the_release_secret_files_are_gone(local):
    site, host = local
    host.remove_tree(LOCAL.release_secrets(site.r1))
    with pytest.raises(ExecNotStarted, match="secret files are gone"):
        _run(host, service="backend", new=True)
    assert not [t for _, t in host.calls if t.startswith("docker create --rm --name shop-local-exec")]


# -- a Swarm: the task's node found through the manager, `docker exec` there -------------------

SWARM_TEXT = """
app = "shop"
[registry]
server = "registry.example:5000"
[services.frontend]
context = "frontend"
routed = true
replicas = 2
[environments.prod]
target = "swarm"
manager = "10.0.0.1"
proxy_port = 8080
"""


class Scripted:
    """A connector answering argvs by their start (a list of (prefix, CommandResult)), with
    files in memory; it records every argv it ran."""

    def __init__(self, host: str, answers: list, files: dict | None = None) -> None:  # type: ignore[type-arg]
        self.host, self.answers, self.files, self.ran = host, answers, dict(files or {}), []
        self.registry_config = None

    def connect(self):  # type: ignore[no-untyped-def]
        return self

    def close(self) -> None:
        pass

    def run(self, argv, **kw):  # type: ignore[no-untyped-def]
        self.ran.append(list(argv))
        for prefix, answer in self.answers:
            if list(argv[:len(prefix)]) == prefix:
                return answer
        raise AssertionError(f"{self.host}: unscripted {argv}")

    def stream(self, argv, *, on_stdout, on_stderr):  # type: ignore[no-untyped-def]
        result = self.run(argv)
        on_stdout(result.stdout.encode())
        on_stderr(result.stderr.encode())
        return result.rc

    def read_file(self, path):  # type: ignore[no-untyped-def]
        return self.files.get(path)

    def append_file(self, path, data, mode=0o644):  # type: ignore[no-untyped-def]
        self.files[path] = self.files.get(path, b"") + data


def test_swarm_live_exec_runs_in_a_running_task_on_its_node():
    loaded = LoadedConfig(Path("/p/deploy.toml"), parse_config(SWARM_TEXT))
    layout = layout_for(loaded, "prod")
    service = f"shop-prod-frontend-{R1}"
    manager = Scripted("10.0.0.1", [
        (["docker", "service", "ps"], CommandResult(0, f"t1\t{service}.1\tnode-a\tRunning\tStarting 1s ago\t\n"
                                                       f"t2\t{service}.2\tnode-b\tRunning\tRunning 5 minutes ago\t\n", "")),
        (sw.inspect_listed_nodes(), CommandResult(0, "node-a\t10.0.0.1\tready\tactive\t10.0.0.1:2377\n"
                                                         "node-b\t10.0.0.2\tready\tactive\t\n", "")),
    ], files={layout.current: f"{R1}\n".encode(), layout.history: BASE[0].to_line().encode()})
    node = Scripted("10.0.0.2", [
        (["docker", "ps"], CommandResult(0, "c0ffee\n", "")),
        (["docker", "exec", "c0ffee"], CommandResult(3, "out\n", "err\n")),
    ])
    reached: list[str] = []

    def node_connector(address: str):  # type: ignore[no-untyped-def]
        reached.append(address)
        return node

    out: list = []
    request = ExecRequest(env="prod", command=("sh", "-c", "exit 3"))
    code = run_exec(loaded, request, lambda h, s, d: out.append((h, s, d)), connectors=[manager],
                    node_connector=node_connector)
    assert code == 3 and reached == ["10.0.0.2"]  # the task that runs (t2), not the one starting
    assert manager.ran[0] == sw.running_tasks(service)
    assert node.ran == [plan.task_container("t2"), ["docker", "exec", "c0ffee", "sh", "-c", "exit 3"]]
    assert [o for o in out if o[2]] == [("10.0.0.2", "stdout", b"out\n"), ("10.0.0.2", "stderr", b"err\n")]
    record = History.parse(manager.files[layout.history].decode()).records[-1]
    assert (record.action, record.release, record.extra["exit_code"]) == ("exec", R1, 3)
    with pytest.raises(ExecNotStarted, match="not supported on a Swarm"):
        run_exec(loaded, ExecRequest(env="prod", command=("true",), new=True), lambda *a: None, connectors=[manager])
    with pytest.raises(ExecNotStarted, match="no running task on node node-c"):
        run_exec(loaded, ExecRequest(env="prod", command=("true",), host="node-c"), lambda *a: None,
                 connectors=[manager], node_connector=node_connector)


@pytest.fixture
def fleet():
    from tests.unit.test_lifecycle_rules import fleet_site

    yield from fleet_site("prod")


def test_fleet_host_choice_and_all_hosts_exit_code(fleet):
    from tests.unit.test_lifecycle_rules import PROD

    site, hosts = fleet
    for host, rc in zip(hosts, (0, 4, 9)):
        host.faults.append(Fault("run", r"^docker exec ", times=0, effect=lambda argv, h=host.host, rc=rc:
                                 CommandResult(rc, f"{h} says hi\n", "")))
    out: list = []
    code = run_exec(LOADED, ExecRequest(env="prod", command=("hostname",), host="h2"),
                    lambda h, s, d: out.append((h, s, d)), connectors=list(hosts))
    assert code == 4 and out == [("h2", "stdout", b"h2 says hi\n")]
    assert [len([r for r in records(h, PROD) if r.action == "exec"]) for h in hosts] == [0, 1, 0]
    out.clear()
    code = run_exec(LOADED, ExecRequest(env="prod", command=("hostname",), all_hosts=True),
                    lambda h, s, d: out.append((h, s, d)), connectors=list(hosts))
    assert code == 4  # the first non-zero code in host order (h2's), not h3's 9
    assert sorted(h for h, s, d in out if d) == ["h1", "h2", "h3"]
    assert [len([r for r in records(h, PROD) if r.action == "exec"]) for h in hosts] == [1, 2, 1]
    # A host where it cannot start says so on its lines and counts as 125; the others still run.
    hosts[0].gone = True
    out.clear()
    code = run_exec(LOADED, ExecRequest(env="prod", command=("hostname",), all_hosts=True),
                    lambda h, s, d: out.append((h, s, d)), connectors=list(hosts))
    assert code == 125
    [(stream, said)] = [(s, d) for h, s, d in out if h == "h1"]
    assert stream == "stderr" and said.startswith(b"error: h1: ") and b"connection lost" in said, said
    assert sorted(h for h, s, d in out if d.endswith(b"says hi\n")) == ["h2", "h3"]
    hosts[0].gone = False
    with pytest.raises(ExecNotStarted, match="-i and --all-hosts"):
        run_exec(LOADED, ExecRequest(env="prod", command=("sh",), all_hosts=True, interactive=True),
                 lambda *a: None, connectors=list(hosts))


def test_all_hosts_lines_are_prefixed_and_never_mixed(capsysbinary):
    from deployctl.cli.exec import HostLines

    lines = HostLines()
    lines("h1", "stdout", b"one\ntw")
    lines("h2", "stdout", b"x\n")
    lines("h1", "stdout", b"o\n")
    lines("h1", "stderr", b"oops")
    lines.flush()
    out, err = capsysbinary.readouterr()
    assert out == b"h1 | one\nh2 | x\nh1 | two\n" and err == b"h1 | oops\n"


def test_local_stream_keeps_stdout_and_stderr_apart_and_returns_the_code():
    from deployctl.adapters.local import LocalConnector

    got: list[tuple[str, bytes]] = []
    rc = LocalConnector().stream(["sh", "-c", "printf out; echo err >&2; exit 3"],
                                 on_stdout=lambda d: got.append(("out", d)), on_stderr=lambda d: got.append(("err", d)))
    assert rc == 3
    assert b"".join(d for s, d in got if s == "out") == b"out"  # no newline waited for
    assert b"".join(d for s, d in got if s == "err") == b"err\n"
