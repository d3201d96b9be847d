"""The pure deploy plan: names, ids, argv lists, upstream text, history choices — compared as data."""

from __future__ import annotations

import calendar
import time

from deployctl.config.load import parse_config
from deployctl.plan.lifecycle import docker_commands as dc
from deployctl.plan.lifecycle.containers import release_containers
from deployctl.plan.lifecycle.lock import LockRecord
from deployctl.plan.lifecycle.names import Names, StateLayout
from deployctl.plan.lifecycle.releases import FAILED, LIVE, REVERTED, History, ReleaseRecord, new_release_id, prune_selection, sort_key
import pytest

from deployctl.plan.edge.proxy_config import Standby, live_release, render_proxy_config, standby_flag, standby_of
from deployctl.plan.lifecycle.release_spec import ProxySpec, ReleaseSpec, release_spec
from deployctl.plan.lifecycle.switch_plan import deploy_plan, rollback_plan

CONFIG_TEXT = """
app = "usersapp"
[services.backend]
context = "app/backend"
migrate = ["python", "-m", "backend.migrate"]
secrets = ["DATABASE_PASSWORD"]
[services.backend.env]
DATABASE_NAME = "users"
[services.frontend]
context = "app/frontend"
port = 8001
routed = true
[services.frontend.env]
BACKEND_URL = "{{ backend.url }}"
BACKEND_HOST = "{{ backend.host }}:{{ backend.port }}"
[environments.local]
target = "local"
state_dir = "/srv/state"
[environments.local.env]
DATABASE_NAME = "users_local"
"""
CONFIG = parse_config(CONFIG_TEXT)
ENV = CONFIG.environments["local"]
R1 = "20261127-101500-abc1234"
T = calendar.timegm(time.strptime("2026-11-27 10:15:00", "%Y-%m-%d %H:%M:%S"))


def specs(release=R1):
    return {s.service: s for s in release_containers(CONFIG, ENV, "local", release, "abc1234def",
                                                      {"backend": "sha256:b", "frontend": "sha256:f"})}


def test_release_id_is_utc_time_and_short_revision_with_a_suffix_on_collision():
    assert new_release_id(T, "ABC1234DEF") == R1
    assert new_release_id(T, None) == "20261127-101500-0000000"
    assert new_release_id(T, "abc1234def", {R1}) == R1 + "-2"
    assert new_release_id(T, "abc1234def", {R1, R1 + "-2"}) == R1 + "-3"


def test_release_ids_sort_by_time_then_suffix():
    ids = [R1 + "-10", "20261127-101501-0000000", R1, R1 + "-2"]
    assert sorted(ids, key=sort_key) == [R1, R1 + "-2", R1 + "-10", "20261127-101501-0000000"]


def test_names_and_state_paths():
    names = Names("usersapp", "local")
    assert names.container("backend", R1) == f"usersapp-local-backend-{R1}"
    assert (names.network, names.proxy) == ("usersapp-local", "usersapp-local-proxy")
    layout = StateLayout("/srv/state", "usersapp", "local")
    assert layout.lock_dir == "/srv/state/usersapp/local/lock"
    assert layout.proxy_dir == "/srv/state/usersapp/local/proxy"
    assert names.release_network(R1) == f"usersapp-local-{R1}"
    assert layout.secret_file(R1, "backend", "X") == f"/srv/state/usersapp/local/secrets/{R1}/backend/X"


def test_container_env_resolves_same_release_addresses_and_mounts_secrets_as_files():
    s = specs()
    assert s["frontend"].env == {
        "BACKEND_URL": f"http://usersapp-local-backend-{R1}:8000",
        "BACKEND_HOST": f"usersapp-local-backend-{R1}:8000",
        "DATABASE_NAME": "users_local",  # the environment's env reaches every service
        "DEPLOYCTL_RELEASE": R1, "DEPLOYCTL_REVISION": "abc1234def",
    }
    assert s["backend"].env == {
        "DATABASE_NAME": "users_local",  # the environment wins over the service
        "DATABASE_PASSWORD_FILE": "/run/secrets/DATABASE_PASSWORD",
        "DEPLOYCTL_RELEASE": R1, "DEPLOYCTL_REVISION": "abc1234def",
    }
    assert s["backend"].secret_mounts() == [
        (f"/srv/state/usersapp/local/secrets/{R1}/backend/DATABASE_PASSWORD", "/run/secrets/DATABASE_PASSWORD")]
    assert s["frontend"].routed and not s["backend"].routed


