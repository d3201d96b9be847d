"""The pure deploy plan: names, ids, argv lists, upstream text, history choices — compared as data."""

from __future__ import annotations

import calendar
import time

from deployctl.config.load import parse_config
from deployctl.plan import docker_commands as dc
from deployctl.plan.containers import release_containers
from deployctl.plan.dry_run import deploy_steps
from deployctl.plan.lock import LockRecord
from deployctl.plan.names import Names, StateLayout
from deployctl.plan.releases import (FAILED, LIVE, History, ReleaseRecord, new_release_id, prune_selection,
                                     sort_key)
from deployctl.plan.upstream import render_upstream, upstream_release

CONFIG = parse_config("""
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
""")
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
    assert layout.upstream_file == "/srv/state/usersapp/local/proxy/frontend.conf"
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


def test_docker_run_argv_for_a_service():
    assert dc.run_service(specs()["backend"], "usersapp-local") == [
        "docker", "run", "--detach", "--name", f"usersapp-local-backend-{R1}", "--network", "usersapp-local",
        "--restart", "unless-stopped", "--log-opt", "max-size=10m",
        "--label", "io.deployctl.app=usersapp", "--label", "io.deployctl.env=local",
        "--label", f"io.deployctl.release={R1}", "--label", "io.deployctl.role=service",
        "--label", "io.deployctl.service=backend",
        "-e", "DATABASE_NAME=users_local", "-e", "DATABASE_PASSWORD_FILE=/run/secrets/DATABASE_PASSWORD",
        "-e", f"DEPLOYCTL_RELEASE={R1}", "-e", "DEPLOYCTL_REVISION=abc1234def",
        "-v", f"/srv/state/usersapp/local/secrets/{R1}/backend/DATABASE_PASSWORD:/run/secrets/DATABASE_PASSWORD:ro",
        "sha256:b",
    ]


def test_small_docker_commands():
    names = Names("usersapp", "local")
    assert dc.pull("r/b@sha256:1") == ["docker", "pull", "--quiet", "r/b@sha256:1"]
    assert dc.login("reg:5000", "ci") == ["docker", "login", "--username", "ci", "--password-stdin", "reg:5000"]
    assert dc.stop(["a", "b"]) == ["docker", "stop", "--time", "10", "a", "b"]
    assert dc.nginx_test_and_reload(names) == [
        "docker", "exec", "usersapp-local-proxy", "sh", "-c", "nginx -t -q && nginx -s reload"]
    assert dc.logs("c", 50, follow=True) == ["docker", "logs", "--tail", "50", "--follow", "c"]
    assert dc.run_proxy(names, "sha256:p", 8080, "/s/proxy", "/etc/nginx/upstream", {"k": "v"}) == [
        "docker", "run", "--detach", "--name", "usersapp-local-proxy", "--network", "usersapp-local",
        "--restart", "unless-stopped", "--log-opt", "max-size=10m", "--publish", "8080:80",
        "--label", "k=v", "-v", "/s/proxy:/etc/nginx/upstream:ro", "sha256:p"]


def test_upstream_file_names_one_container_and_says_which_release():
    text = render_upstream(R1, f"usersapp-local-frontend-{R1}", 8001)
    assert f"upstream frontend {{\n    server usersapp-local-frontend-{R1}:8001;\n}}\n" in text
    assert upstream_release(text) == upstream_release(text.encode()) == R1
    assert upstream_release("upstream frontend { server 127.0.0.1:8081; }") is None


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


def test_dry_run_lists_the_same_argv_and_never_a_secret_value():
    images = {"backend": "sha256:b", "frontend": "sha256:f", "proxy": "sha256:p"}
    steps = deploy_steps(CONFIG, ENV, "local", StateLayout("/srv/state", "usersapp", "local"), R1, "abc1234def",
                         images, migrate=True, proxy_port=8080)
    argvs = [list(s.argv) for s in steps if s.argv]
    assert dc.run_service(specs()["backend"], "usersapp-local") in argvs
    assert dc.run_migration(specs()["backend"], "usersapp-local", f"usersapp-local-migrate-{R1}",
                            ["python", "-m", "backend.migrate"],
                            Names("usersapp", "local").labels("migrate", R1, "backend")) in argvs
    order = [s.step for s in steps]
    assert order.index("migrate") < order.index("start") < order.index("health") < order.index("switch")
    assert order[0] == "preflight" and order[-1] == "unlock"
