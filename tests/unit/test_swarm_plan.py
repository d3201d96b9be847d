"""The pure Swarm plan (issue 12): config checks, Swarm service argv lists, the proxy's
DNS-following configuration, the switch steps, and parsing what the manager answers."""

from __future__ import annotations

import pytest

from deployctl.config.load import parse_config
from deployctl.plan.swarm import services as sw
from deployctl.plan.lifecycle.names import Names, StateLayout
from deployctl.plan.lifecycle.release_spec import release_spec
from deployctl.plan.swarm.swarm_plan import deploy_plan, rollback_plan
from deployctl.plan.swarm.swarm_proxy import render_swarm_proxy_config

CONFIG_TEXT = """
app = "shop"
[registry]
server = "registry.example:5000"
[services.backend]
context = "backend"
migrate = ["python", "-m", "migrate"]
secrets = ["DB_PASSWORD"]
[services.backend.healthcheck]
type = "command"
command = ["pg_isready", "-q"]
timeout = 20
[services.backend.env]
API_TOKEN = "{{ secret.API_TOKEN }}"
[services.frontend]
context = "frontend"
routed = true
replicas = 3
verify_path = "/version"
[services.frontend.healthcheck]
type = "docker"
[services.frontend.env]
BACKEND_URL = "{{ backend.url }}"
[environments.prod]
target = "swarm"
manager = "10.0.0.1"
proxy_port = 8080
"""
R1 = "20261127-101500-abc1234"
IMAGES = {"backend": "registry.example:5000/shop/backend@sha256:b", "frontend": "registry.example:5000/shop/frontend@sha256:f"}
PROXY_IMAGE = "nginx@sha256:p"


def setup():  # type: ignore[no-untyped-def]
    config = parse_config(CONFIG_TEXT)
    environment = config.environments["prod"]
    layout = StateLayout(environment.state_dir, "shop", "prod")
    spec = release_spec(config, "prod", R1, "abc1234def", IMAGES, PROXY_IMAGE)
    services = {s.service: s for s in sw.release_services(config, environment, "prod", spec, layout)}
    return config, environment, layout, spec, services


def test_a_swarm_environment_needs_a_manager():
    base = CONFIG_TEXT.replace('manager = "10.0.0.1"\n', "")
    with pytest.raises(Exception, match=r"environments\.prod: .*needs manager"):
        parse_config(base)
    with pytest.raises(Exception, match=r"manager is only used with target = \"swarm\""):
        parse_config(CONFIG_TEXT.replace('target = "swarm"', 'target = "ssh"\nhosts = ["h"]'))
    with pytest.raises(Exception, match=r"a swarm environment finds its nodes through the manager; remove hosts"):
        parse_config(CONFIG_TEXT.replace('manager = "10.0.0.1"', 'manager = "10.0.0.1"\nhosts = ["h"]'))
    with pytest.raises(Exception, match=r"services\.frontend\.replicas"):
        parse_config(CONFIG_TEXT.replace("replicas = 3", "replicas = 0"))
    config = parse_config(CONFIG_TEXT)
    assert config.services["backend"].replicas == 2  # the default
    assert config.environments["prod"].manager == "10.0.0.1"


def test_release_services_are_release_scoped_with_secrets_as_docker_secrets():
    _, _, layout, _, services = setup()
    backend, frontend = services["backend"], services["frontend"]
    assert backend.name == f"shop-prod-backend-{R1}" and backend.replicas == 2
    assert frontend.replicas == 3
    assert frontend.env["BACKEND_URL"] == f"http://shop-prod-backend-{R1}:8000"  # its own release's service
    assert backend.secrets == ((f"shop-prod-{R1}-backend-DB_PASSWORD", "DB_PASSWORD"),)
    assert backend.env["DB_PASSWORD_FILE"] == "/run/secrets/DB_PASSWORD"
    assert "API_TOKEN" not in backend.env and backend.secret_env == {"API_TOKEN": "{{ secret.API_TOKEN }}"}
    assert backend.env_file == layout.env_file(R1, "backend")