def test_a_service_is_created_on_its_release_network_under_its_name_then_joins_the_app_network():
    backend = specs()["backend"]
    create, connect, start = dc.start_service(backend, f"usersapp-local-{R1}", "usersapp-local")
    assert create == [
        "docker", "create", "--name", f"usersapp-local-backend-{R1}", "--network", f"usersapp-local-{R1}",
        "--network-alias", "backend", "--restart", "unless-stopped", "--log-opt", "max-size=10m",
        "--security-opt", "no-new-privileges",  # by default (services.X.no_new_privileges)
        "--label", "io.deployctl.app=usersapp", "--label", "io.deployctl.env=local",
        "--label", f"io.deployctl.release={R1}", "--label", "io.deployctl.role=service",
        "--label", "io.deployctl.service=backend",
        "-e", "DATABASE_NAME=users_local", "-e", "DATABASE_PASSWORD_FILE=/run/secrets/DATABASE_PASSWORD",
        "-e", f"DEPLOYCTL_RELEASE={R1}", "-e", "DEPLOYCTL_REVISION=abc1234def",
        "-v", f"/srv/state/usersapp/local/secrets/{R1}/backend/DATABASE_PASSWORD:/run/secrets/DATABASE_PASSWORD:ro",
        "sha256:b",
    ]
    assert connect == ["docker", "network", "connect", "usersapp-local", f"usersapp-local-backend-{R1}"]
    assert start == ["docker", "start", f"usersapp-local-backend-{R1}"]


SECRET_CONFIG = parse_config("""
app = "shop"
[services.api]
context = "api"
port = 5001
[services.api.healthcheck]
type = "tcp"
[services.api.env]
DATABASE_URI = "mysql+pymysql://root:{{ secret.DB_PASSWORD }}@db:3306/users"
PLAIN = "x"
[services.web]
context = "web"
port = 5000
routed = true
[environments.local]
target = "local"
state_dir = "/srv/state"
""")


class Unconnected:  # a dry run builds the same jobs and never connects
    host = "127.0.0.1"


def host_deploy(config, env: str = "local", **options):  # type: ignore[no-untyped-def]
    """The HostDeploy a deploy of `config` would run (services/lifecycle/deploy.py), unconnected."""
    from pathlib import Path

    from deployctl.config import LoadedConfig
    from deployctl.services.env import Env
    from deployctl.services.lifecycle.deploy import DeployOptions, HostDeploy
    from deployctl.services.lifecycle.release_images import ReleaseImages

    images = ReleaseImages({service: f"sha256:{service}" for service in config.services}, "abc1234def")
    return HostDeploy(Env.resolve(LoadedConfig(Path("/p/deploy.toml"), config), env), Unconnected(), lambda e: None,
                      R1, images, {}, DeployOptions(**options))


def switch_rows(job) -> list:  # type: ignore[no-untyped-def]
    """What `--dry-run` prints of a host job's switch: the rows of the Steps its run walks."""
    return [row for step in job.switch_steps() for row in step.rows]


def rollback_switch_rows(plan) -> list:  # type: ignore[no-untyped-def]
    """The rows of the switch steps a HostRollback on `plan` walks (services/lifecycle/switch.py)."""
    from deployctl.services.lifecycle.switch import HostSwitch

    switch = HostSwitch(Unconnected(), Names("usersapp", "local"), StateLayout("/srv/state", "usersapp", "local"),
                        lambda e: None)
    return [row for step in [*switch.bringing_up(plan), switch.switching(plan)] for row in step.rows]


