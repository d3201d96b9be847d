"""deployctl's own http/tcp check of every task on a Swarm (plan/swarm/swarm_health.py): an app
whose only check is http is accepted, its service runs without the image's HEALTHCHECK,
and the checker's argvs, the relay's configuration and the reading of its answers are
exact data."""

from __future__ import annotations

from deployctl.config.load import parse_config
from deployctl.plan.swarm import services as sw
from deployctl.plan.swarm import swarm_health as sh
from deployctl.plan.lifecycle.names import Names, StateLayout
from deployctl.plan.lifecycle.release_spec import release_spec
from deployctl.plan.swarm.swarm_plan import deploy_plan, rollback_plan

CONFIG_TEXT = """
app = "users"
[registry]
server = "registry.example:5000"
[services.api]
context = "backend"
port = 5001
[services.api.healthcheck]
type = "tcp"
timeout = 5
[services.web]
context = "frontend"
routed = true
port = 5000
[services.web.healthcheck]
path = "/"
timeout = 12
interval = 0.5
[environments.prod]
target = "swarm"
manager = "10.0.0.1"
"""
R1 = "20261202-101500-abc1234"
IMAGES = {"api": "registry.example:5000/users/api@sha256:a", "web": "registry.example:5000/users/web@sha256:w"}
PROXY_IMAGE = "registry.example:5000/nginx@sha256:p"
NAMES = Names("users", "prod")


def plan_for(text: str = CONFIG_TEXT):  # type: ignore[no-untyped-def]
    config = parse_config(text)
    environment = config.environments["prod"]
    layout = StateLayout(environment.state_dir, "users", "prod")
    spec = release_spec(config, "prod", R1, "abc1234def", IMAGES, PROXY_IMAGE)
    services = sw.release_services(config, environment, "prod", spec, layout)
    return spec, services, deploy_plan(spec, services, NAMES, layout.proxy_dir, proxy_port=80, drain=1.0,
                                       migrations={})


def test_an_app_whose_only_check_is_http_is_accepted_on_a_swarm_and_runs_without_the_images_healthcheck():
    config = parse_config(CONFIG_TEXT)
    assert config.services["web"].healthcheck.kind == "http"  # no type given: http, as the app's own
    _, services, plan = plan_for()
    by_name = {s.service: s for s in services}
    for service in ("api", "web"):
        argv = sw.create_service(by_name[service], "users-prod")
        # Swarm would stop tasks on a check the config did not choose; deployctl checks them.
        assert argv[-2:] == ["--no-healthcheck", IMAGES[service]]
        assert "--health-cmd" not in argv
    assert plan.probes[f"users-prod-web-{R1}"].kind == "http"
    assert sh.checked(plan.probes) == {f"users-prod-api-{R1}": plan.probes[f"users-prod-api-{R1}"],
                                       f"users-prod-web-{R1}": plan.probes[f"users-prod-web-{R1}"]}


def test_the_checker_runs_the_releases_proxy_image_on_the_bridge_with_the_relay_config_on_its_argv():
    assert sh.run_checker(NAMES, R1, PROXY_IMAGE, 2.0) == [
        "docker", "run", "--detach", "--rm", "--name", f"users-prod-check-{R1}", "--network", "bridge",
        "--label", "io.deployctl.app=users", "--label", "io.deployctl.env=prod",
        "--label", f"io.deployctl.release={R1}", "--label", "io.deployctl.role=check",
        "--entrypoint", "sh", PROXY_IMAGE, "-c",
        'printf "%s" "$1" > /tmp/deployctl-checker.conf && exec nginx -c /tmp/deployctl-checker.conf '
        '-g "daemon off;"', "sh", sh.render_checker_config(2.0),
    ]
    assert sh.connect_checker("users-prod", "c") == ["docker", "network", "connect", "users-prod", "c"]
    assert sh.checker_address("c") == ["docker", "inspect", "--format",
                                       "{{.NetworkSettings.Networks.bridge.IPAddress}}", "c"]
    assert sh.remove_checker("c") == ["docker", "rm", "--force", "c"]
    assert sh.check_path("10.0.1.7", 5000, "/healthz") == "/deployctl-check/10.0.1.7/5000/healthz"


def test_the_relay_takes_only_an_ipv4_address_and_a_port_and_reports_whether_it_connected():
    conf = sh.render_checker_config(1.5)
    assert '"^/deployctl-check/(?<t_addr>[0-9]{1,3}(\\.[0-9]{1,3}){3})/(?<t_port>[0-9]{1,5})(?<t_path>/.*)$"' in conf
    assert "proxy_pass http://$t_addr:$t_port$t_path$is_args$args;" in conf
    for line in ("proxy_connect_timeout 1500ms;", "proxy_read_timeout 1500ms;", "proxy_next_upstream off;",
                 'add_header X-Deployctl-Connect "$upstream_connect_time" always;',
                 'add_header X-Deployctl-Answer "$upstream_header_time" always;',
                 "location = /deployctl-checker { return 200", "location / { return 404; }"):
        assert line in conf, line