def test_create_service_argv_is_exact_and_holds_no_secret_value():
    _, _, layout, _, services = setup()
    labels = ["--label", "io.deployctl.app=shop", "--label", "io.deployctl.env=prod",
              "--label", f"io.deployctl.release={R1}", "--label", "io.deployctl.role=service",
              "--label", "io.deployctl.service=backend"]
    container_labels = [a.replace("--label", "--container-label") for a in labels]
    assert sw.create_service(services["backend"], "shop-prod") == [
        "docker", "service", "create", "--detach", "--name", f"shop-prod-backend-{R1}", "--replicas", "2",
        "--endpoint-mode", "dnsrr", "--network", "shop-prod", *labels, *container_labels,
        "--env", "DB_PASSWORD_FILE=/run/secrets/DB_PASSWORD", "--env", f"DEPLOYCTL_RELEASE={R1}",
        "--env", "DEPLOYCTL_REVISION=abc1234def", "--env-file", layout.env_file(R1, "backend"),
        "--secret", f"source=shop-prod-{R1}-backend-DB_PASSWORD,target=DB_PASSWORD",
        "--log-opt", "max-size=10m", "--no-resolve-image",
        "--restart-condition", "any", "--restart-delay", "1s", "--stop-grace-period", "10s",
        "--update-order", "start-first",
        "--health-cmd", "pg_isready -q", "--health-interval", "1000ms", "--health-timeout", "2000ms",
        "--health-retries", "3", "--health-start-period", "20000ms",
        IMAGES["backend"],
    ]
    frontend = sw.create_service(services["frontend"], "shop-prod")
    assert "--health-cmd" not in frontend  # type docker: the image's own HEALTHCHECK
    assert frontend[frontend.index("--replicas") + 1] == "3"


def test_secret_names_stay_within_dockers_limit():
    names = Names("a" * 30, "b" * 30)
    long = sw.secret_name(names, R1, "backend", "DATABASE_PASSWORD")
    assert len(long) <= 64 and long.endswith("-DATABASE_PASSWORD")
    assert long != sw.secret_name(names, R1 + "-2", "backend", "DATABASE_PASSWORD")
    assert sw.create_secret("s1", {"io.deployctl.app": "shop"}) == [
        "docker", "secret", "create", "--label", "io.deployctl.app=shop", "s1", "-"]


def test_proxy_is_a_global_service_on_host_mode_ports_reading_the_nodes_config():
    names = Names("shop", "prod")
    assert sw.proxy_service(names, PROXY_IMAGE, "/var/lib/deployctl/shop/prod/proxy", 8080, 80,
                            {"io.deployctl.role": "proxy"}) == [
        "docker", "service", "create", "--detach", "--name", "shop-prod-proxy", "--mode", "global",
        "--endpoint-mode", "dnsrr", "--network", "shop-prod",
        "--publish", "mode=host,target=80,published=8080,protocol=tcp",
        "--mount", "type=bind,source=/var/lib/deployctl/shop/prod/proxy,target=/etc/deployctl/proxy,readonly",
        "--label", "io.deployctl.role=proxy", "--container-label", "io.deployctl.role=proxy",
        "--restart-condition", "any", "--restart-delay", "1s", "--log-opt", "max-size=10m", "--no-resolve-image",
        "--stop-signal", "QUIT",
        "--entrypoint", "nginx", PROXY_IMAGE, "-c", "/etc/deployctl/proxy/nginx.conf", "-g", "daemon off;",
    ]
    # A new proxy image reaches an existing proxy service (issue 22: it never did): one node
    # at a time, each nginx stopped gracefully before its replacement takes the host port.
    assert sw.update_proxy_image(names, "reg/nginx:2") == [
        "docker", "service", "update", "--detach=false", "--quiet", "--image", "reg/nginx:2", "--no-resolve-image",
        "--stop-signal", "QUIT", "--update-parallelism", "1", "--update-order", "stop-first", "--update-delay", "2s",
        "--update-failure-action", "rollback", "shop-prod-proxy"]
    assert sw.proxy_image(names) == [
        "docker", "service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", "shop-prod-proxy"]
    assert sw.create_network("shop-prod", {"io.deployctl.app": "shop"}) == [
        "docker", "network", "create", "--driver", "overlay", "--attachable", "--label", "io.deployctl.app=shop",
        "shop-prod"]
    assert sw.scale({"b": 0, "a": 3}) == ["docker", "service", "scale", "--detach", "a=3", "b=0"]
    assert sw.proxy_container(names) == ["docker", "ps", "-q", "--filter",
                                         "label=com.docker.swarm.service.name=shop-prod-proxy",
                                         "--filter", "status=running"]