def test_a_variable_that_uses_a_secret_goes_to_an_env_file_never_onto_the_argv():
    env = SECRET_CONFIG.environments["local"]
    [api, web] = release_containers(SECRET_CONFIG, env, "local", R1, "abc", {"api": "sha256:a", "web": "sha256:w"})
    assert api.secret_env == {"DATABASE_URI": "mysql+pymysql://root:{{ secret.DB_PASSWORD }}@db:3306/users"}
    assert api.env_file == f"/srv/state/shop/local/secrets/{R1}/api.env"
    create = dc.create_service(api, f"shop-local-{R1}")
    assert create[create.index("--env-file") + 1] == api.env_file
    assert "-e" in create and "PLAIN=x" in create
    assert not any("DATABASE_URI" in arg for arg in create)
    assert web.env_file == "" and "--env-file" not in dc.create_service(web, f"shop-local-{R1}")


def test_small_docker_commands():
    names = Names("usersapp", "local")
    assert dc.pull("r/b@sha256:1") == ["docker", "pull", "--quiet", "r/b@sha256:1"]
    assert dc.login("reg:5000", "ci") == ["docker", "login", "--username", "ci", "--password-stdin", "reg:5000"]
    assert dc.stop(["a", "b"]) == ["docker", "stop", "--time", "10", "a", "b"]
    assert dc.nginx_test_and_reload("p-nginx", "/etc/deployctl/proxy/nginx.conf") == [
        "docker", "exec", "p-nginx", "sh", "-c",
        "nginx -t -q -c /etc/deployctl/proxy/nginx.conf && nginx -s reload -c /etc/deployctl/proxy/nginx.conf"]
    # A switch's swap: the live file changes only in this one command on the host, after
    # nginx -t passed the staged one; a directory with a space stays one word.
    assert dc.nginx_swap_and_reload("p-nginx", "/s/my proxy", "/etc/deployctl/proxy", "nginx.conf", "nginx.conf.next") == [
        "sh", "-c",
        "docker exec p-nginx nginx -t -q -c /etc/deployctl/proxy/nginx.conf.next"
        " && mv -f '/s/my proxy/nginx.conf.next' '/s/my proxy/nginx.conf'"
        " && docker kill --signal HUP p-nginx"]
    assert dc.logs("c", 50, follow=True) == ["docker", "logs", "--tail", "50", "--follow", "c"]
    assert dc.run_proxy_anchor(names, "nginx:1.27-alpine", 8080, 80, {"k": "v"}, "/s/proxy", "/etc/deployctl/proxy",
                               "/etc/deployctl/proxy/nginx.conf", "/etc/deployctl/proxy/m") == [
        "docker", "run", "--detach", "--name", "usersapp-local-proxy", "--network", "usersapp-local",
        "--restart", "unless-stopped", "--publish", "8080:80", "--sysctl", "net.ipv4.tcp_migrate_req=1",
        "--stop-signal", "TERM", "--label", "k=v", "-v", "/s/proxy:/etc/deployctl/proxy",
        "--entrypoint", "sh", "nginx:1.27-alpine",
        "-c", dc.ANCHOR_SCRIPT, "deployctl-anchor", "80", "/etc/deployctl/proxy/nginx.conf", "/etc/deployctl/proxy/m"]
    assert dc.run_proxy_anchor(names, "img", 0, 80, {}, "/p", "/m", "/m/c", "/m/k")[9:11] == ["--publish", "80"]
    # HTTPS: on every address, or (behind a shared proxy, docs/proxy.md) on the host's loopback only.
    assert dc.run_proxy_anchor(names, "img", 8080, 80, {}, "/p", "/m", "/m/c", "/m/k", tls=(8443, 443))[9:13] == [
        "--publish", "8080:80", "--publish", "8443:443"]
    assert dc.run_proxy_anchor(names, "img", 8080, 80, {}, "/p", "/m", "/m/c", "/m/k", tls=(8443, 443),
                               tls_address="127.0.0.1")[9:14] == [
        "--publish", "8080:80", "--publish", "127.0.0.1:8443:443", "--sysctl"]
    # Behind a shared proxy HTTP too (plan/edge/client_address.py); Docker's free port on it: `ip::port`.
    assert dc.run_proxy_anchor(names, "img", 8080, 80, {}, "/p", "/m", "/m/c", "/m/k", tls=(8443, 443),
                               tls_address="127.0.0.1", address="127.0.0.1")[9:13] == [
        "--publish", "127.0.0.1:8080:80", "--publish", "127.0.0.1:8443:443"]
    assert dc.run_proxy_anchor(names, "img", 0, 80, {}, "/p", "/m", "/m/c", "/m/k",
                               address="127.0.0.1")[9:11] == ["--publish", "127.0.0.1::80"]
    assert dc.network_gateways("n") == ["docker", "network", "inspect", "--format",
                                        "{{range .IPAM.Config}}{{.Gateway}}|{{.Subnet}} {{end}}", "n"]
    assert dc.quit_anchor_nginx("p") == ["docker", "exec", "p", "sh", "-c",
                                         "kill -QUIT $(cat /tmp/deployctl-nginx.pid) 2>/dev/null; true"]
    assert dc.run_proxy_nginx(names, "usersapp-local-proxy-nginx-1", "img", "/s/proxy", "/etc/deployctl/proxy",
                              "/etc/deployctl/proxy/nginx.conf", {"k": "v"}) == [
        "docker", "run", "--detach", "--name", "usersapp-local-proxy-nginx-1",
        "--network", "container:usersapp-local-proxy", "--restart", "unless-stopped", "--log-opt", "max-size=10m",
        "--label", "k=v", "-v", "/s/proxy:/etc/deployctl/proxy:ro", "--entrypoint", "nginx", "img",
        "-c", "/etc/deployctl/proxy/nginx.conf", "-g", "daemon off;"]