def test_the_attempt_is_at_most_two_seconds_as_on_ssh_hosts():
    _, _, plan = plan_for()
    assert sh.attempt_timeout(30) == 2.0 and sh.attempt_timeout(0.5) == 0.5
    assert sh.checker_attempt(plan.probes) == 2.0
    assert sh.checker_attempt({}) == 2.0


def test_a_tcp_check_is_a_connect_from_the_checker_with_bash_or_nc():
    argv = sh.tcp_probe("c", "10.0.1.8", 5001, 2.0)
    assert argv[:5] == ["docker", "exec", "c", "sh", "-c"] and argv[6:] == ["sh", "10.0.1.8", "5001", "2"]
    assert '/dev/tcp/$0/$1' in argv[5] and 'nc -z -w "$3" "$1" "$2"' in argv[5]
    assert sh.tcp_probe("c", "10.0.1.8", 5001, 0.4)[-1] == "1"  # whole seconds for timeout(1)/nc -w


def test_task_addresses_are_read_on_the_apps_network_only():
    assert sh.task_addresses(["t1", "t2"]) == [
        "docker", "inspect", "--type", "task", "--format",
        "{{.ID}}\t{{range .NetworksAttachments}}{{.Network.Spec.Name}}={{range .Addresses}}{{.}},{{end}} {{end}}",
        "t1", "t2"]
    text = ("t1\tingress=10.255.0.5/16, users-prod=10.0.1.7/24, \n"
            "t2\tusers-prod=fd00::3/64,10.0.1.9/24, \n"
            "t3\t\n"
            "t4\tother=10.0.9.2/24, \n")
    assert sh.parse_task_addresses(text, "users-prod") == {"t1": "10.0.1.7", "t2": "10.0.1.9"}


def test_the_relays_answer_reads_as_an_http_check_on_ssh_hosts():
    connected = {sh.CONNECT_HEADER: "0.001", sh.ANSWER_HEADER: "0.004"}
    target = "http 10.0.1.7:5000"
    assert sh.http_answer(200, connected, "ok", "/healthz", target) == sh.ProbeAnswer(True)
    assert sh.http_answer(503, connected, '{"status": "broken"}\n', "/healthz", target) == sh.ProbeAnswer(
        False, '/healthz answered 503: {"status": "broken"}')
    assert sh.http_answer(302, connected, "", "/", target).ok is False  # 200 only, as services/lifecycle/health.py
    # The task's own 502 is its answer; the relay's (nothing connected / no answer) says so.
    assert sh.http_answer(502, connected, "bad", "/healthz", target).why == "/healthz answered 502: bad"
    assert sh.http_answer(502, {sh.CONNECT_HEADER: "-", sh.ANSWER_HEADER: "-"}, "<html>", "/healthz", target) == \
        sh.ProbeAnswer(False, "http 10.0.1.7:5000: no connection (refused)")
    assert sh.http_answer(504, {sh.CONNECT_HEADER: "-"}, "", "/healthz", target).why == \
        "http 10.0.1.7:5000: no connection (timed out)"
    assert sh.http_answer(504, {sh.CONNECT_HEADER: "0.002", sh.ANSWER_HEADER: "-"}, "", "/healthz", target).why == \
        "http 10.0.1.7:5000/healthz: no answer in time"


def test_the_dry_run_shows_the_checker_it_starts_and_none_when_every_check_runs_in_the_task():
    spec, services, plan = plan_for()
    [row] = [s for s in plan.health_rows() if s.argv == plan.checker]
    assert row.step == "health" and "GET http://<users-prod-web-" in row.detail and "accepts a TCP" in row.detail
    assert plan.checker == tuple(sh.run_checker(NAMES, R1, PROXY_IMAGE, 2.0))
    back = rollback_plan(spec, services, NAMES, "/x", proxy_port=80, drain=1.0)
    assert back.checker == plan.checker  # a rollback checks the tasks it scales back up the same way
    docker_only = CONFIG_TEXT.replace('[services.api.healthcheck]\ntype = "tcp"', '[services.api.healthcheck]\ntype = "docker"')
    docker_only = docker_only.replace('[services.web.healthcheck]\npath = "/"', '[services.web.healthcheck]\ntype = "docker"')
    _, _, plan = plan_for(docker_only)
    assert plan.checker == () and all("checker" not in s.detail for s in plan.health_rows())