def test_proxy_config_resolves_the_live_release_tasks_by_dns_and_stamps_the_release():
    _, _, _, spec, _ = setup()
    text = render_swarm_proxy_config(spec.proxy, R1, f"shop-prod-frontend-{R1}", 8000)
    assert "resolver 127.0.0.11 valid=1s ipv6=off;" in text
    assert f"set $deployctl_upstream tasks.shop-prod-frontend-{R1};" in text
    assert "proxy_pass http://$deployctl_upstream:8000;" in text
    assert f"set $deployctl_release {R1};" in text and "add_header X-Deployctl-Release $deployctl_release always;" in text
    assert "proxy_next_upstream error timeout;" in text and "proxy_connect_timeout 1000ms;" in text
    assert f"# live: {R1}" in text
    empty = render_swarm_proxy_config(spec.proxy, None, None, None)
    assert "return 503" in empty and "# live: none" in empty


def test_deploy_plan_steps_are_the_argvs_it_runs():
    config, _, layout, spec, services = setup()
    names = Names("shop", "prod")
    plan = deploy_plan(spec, list(services.values()), names, layout.proxy_dir, proxy_port=8080, drain=2.0,
                       migrations={"backend": ["python", "-m", "migrate"]})
    assert plan.wanted == {f"shop-prod-backend-{R1}": 2, f"shop-prod-frontend-{R1}": 3}
    assert plan.start == tuple(tuple(sw.create_service(s, "shop-prod", release_network=f"shop-prod-{R1}"))
                               for s in services.values())
    # Its own network, where the frontend's `http://backend:...` reaches this release's backend only.
    assert plan.network == ("docker", "network", "create", "--driver", "overlay", "--label", "io.deployctl.app=shop",
                            "--label", "io.deployctl.env=prod", "--label", f"io.deployctl.release={R1}",
                            "--label", "io.deployctl.role=network", f"shop-prod-{R1}")
    backend = plan.start[0]
    assert backend[backend.index("--network"):backend.index("--network") + 4] == (
        "--network", "shop-prod", "--network", f"name=shop-prod-{R1},alias=backend")
    assert plan.undo == (("docker", "service", "rm", f"shop-prod-backend-{R1}", f"shop-prod-frontend-{R1}"),)
    [(job, argv)] = plan.migrations
    assert job == f"shop-prod-migrate-{R1}-backend"
    assert argv[:10] == ("docker", "service", "create", "--detach", "--name", job, "--mode", "replicated-job",
                         "--restart-condition", "none")
    assert argv[-4:] == (IMAGES["backend"], "python", "-m", "migrate")
    # on the environment's network only: nothing of the release runs yet on its own network
    # (and attaching the job there cost it 0.7 s), nor does the job answer as `backend`
    assert argv[argv.index("--network"):argv.index("--network") + 2] == ("--network", "shop-prod")
    assert argv.count("--network") == 1 and not [a for a in argv if a.startswith("name=") or "alias=" in a]
    assert plan.ready_timeout == 60.0  # the longest health timeout (30) + 30 s to pull on each node
    # Each phase's rows, as the job's steps carry them (their order: tests/unit/test_swarm_dry_run_matches_run.py).
    steps = [*plan.secret_rows(Names("shop", "prod")), *plan.network_rows(), *plan.migration_rows(job, argv), *plan.start_rows(),
             *plan.health_rows(), *plan.route_rows(), *plan.verify_rows(), *plan.record_rows(), *plan.retire_rows()]
    assert [s.argv for s in plan.start_rows()] == list(plan.start)
    assert plan.route_rows()[1].argv == plan.proxy_service and plan.network_rows()[0].argv == plan.network
    # A put-back is the staged swap a host's is: nginx -t of nginx.conf.next, its rename over
    # nginx.conf on the node, the reload (a HUP to nginx, the task's PID 1), in one command.
    assert plan.reload == ("sh", "-c", "docker exec '<the node'\"'\"'s proxy task>' nginx -t -q -c "
                           "/etc/deployctl/proxy/nginx.conf.next && mv -f "
                           f"{layout.proxy_dir}/nginx.conf.next {layout.proxy_dir}/nginx.conf && "
                           "docker kill --signal HUP '<the node'\"'\"'s proxy task>'")
    # The route's: the test in each node's DNS wait (one `docker exec`, before any node swaps),
    # then the rename and the HUP alone.
    assert plan.route_rows()[2].argv == tuple(sw.wait_resolved_and_test(
        "<the node's proxy task>", [f"tasks.shop-prod-backend-{R1}", f"tasks.shop-prod-frontend-{R1}"],
        "/etc/deployctl/proxy/nginx.conf.next"))
    assert plan.move == ("sh", "-c", f"mv -f {layout.proxy_dir}/nginx.conf.next {layout.proxy_dir}/nginx.conf && "
                         "docker kill --signal HUP '<the node'\"'\"'s proxy task>'") and plan.route_rows()[3].argv == plan.move
    assert "DB_PASSWORD" in steps[0].detail and "swarm-secret" not in str([s.to_dict() for s in steps])
    assert plan.retire(["old-a", "old-b"]) == ("docker", "service", "scale", "--detach", "old-a=0", "old-b=0")