def test_proxy_config_routes_to_the_live_release_and_stamps_what_its_upstream_served():
    text = render_proxy_config(ProxySpec("nginx", False, listen_port=8080, health_path="/up", max_body_size="64k"),
                               R1, {R1: f"web-{R1}:5000"})
    upstream = "release_" + R1.replace("-", "_")
    assert f"upstream {upstream} {{\n        server web-{R1}:5000;" in text
    assert f"proxy_pass http://{upstream};" in text
    assert f"{upstream} {R1};" in text  # map $proxy_host -> release: set only when that upstream served
    assert "add_header X-Deployctl-Release $deployctl_release always;" in text
    assert "listen 8080 reuseport;" in text and "location = /up {" in text and "client_max_body_size 64k;" in text
    assert "include /etc/deployctl/proxy.d/server/*.conf;" in text
    assert "proxy_connect_timeout 5000ms;" in text  # whole units: nginx refuses "2.5s"
    halves = render_proxy_config(ProxySpec("nginx", False, connect_timeout=2.5), R1, {R1: "w:1"})
    assert "proxy_connect_timeout 2500ms;" in halves
    assert live_release(text) == live_release(text.encode()) == R1
    empty = render_proxy_config(ProxySpec("nginx", False), None, {})
    assert live_release(empty) is None and "return 503" in empty


def _spec(config=CONFIG):
    return release_spec(config, "local", R1, "abc1234def", {"backend": "sha256:b", "frontend": "sha256:f",
                                                            "api": "sha256:a", "web": "sha256:w"},
                        "nginx:1.27-alpine", dirty=True)


def test_a_release_spec_round_trips_through_its_record():
    spec = _spec()
    assert ReleaseSpec.from_dict(spec.to_dict()) == spec
    assert spec.dirty and spec.routed.service == "frontend" and spec.network == f"usersapp-local-{R1}"
    assert [p.kind for p in spec.probes()] == ["http", "http"]