def test_the_example_app_deploy_toml_from_init_is_accepted_on_a_swarm_unchanged():
    """examples/bootcamp-users as `deployctl init` writes it (tests/unit/test_init_compose.py):
    its services keep the checks init gave them (no HEALTHCHECK in its images); adding a
    swarm environment is all it takes (its MySQL stays outside the Swarm here: its init.sql
    `files` cannot reach a node yet, docs/swarm.md)."""
    from deployctl.plan.init.init_render import render
    from tests.unit.test_init_compose import BOOTCAMP, BOOTCAMP_FILES, plan

    text = render(plan(BOOTCAMP, BOOTCAMP_FILES))
    swarm = text + '\n[registry]\nserver = "registry.example:5000"\n' \
                   '[environments.production]\ntarget = "swarm"\nmanager = "10.0.0.1"\n'
    config = parse_config(swarm)
    kinds = {name: s.healthcheck.kind for name, s in config.services.items()}
    assert set(kinds.values()) <= {"http", "tcp"}, kinds
    layout = StateLayout("/var/lib/deployctl", config.app, "production")
    spec = release_spec(config, "production", R1, "abc", {n: f"r/{n}@sha256:x" for n in config.services}, PROXY_IMAGE)
    services = sw.release_services(config, config.environments["production"], "production", spec, layout)
    assert all(sw.create_service(s, "n")[-2] == "--no-healthcheck" for s in services)


# -- a task that fails ends the wait -------------------------------------------------------

def _task(id_: str, name: str, desired: str, state: str, error: str = "") -> str:
    return f"{id_}\t{name}\thost2\t{desired}\t{state}\t{error}"


def test_a_failed_rejected_or_erroring_shutdown_task_is_a_crash_once_the_wait_began():
    tasks = sw.parse_tasks("\n".join([
        _task("t0", "users-prod-web-r2.1", "Shutdown", "Failed 10 minutes ago", "task: non-zero exit (1)"),
        _task("t1", "users-prod-web-r2.1", "Running", "Running 2 seconds ago"),
        _task("t2", "users-prod-api-r2.1", "Shutdown", "Shutdown 3 minutes ago"),
    ]))
    before = sh.failed_before(tasks)
    assert before == {"t0"}
    assert sh.first_crash(tasks, {"users-prod-web-r2", "users-prod-api-r2"}, before) is None
    later = tasks + sw.parse_tasks("\n".join([
        _task("t3", "users-prod-api-r2.1", "Shutdown", "Rejected 1 second ago", "No such image: r/api@sha256:1"),
        _task("t4", "users-prod-web-r2.2", "Shutdown", "Shutdown 1 second ago", "task: non-zero exit (3)"),
    ]))
    assert sh.first_crash(later, {"users-prod-web-r2"}, before).id == "t4"
    assert sh.first_crash(later, {"users-prod-api-r2"}, before).id == "t3"


def test_a_task_swarm_stopped_for_its_healthcheck_is_a_crash():
    # What the real Swarm shows for a task whose HEALTHCHECK never passes (the Swarm test's
    # v3): each is stopped, its process exits 0, the task is Complete, and another starts.
    # It never shows Failed, so the wait ran to its timeout ("0/3 running") before.
    tasks = sw.parse_tasks("\n".join([
        _task("t1", "users-prod-web-r3.1", "Shutdown", "Complete 5 seconds ago"),
        _task("t2", "users-prod-web-r3.1", "Running", "Starting 3 seconds ago"),
    ]))
    assert sh.first_crash(tasks, {"users-prod-web-r3"}, set()).id == "t1"
    assert sh.first_crash(tasks, {"users-prod-web-r3"}, sh.failed_before(tasks)) is None  # history, not this wait's


class Manager:
    """A Swarm manager that answers `docker service ps` from a script (the last answer
    repeats) and `docker service logs` with the task's output."""

    host = "manager1"

    def __init__(self, *answers: str) -> None:
        self.answers, self.asked, self.calls = list(answers), 0, []

    def run(self, argv, *, stdin=None, timeout=None, on_line=None):  # type: ignore[no-untyped-def]
        from deployctl.adapters.connector import CommandResult

        self.calls.append(list(argv))
        if argv[:3] == ["docker", "service", "ps"]:
            self.asked += 1
            return CommandResult(0, self.answers[min(self.asked, len(self.answers)) - 1], "")
        if argv[:3] == ["docker", "service", "logs"]:
            return CommandResult(0, "starting\nboom: cannot import app\n", "")
        raise AssertionError(f"unexpected argv {argv}")


def test_wait_ready_ends_at_the_first_failed_task_with_its_error_and_last_log_line():
    import time

    import pytest

    from deployctl.errors import HealthCheckError
    from deployctl.services.swarm.swarm_site import SwarmSite

    web = "users-prod-web-r2"
    manager = Manager(_task("t1", f"{web}.1", "Running", "Starting 1 second ago"),
                      _task("t1", f"{web}.1", "Shutdown", "Failed 1 second ago", "task: non-zero exit (3)"))
    site = SwarmSite(manager, lambda address: None, Names("users", "prod"),
                     StateLayout("/var/lib/deployctl", "users", "prod"), lambda e: None)
    started = time.monotonic()
    with pytest.raises(HealthCheckError, match=r"users-prod-web-r2.1 on host2: failed before it was healthy: "
                                               r"task: non-zero exit \(3\); its last log line: boom: cannot import app"):
        site.wait_ready({web: 1}, timeout=60)
    assert time.monotonic() - started < 5
    assert ["docker", "service", "logs", "--raw", "--tail", "5", "t1"] in manager.calls