def test_rollback_plan_scales_the_kept_services_back_up_and_creates_nothing():
    _, _, layout, spec, services = setup()
    plan = rollback_plan(spec, list(services.values()), Names("shop", "prod"), layout.proxy_dir, proxy_port=8080,
                         drain=1.0)
    assert plan.start == (("docker", "service", "scale", "--detach", f"shop-prod-backend-{R1}=2",
                           f"shop-prod-frontend-{R1}=3"),)
    assert plan.undo == (("docker", "service", "scale", "--detach", f"shop-prod-backend-{R1}=0",
                          f"shop-prod-frontend-{R1}=0"),)
    assert plan.migrations == () and plan.secrets == ()


def test_tasks_and_nodes_are_read_from_the_managers_answers():
    text = (f"id1\tshop-prod-frontend-{R1}.1\thost1\tRunning\tRunning 5 seconds ago\t\n"
            f"id2\tshop-prod-frontend-{R1}.2\thost2\tRunning\tStarting 1 second ago\t\n"
            f"id3\t \\_ shop-prod-frontend-{R1}.2\thost3\tShutdown\tFailed 3 seconds ago\ttask: non-zero exit (1)\n")
    tasks = sw.parse_tasks(text)
    assert [t.service for t in tasks] == [f"shop-prod-frontend-{R1}"] * 3
    assert [t.running for t in tasks] == [True, False, False] and tasks[2].failed
    assert tasks[2].error == "task: non-zero exit (1)"
    assert sw.ready(tasks, {f"shop-prod-frontend-{R1}": 2}) == {f"shop-prod-frontend-{R1}": (1, 2)}
    assert sw.ready(tasks, {f"shop-prod-frontend-{R1}": 1}) == {}
    nodes = sw.parse_nodes("host1\t0.0.0.0\tready\tactive\t10.0.0.1:2377\nhost2\t10.0.0.2\tdown\tactive\t\n")
    assert [(n.hostname, n.address, n.serving) for n in nodes] == [("host1", "10.0.0.1", True),
                                                                  ("host2", "10.0.0.2", False)]


def test_a_logged_in_manager_passes_its_registry_credentials_to_the_nodes():
    _, _, _, _, services = setup()
    argv = sw.create_service(services["frontend"], "shop-prod", registry_auth=True)
    assert argv[:6] == ["docker", "service", "create", "--detach", "--with-registry-auth", "--name"]
    assert "--with-registry-auth" not in sw.create_service(services["frontend"], "shop-prod")