def test_verify_needs_no_app_endpoint():
    """tcp-checked routed service: '/' through the proxy, any answer the app made; http: its
    health path must answer 200; verify_path: the body must name the release too."""
    names = Names("shop", "local")
    spec = _spec(SECRET_CONFIG)
    plan = deploy_plan(spec, release_containers(SECRET_CONFIG, SECRET_CONFIG.environments["local"], "local", R1,
                                                "abc", {"api": "sha256:a", "web": "sha256:w"}),
                       names, "/s/proxy", proxy_port=8080, drain=3)
    assert (plan.verify.path, plan.verify.want_ok, plan.verify.body_names_release) == ("/healthz", True, False)
    assert [p.kind for p in plan.probes] == ["tcp", "http"]
    with_verify = parse_config(CONFIG_TEXT.replace("routed = true", "routed = true\nverify_path = \"/version\""))
    plan = rollback_plan(_spec(with_verify), Names("usersapp", "local"), "/s/proxy", proxy_port=8080, drain=3)
    assert (plan.verify.path, plan.verify.body_names_release) == ("/version", True)
    assert plan.start == tuple(((("docker", "start", c),)) for c in _spec(with_verify).containers)
    assert plan.undo == (("docker", "stop", "--time", "10", *_spec(with_verify).containers),)


def test_a_rollback_to_running_containers_starts_and_stops_none():
    spec = _spec(parse_config(CONFIG_TEXT))
    first, *rest = spec.containers
    warm = rollback_plan(spec, Names("usersapp", "local"), "/s/proxy", proxy_port=8080, drain=3,
                         running=set(spec.containers))
    assert warm.start == () and warm.undo == ()
    assert [s.step for s in rollback_switch_rows(warm)].count("start") == 0
    assert len(warm.probes) == len(spec.probes())  # still checked healthy before the route
    half = rollback_plan(spec, Names("usersapp", "local"), "/s/proxy", proxy_port=8080, drain=3, running={first})
    assert half.start == tuple(((("docker", "start", c),)) for c in rest)
    assert half.undo == (("docker", "stop", "--time", "10", *rest),)


R0 = "20261126-235959-0000000"


def test_a_standby_is_routed_to_while_its_flag_exists_and_named_by_ip():
    flag = standby_flag(R1, R0, "1764201600000")
    assert flag == f"standby-{R0}-from-{R1}-1764201600000"
    standby = Standby(R0, "172.18.0.7:5000", flag)
    text = render_proxy_config(ProxySpec("nginx", False), R1, {R1: f"web-{R1}:5000"}, standby=standby)
    live, warm = ("release_" + r.replace("-", "_") for r in (R1, R0))
    assert (f"            set $deployctl_upstream {live};\n"
            f"            if (-f /etc/deployctl/proxy/{flag}) {{\n"
            f"                set $deployctl_upstream {warm};\n"
            "            }\n"
            "            proxy_pass http://$deployctl_upstream;\n") in text
    # An address, not a name: nginx resolves names at load, and a stopped standby's would fail it.
    assert f"upstream {warm} {{\n        server 172.18.0.7:5000;" in text
    assert f"{warm} {R0};" in text and f"{live} {R1};" in text  # both stamp what they served
    assert live_release(text) == R1 and standby_of(text) == standby and standby_of(text.encode()) == standby
    # No standby beside a canary (the split is the way back), nor for the live release itself.
    split = render_proxy_config(ProxySpec("nginx", False), R1, {R1: "a:1", R0: "b:1"}, canary=(R0, 10),
                                standby=standby)
    assert standby_of(split) is None and flag not in split
    same = render_proxy_config(ProxySpec("nginx", False), R0, {R0: "a:1"}, standby=standby)
    assert standby_of(same) is None and f"proxy_pass http://{warm};" in same
    assert standby_of(render_proxy_config(ProxySpec("nginx", False), R1, {R1: "a:1"})) is None
    with pytest.raises(ValueError):
        Standby(R0, "1.2.3.4:5", "../nginx.conf")