def test_scale_counts_are_service_equals_number():
    from deployctl.cli.swarm import parse_counts
    from deployctl.errors import UsageError

    assert parse_counts(["frontend=4", "backend=0"]) == {"frontend": 4, "backend": 0}
    for bad in ("frontend", "frontend=", "=3", "frontend=-1", "frontend=two"):
        with pytest.raises(UsageError, match="is not SERVICE=N"):
            parse_counts([bad])


def test_the_canary_on_a_swarm_splits_per_request_between_the_two_releases_tasks():
    from deployctl.plan.edge.proxy_config import canary_of, live_release
    from deployctl.plan.swarm.swarm_plan import canary_config_for

    _, _, _, live, _ = setup()
    r2 = R1.replace(R1[-7:], "bbbbbbb")
    target = release_spec(parse_config(CONFIG_TEXT), "prod", r2, "bbbbbbbdef", IMAGES, PROXY_IMAGE)
    text = canary_config_for(target, live, 20)
    assert live_release(text) == R1 and canary_of(text) == (r2, 20)
    # drawn per request (as on a host), then that release's tasks by Docker's DNS
    assert f'split_clients "${{request_id}}" $deployctl_split {{\n        20% {r2};\n        * {R1};\n    }}' in text
    assert (f"    map $deployctl_split $deployctl_split_upstream {{\n        {r2} tasks.shop-prod-frontend-{r2}:8000;\n"
            f"        default tasks.shop-prod-frontend-{R1}:8000;\n    }}") in text
    # the answer is stamped and logged with the release drawn (the canary's board reads it)
    location = text[text.index("        location / {"):]
    assert ("set $deployctl_release $deployctl_split;\n            set $deployctl_upstream "
            "$deployctl_split_upstream;\n            proxy_pass http://$deployctl_upstream;") in location
    with pytest.raises(ValueError, match="a canary splits a live route only"):
        render_swarm_proxy_config(live.proxy, None, None, None, canary=(r2, 20, "x", 8000))


def test_the_dry_run_of_a_canary_on_a_swarm_shows_the_split_and_each_nodes_watchdog():
    from deployctl.config.models import Rollout
    from deployctl.plan.judging.canary import canary_spec

    _, _, layout, spec, services = setup()
    canary = canary_spec(Rollout(canary=10, canary_window=30))
    plan = deploy_plan(spec, list(services.values()), Names("shop", "prod"), layout.proxy_dir, proxy_port=8080,
                       drain=2.0, migrations={}, canary=canary)
    # Where the canary runs (after health, before the route) is SwarmDeploy.switching()'s order,
    # which the dry run prints: tests/unit/test_swarm_dry_run_matches_run.py.
    rows = plan.canary_rows()
    assert rows and all(row.step == "canary" for row in rows)
    text = "\n".join(f"{row.detail} {' '.join(row.argv or ())}" for row in rows)
    assert "split_clients" in text and "10% " in text and f"tasks.shop-prod-frontend-{R1}" in text
    assert "--promote" in text and "aborted" in text and "every node" in text
    watchdog = next(row.argv for row in rows if row.argv and "--pid" in row.argv)
    assert watchdog == plan.watchdog and "sleep 40" in watchdog[-1]
    assert watchdog[watchdog.index("--name") + 1] == "shop-prod-canary-watchdog"
    assert f"{layout.proxy_dir}:/proxy" in watchdog and "container:<the node's proxy task>" in watchdog
    # each node's watchdog joins that node's own proxy task
    on_node = plan.watchdog_on("abc123")
    assert "container:abc123" in on_node and len(on_node) == len(watchdog)
    plain = deploy_plan(spec, list(services.values()), Names("shop", "prod"), layout.proxy_dir, proxy_port=8080,
                        drain=2.0, migrations={})
    assert plain.canary_rows() == [] and plain.watchdog is None


def test_the_shadow_window_on_a_swarm_copies_to_the_new_releases_tasks_while_the_live_one_answers():
    from deployctl.plan.edge.proxy_config import Shadow, live_release, shadow_of
    from deployctl.plan.swarm.swarm_plan import shadow_config_for

    _, _, _, live, _ = setup()
    r2 = R1.replace(R1[-7:], "bbbbbbb")
    target = release_spec(parse_config(CONFIG_TEXT), "prod", r2, "bbbbbbbdef", IMAGES, PROXY_IMAGE)
    text = shadow_config_for(target, live, ("GET", "HEAD"), 1.5)
    assert live_release(text) == R1 and shadow_of(text) is not None and shadow_of(text).release == r2
    # users: the live release's tasks, each request copied to the internal location
    assert f"set $deployctl_upstream tasks.shop-prod-frontend-{R1};" in text
    assert "mirror /.deployctl-shadow;\n            mirror_request_body off;" in text
    # the copies: the new release's tasks by DNS, stamped with it, cut off at the timeout
    copy = text[text.index("location = /.deployctl-shadow {"):]
    copy = copy[:copy.index("\n        }\n")]
    assert f"set $deployctl_shadow_upstream tasks.shop-prod-frontend-{r2};" in copy
    assert "proxy_pass http://$deployctl_shadow_upstream:8000$request_uri;" in copy
    assert f"add_header X-Deployctl-Release {r2} always;" in copy and "proxy_read_timeout 1500ms;" in copy
    # the subrequest shares the parent's stamp and runs the server's `set` again: the live
    # stamp is set back first, before a method not copied returns
    assert copy.index(f"set $deployctl_release {R1};") < copy.index("if ($deployctl_shadow = 0)")
    assert "map $request_method $deployctl_shadow {" in text and f"release={r2}'" in text
    with pytest.raises(ValueError, match="a shadow mirrors a live route only"):
        render_swarm_proxy_config(live.proxy, None, None, None, shadow=(Shadow(r2, ("GET",)), "x", 8000))


def test_the_dry_run_of_a_shadowed_swarm_deploy_shows_the_window_between_health_and_route():
    from deployctl.config.models import Rollout
    from deployctl.plan.judging.shadow import shadow_spec

    _, _, layout, spec, services = setup()
    shadow = shadow_spec(Rollout(shadow_window=30))
    plan = deploy_plan(spec, list(services.values()), Names("shop", "prod"), layout.proxy_dir, proxy_port=8080,
                       drain=2.0, migrations={}, shadow=shadow)
    rows = plan.shadow_rows()
    assert f"tasks.shop-prod-frontend-{R1}" in rows[0].detail and "every node" in rows[1].detail
    assert rows[1].argv[:3] == ("docker", "logs", "--timestamps") and "aborted" in rows[2].detail
    plain = deploy_plan(spec, list(services.values()), Names("shop", "prod"), layout.proxy_dir, proxy_port=8080,
                        drain=2.0, migrations={})
    assert plain.shadow_rows() == []


def test_the_services_are_listed_and_inspected_in_one_manager_call():
    """One round trip (issue 26): the label-filtered ids, then inspect_services' format on them;
    none listed is an empty answer, a failed listing exit LISTING_FAILED."""
    argv = sw.inspect_listed_services(Names("shop", "production"))
    assert argv == [
        "sh", "-c",
        'ids=$("$@") || exit 2; [ -n "$ids" ] || exit 0; exec docker service inspect --format '
        "'{{.Spec.Name}}\t{{index .Spec.Labels \"io.deployctl.release\"}}\t{{index .Spec.Labels "
        "\"io.deployctl.service\"}}\t{{if .Spec.Mode.Replicated}}{{.Spec.Mode.Replicated.Replicas}}{{end}}' $ids",
        "sh", "docker", "service", "ls", "-q", "--filter", "label=io.deployctl.app=shop",
        "--filter", "label=io.deployctl.env=production"]
    assert sw.LISTING_FAILED == 2


def test_the_nodes_are_listed_and_inspected_in_one_manager_call():
    assert sw.inspect_listed_nodes() == [
        "sh", "-c",
        'ids=$("$@") || exit 2; [ -n "$ids" ] || exit 0; exec docker node inspect --format '
        "'{{.Description.Hostname}}\t{{.Status.Addr}}\t{{.Status.State}}\t{{.Spec.Availability}}\t"
        "{{if .ManagerStatus}}{{.ManagerStatus.Addr}}{{end}}' $ids",
        "sh", "docker", "node", "ls", "--format", "{{.ID}}"]