def test_a_rollback_to_the_standby_is_its_flag_and_the_reload_after_the_verify():
    spec = _spec(parse_config(CONFIG_TEXT))
    names = Names("usersapp", "local")
    left = Standby(R0, "172.18.0.9:8001", standby_flag(R1, R0, "1"))
    flagged = rollback_plan(spec, names, "/s/proxy", proxy_port=8080, drain=3, running=set(spec.containers),
                            flag="standby-x", standby=left)
    assert flagged.flag == "standby-x" and flagged.standby == R0 and standby_of(flagged.proxy_config) == left
    rows = rollback_switch_rows(flagged)
    steps = [(s.step, s.detail) for s in rows]
    switch = steps.index(("switch", "create /etc/deployctl/proxy/standby-x (the proxy directory): the live nginx.conf "
                                    f"sends every request to its standby {R1} while it exists; no reload"))
    # The target's own configuration tested beside the verify, only renamed and reloaded after it.
    nginx = flagged.proxy.nginx_name
    assert steps[switch + 1][1].startswith("beside the flag and the verify: the target's own nginx.conf staged")
    assert rows[switch + 1].argv == ("docker", "exec", nginx, "nginx", "-t", "-q", "-c",
                                     "/etc/deployctl/proxy/nginx.conf.next")
    assert steps[switch + 2][0] == "verify" and steps[switch + 3][1].startswith("once verified, beside the record and retire")
    assert rows[switch + 3].argv == ("sh", "-c", "mv -f /s/proxy/nginx.conf.next /s/proxy/nginx.conf && "
                                                 f"docker kill --signal HUP {nginx}")
    assert [s for s, _ in steps].count("verify") == 1
    assert not flagged.verify.spaced and steps[switch + 2][1].endswith("in a row, back to back (up to 15s)")
    # A target with a stopped container is started first: no flag can switch to it.
    first = spec.containers[0]
    cold = rollback_plan(spec, names, "/s/proxy", proxy_port=8080, drain=3, running=set(spec.containers) - {first},
                         flag="standby-x")
    assert cold.flag is None and not any(s.step == "switch" for s in rollback_switch_rows(cold))
    assert cold.verify.spaced  # a reload: the streak's answers 50 ms apart


def test_addresses_are_read_on_the_proxys_network():
    assert dc.addresses_on(["a", "b"], "shop-prod") == [
        "docker", "container", "inspect", "--format",
        '{{.Name}}|{{with index .NetworkSettings.Networks "shop-prod"}}{{.IPAddress}}{{end}}', "a", "b"]


def record(release, outcome=LIVE, action="deploy"):
    return ReleaseRecord(release=release, revision="r", images={"backend": "b"}, action=action, outcome=outcome,
                         who="me", when="2026-11-27T10:15:00Z")


def test_history_round_trips_and_skips_a_torn_line():
    rollback = ReleaseRecord(release="20260101-000000-a", revision=None, images={}, action="rollback",
                             outcome=LIVE, who="me", when="2026-11-27T10:16:00Z")
    text = (record("20260101-000000-a").to_line() + record("20260102-000000-b", FAILED).to_line()
            + rollback.to_line() + '{"relea')
    history = History.parse(text)
    assert [r.release for r in history.records] == ["20260101-000000-a", "20260102-000000-b", "20260101-000000-a"]
    assert history.records[2] == rollback
    assert history.good() == ["20260101-000000-a"]


def test_previous_good_is_the_newest_good_release_older_than_the_live_one():
    a, b, c, d = (f"2026010{i}-000000-x" for i in range(1, 5))
    history = History((record(a), record(b), record(c, FAILED), record(d), record(b, action="rollback")))
    assert history.previous_good(d) == b  # c failed: skipped
    assert history.previous_good(b) == a  # rolling back twice walks further back
    assert history.previous_good(a) is None
    assert history.previous_good(None) == d


def test_a_release_rolled_away_from_is_no_rollback_target_until_rolled_to_by_hand():
    a, b, c = (f"2026010{i}-000000-x" for i in range(1, 4))
    away = ReleaseRecord(release=a, revision=None, images={}, action="rollback", outcome=LIVE, who="me",
                         when="2026-11-27T10:16:00Z", previous=b)
    # a, b deployed; b rolled back to a; c deployed: a plain rollback from c goes to a, not b.
    history = History((record(a), record(b), away, record(c)))
    assert history.good() == [a, c]
    assert history.previous_good(c) == a
    back_to_b = ReleaseRecord(release=b, revision=None, images={}, action="rollback", outcome=LIVE, who="me",
                              when="2026-11-27T10:20:00Z", previous=c)
    assert History((record(a), record(b), away, record(c), back_to_b)).good() == [a, b]


def test_a_stopped_rollouts_put_back_judges_no_release():
    """A fleet rollback from b to a stopped on another host: this host went to a, then a
    put-back to b (extra.reverts = a). Nobody rolled away from a: the next plain rollback
    from b still goes to a here, as on the hosts never touched (tests/faults, fleet)."""
    from deployctl.plan.stats import compute

    a, b = "20260101-000000-x", "20260102-000000-x"

    def rollback(release: str, previous: str, outcome: str = LIVE, **extra) -> ReleaseRecord:  # type: ignore[no-untyped-def]
        return ReleaseRecord(release=release, revision=None, images={}, action="rollback", outcome=outcome,
                             who="me", when="2026-11-27T10:16:00Z", previous=previous, extra=extra)

    stopped = History((record(a), record(b), rollback(a, b), rollback(b, a, reverts=a), rollback(a, b, REVERTED)))
    assert stopped.records[3].reverts == a and stopped.records[2].reverts is None
    assert stopped.good() == [a, b] and stopped.previous_good(b) == a
    # Without the mark it reads as someone rolling away from a: no rollback target left.
    unmarked = History((record(a), record(b), rollback(a, b), rollback(b, a)))
    assert unmarked.previous_good(b) is None
    # stats: one rollback (the stopped one's own switch), b not counted as rolled away from twice, a never.
    numbers = compute(list(stopped.records), now=2e9, window=2e9)
    assert numbers.rollbacks == 1 and numbers.rolled_back_from == 1


def test_prune_keeps_the_newest_and_never_the_live_or_previous_good():
    ids = [f"2026010{i}-000000-x" for i in range(1, 8)]
    assert prune_selection(ids, keep=3, live=ids[-1], previous_good=ids[-2]) == ids[:4]
    # Live rolled back to an old release: it and its rollback target survive any keep.
    assert prune_selection(ids, keep=2, live=ids[1], previous_good=ids[0]) == ids[2:5]


def test_lock_record_round_trip_and_description():
    lock = LockRecord(who="ci@jenkins", when="2026-11-27T10:15:00Z", action="deploy", release=R1, message="hotfix")
    assert LockRecord.parse(lock.to_json()) == lock
    assert lock.describe() == f"ci@jenkins since 2026-11-27T10:15:00Z: deploy of {R1} (hotfix)"
    assert LockRecord.parse(b"not json") is None


def test_dry_run_prints_the_plan_the_switch_runs_and_never_a_secret_value():
    layout = StateLayout("/srv/state", "shop", "local")
    env = SECRET_CONFIG.environments["local"]
    containers = release_containers(SECRET_CONFIG, env, "local", R1, "abc", {"api": "sha256:a", "web": "sha256:w"},
                                    layout)
    # The rows come from the step list HostDeploy.prepare walks (no connection is made).
    from pathlib import Path

    from deployctl.config import LoadedConfig
    from deployctl.services.lifecycle.deploy import DeployOptions, HostDeploy
    from deployctl.services.env import Env
    from deployctl.services.lifecycle.release_images import ReleaseImages

    class Unused:
        host = "127.0.0.1"

    job = HostDeploy(Env.resolve(LoadedConfig(Path("/p/deploy.toml"), SECRET_CONFIG), "local"), Unused(), lambda e: None, R1,
                     ReleaseImages({"api": "sha256:a", "web": "sha256:w"}, "abc1234def", dirty=True), {},
                     DeployOptions())
    plan = job.plan
    assert [c.env_file for c in job.containers] == [c.env_file for c in containers]
    preparation = [row for step in job.preparation() for row in step.rows]
    from deployctl.services.lifecycle.dry_runs import host_deploy_steps

    steps = host_deploy_steps(job)
    # Every preparation step the run takes is printed, the two a hand-written dry run had
    # missed included (a canary left by a killed deployctl; warm releases past their window).
    assert [s.step for s in steps[:len(preparation) + 3]] == ["preflight", "preflight", "lock", "state", "recover",
                                                              "warm", "standby", "network", "network",
                                                              "secrets", "tls"]  # tls: HTTPS off, none left
    argvs = [list(s.argv) for s in steps if s.argv]
    for chain in plan.start:  # the very argv the switch runs
        for argv in chain:
            assert list(argv) in argvs
    assert list(plan.proxy.anchor) in argvs and list(plan.proxy.nginx) in argvs and list(plan.proxy.swap) in argvs
    assert plan.proxy.swap == tuple(dc.nginx_swap_and_reload(plan.proxy.nginx_name, layout.proxy_dir,
                                                             "/etc/deployctl/proxy", "nginx.conf", "nginx.conf.next"))
    switch = switch_rows(job)  # the switch's rows, just before the unlock
    assert steps[-len(switch) - 1:-1] == switch and switch[-1].step == "prune"
    order = [s.step for s in steps]
    assert order.index("secrets") < order.index("start") < order.index("health") < order.index("route")
    assert order.index("route") < order.index("verify") < order.index("drain")
    assert order[0] == "preflight" and order[-1] == "unlock"
    text = "\n".join(f"{s.detail} {s.argv}" for s in steps)
    assert "DATABASE_URI" in text and "{{ secret" not in text.replace("DATABASE_URI (values", "")


def test_lock_records_pid_and_machine_and_a_dead_holder_on_this_machine_is_stale():
    from deployctl.plan.lifecycle.lock import stale_reason

    lock = LockRecord(who="ci@build1", when="2026-12-02T01:00:00Z", action="deploy", release=R1, pid=4242,
                      host="build1")
    assert LockRecord.parse(lock.to_json()) == lock
    assert stale_reason(lock, "build1", alive=lambda pid: pid != 4242) == "its process 4242 on build1 is gone"
    assert stale_reason(lock, "build1", alive=lambda pid: True) is None
    # Another machine's process cannot be checked from here: never called stale.
    assert stale_reason(lock, "laptop", alive=lambda pid: False) is None
    assert stale_reason(LockRecord(who="x", when="t", action="deploy"), "build1", alive=lambda pid: False) is None
    assert lock.describe("its process 4242 on build1 is gone") == (
        f"ci@build1 from build1 pid 4242 since 2026-12-02T01:00:00Z: deploy of {R1} "
        "[STALE: its process 4242 on build1 is gone]")


def test_release_ids_stay_in_deploy_order_when_the_clock_is_behind():
    newest = "20261202-010000-aaaaaaa"
    behind = new_release_id(T, "bbbbbbb", {R1, newest})  # T is days before `newest`
    assert behind == "20261202-010001-bbbbbbb"
    history = History((ReleaseRecord(release=newest, revision="a", images={}, action="deploy", outcome=LIVE,
                                     who="w", when="t"),
                       ReleaseRecord(release=behind, revision="b", images={}, action="deploy", outcome=LIVE,
                                     who="w", when="t")))
    assert history.previous_good(behind) == newest  # a rollback goes to the release it replaced
    assert new_release_id(T, "bbbbbbb", {behind, newest}) == "20261202-010002-bbbbbbb"
