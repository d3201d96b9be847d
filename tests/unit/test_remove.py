"""`deployctl remove` (services/operate/remove.py, plan/operate/remove.py): its argv as data, and its rules on
fake hosts (tests/support/fake_host.py) with two apps on one host: everything of the removed
environment goes, the other app keeps serving, the lock is taken first, a second run finds
nothing, an unreachable host of a fleet fails by name while the others are removed."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from deployctl.config import LoadedConfig, parse_config
from deployctl.errors import ExitCode, RolloutError
from deployctl.events import Recorder
from deployctl.plan.operate import remove as plan
from deployctl.plan.lifecycle.names import LABEL_APP, Names
from deployctl.plan.lifecycle.steps import PlannedStep
from deployctl.secrets import Secret
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.hosts import layout_for
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.operate.remove import remove_environment
from deployctl.services.env import Env
from tests.support.fake_host import FakeHost
from tests.support.virtual_time import virtual_time

virtual_time = pytest.fixture(autouse=True)(virtual_time)

PROXY_IMAGE = "nginx:1.27-alpine"
T0 = 1_780_000_000


def config(app: str, port: int) -> LoadedConfig:
    return LoadedConfig(Path(f"/project/{app}/deploy.toml"), parse_config(f"""
app = "{app}"
registry = {{ server = "registry.example" }}
[services.backend]
context = "backend"
secrets = ["DB_PASSWORD"]
[services.backend.healthcheck]
timeout = 2
[services.frontend]
context = "frontend"
routed = true
[services.frontend.healthcheck]
timeout = 2
[accessories.db]
image = "mariadb:11"
volumes = ["data:/var/lib/mysql"]

[environments.local]
target = "local"
proxy_port = {port}
state_dir = "/srv/state"
[environments.local.rollout]
drain = 0
guard_window = 0
warm_window = 0

[environments.prod]
target = "ssh"
hosts = ["h1", "h2", "h3"]
proxy_port = {port}
state_dir = "/srv/state"
[environments.prod.rollout]
drain = 0
guard_window = 0
warm_window = 0
"""))


SHOP, BLOG = config("shop", 8080), config("blog", 8081)
SECRETS = {"DB_PASSWORD": Secret("s3cret")}


def images(app: str, n: int) -> list[str]:
    return [f"sha256:{app}-{s}{n}" for s in ("back", "front")]


def deploy_release(loaded: LoadedConfig, env: str, hosts: list[FakeHost], n: int) -> str:
    app = loaded.config.app
    if env == "local":
        refs = ReleaseImages({"backend": f"sha256:{app}-back{n}", "frontend": f"sha256:{app}-front{n}"}, f"{n:07d}")
    else:
        refs = ReleaseImages({s: f"registry.example/{app}/{s}@sha256:{n:064d}" for s in ("backend", "frontend")},
                             f"{n:07d}")
    return deploy(Env.resolve(loaded, env), refs, SECRETS, Recorder(), connectors=list(hosts), now=T0 + 60 * n).release


def with_accessory_volume(host: FakeHost, app: str, env: str) -> str:
    """The accessory's container and labelled volume, as `accessory boot` leaves them."""
    volume = f"{app}-{env}-db-data"
    labels = [arg for k, v in Names(app, env).labels("accessory").items() for arg in ("--label", f"{k}={v}")]
    assert host.run(["docker", "volume", "create", *labels, volume]).ok
    host.images.add("mariadb:11")
    assert host.run(["docker", "run", "--detach", "--name", f"{app}-{env}-db", *labels,
                     "-v", f"{volume}:/var/lib/mysql", "mariadb:11"]).ok
    return volume


def of_app(host: FakeHost, app: str) -> dict:
    return {"containers": sorted(n for n, c in host.containers.items() if c.labels.get(LABEL_APP) == app),
            "networks": sorted(n for n in host.networks if host.network_labels.get(n, {}).get(LABEL_APP) == app),
            "files": sorted(p for p in host.files if p.startswith(f"/srv/state/{app}/"))}


@pytest.fixture
def two_apps():
    """One host, shop with two releases (one kept) and an accessory, blog with one release."""
    host = FakeHost("local", images=[PROXY_IMAGE, *images("shop", 1), *images("shop", 2), *images("blog", 1)])
    deploy_release(SHOP, "local", [host], 1)
    deploy_release(SHOP, "local", [host], 2)
    volume = with_accessory_volume(host, "shop", "local")
    blog = deploy_release(BLOG, "local", [host], 1)
    assert host.http_get("127.0.0.1", 8081, "/").headers["x-deployctl-release"] == blog
    yield host, blog, volume
    assert not host.unknown, f"argvs the fake does not model: {host.unknown}"


# -- the plan ------------------------------------------------------------------------------------


def test_host_steps_are_the_exact_argvs_in_order():
    inventory = plan.HostInventory(
        containers=(("shop-local-backend-r1", "service"), ("shop-local-proxy", "proxy"),
                    ("shop-local-scheduler", "scheduler")),
        networks=("shop-local", "shop-local-r1"), volumes=("shop-local-db-data",), state_root="/srv/state/shop/local")
    assert [(s.step, s.argv) for s in plan.host_steps(inventory)] == [
        ("scheduler", ("docker", "rm", "--force", "--volumes", "shop-local-scheduler")),
        ("containers", ("docker", "rm", "--force", "--volumes", "shop-local-backend-r1", "shop-local-proxy")),
        ("networks", ("docker", "network", "rm", "shop-local", "shop-local-r1")),
        ("volumes", ("docker", "volume", "rm", "shop-local-db-data")),
        ("state", ("rm", "-rf", "--", "/srv/state/shop/local")),
    ]
    assert plan.host_steps(plan.HostInventory()) == []
    assert plan.HostInventory().empty and not inventory.empty


def test_listings_filter_by_both_labels_never_by_name():
    names = Names("shop", "prod")
    assert plan.list_volumes(names) == ["docker", "volume", "ls", "--filter", "label=io.deployctl.app=shop",
                                        "--filter", "label=io.deployctl.env=prod", "--format", "{{.Name}}"]
    assert plan.parse_containers("b|service|r1|running\na|proxy||running\n\n") == (("a", "proxy"), ("b", "service"))
    assert plan.parse_networks("shop-prod|\nshop-prod-r1|r1\n") == ("shop-prod", "shop-prod-r1")
    assert plan.swarm_volumes(["shop-prod-db-data", "shop-prod-x"], ["shop-prod-db-data", "other"]) == (
        "shop-prod-db-data",)


def test_swarm_manager_steps_exact():
    inventory = plan.SwarmInventory(services=("s-a", "s-proxy"), secrets=("sec",), configs=("cfg",), networks=("net",))
    assert [(s.step, s.argv) for s in plan.swarm_manager_steps(inventory)] == [
        ("services", ("docker", "service", "rm", "s-a", "s-proxy")),
        ("secrets", ("docker", "secret", "rm", "sec")),
        ("configs", ("docker", "config", "rm", "cfg")),
        ("networks", ("docker", "network", "rm", "net")),
    ]


# -- on fake hosts ---------------------------------------------------------------------------------


def test_remove_takes_every_release_proxy_network_and_state_and_leaves_the_other_app_serving(two_apps):
    host, blog, volume = two_apps
    before = of_app(host, "shop")
    assert any("-proxy" in c for c in before["containers"]) and len(before["networks"]) >= 3  # app + 2 releases
    blog_before = of_app(host, "blog")

    [result] = remove_environment(Env.resolve(SHOP, "local"), Recorder(), volumes=False, connectors=[host])

    assert not result.nothing and result.error is None
    assert sorted(result.found["containers"]) == before["containers"]
    assert of_app(host, "shop") == {"containers": [], "networks": [], "files": []}
    assert not any(d.startswith("/srv/state/shop/local") for d in host.dirs)  # the lock too
    assert volume in host.volumes  # the data stays without --volumes
    assert of_app(host, "blog") == blog_before
    assert host.http_get("127.0.0.1", 8081, "/").headers["x-deployctl-release"] == blog
    # The lock was taken before anything was listed or removed.
    calls = [text for call, text in host.calls if call in ("run", "mkdir")]
    lock = calls.index(layout_for(SHOP, "local").lock_dir)
    first_rm = next(i for i, text in enumerate(calls) if text.startswith("docker rm"))
    first_list = next(i for i, text in enumerate(calls) if text.startswith("docker ps --all"))
    assert lock < first_list < first_rm


def test_a_second_remove_finds_nothing_and_leaves_no_lock_behind(two_apps):
    host, blog, _ = two_apps
    remove_environment(Env.resolve(SHOP, "local"), Recorder(), volumes=False, connectors=[host])
    emit = Recorder()
    [again] = remove_environment(Env.resolve(SHOP, "local"), emit, volumes=False, connectors=[host])
    assert again.nothing and again.error is None
    assert any("nothing to remove" in getattr(e, "text", "") for e in emit.events)
    assert not any(d.startswith("/srv/state/shop/local") for d in host.dirs)
    assert host.http_get("127.0.0.1", 8081, "/").headers["x-deployctl-release"] == blog


def test_volumes_only_with_the_flag(two_apps):
    host, _, volume = two_apps
    [result] = remove_environment(Env.resolve(SHOP, "local"), Recorder(), volumes=True, connectors=[host])
    assert result.found["volumes"] == [volume]
    assert volume not in host.volumes


def test_a_held_lock_refuses_and_changes_nothing(two_apps):
    host, _, _ = two_apps
    layout = layout_for(SHOP, "local")
    host.mkdir(layout.lock_dir, mode=0o700)
    host.put_file(layout.lock_info, b'{"who": "ci", "when": "2026-12-06T07:00:00Z", "action": "deploy", '
                                    b'"pid": 1, "host": "elsewhere", "timeout": 99999999999}')
    before = of_app(host, "shop")
    with pytest.raises(RolloutError) as info:
        remove_environment(Env.resolve(SHOP, "local"), Recorder(), volumes=False, connectors=[host])
    assert info.value.exit_code == ExitCode.LOCK_HELD
    assert "local: " in info.value.message and "lock" in info.value.message
    assert of_app(host, "shop") == before


def test_dry_run_lists_the_same_steps_and_changes_nothing(two_apps):
    host, _, volume = two_apps
    before = of_app(host, "shop")
    [dry] = remove_environment(Env.resolve(SHOP, "local"), Recorder(), volumes=True, dry_run=True, connectors=[host])
    assert of_app(host, "shop") == before and volume in host.volumes
    assert layout_for(SHOP, "local").lock_dir not in host.dirs
    ran_before = len(host.calls)
    remove_environment(Env.resolve(SHOP, "local"), Recorder(), volumes=True, connectors=[host])
    ran = [text for call, text in host.calls[ran_before:] if call == "run"]
    assert [" ".join(s.argv) for s in dry.steps if s.argv] == [
        text for text in ran if text.startswith(("docker rm", "docker network rm", "docker volume rm", "rm -rf"))]
    assert [s.step for s in dry.steps] == ["containers", "networks", "volumes", "state"]


def test_an_unreachable_host_of_a_fleet_is_named_and_the_others_are_removed():
    hosts = [FakeHost(h) for h in ("h1", "h2", "h3")]
    deploy_release(SHOP, "prod", hosts, 1)
    hosts[1].gone = True
    with pytest.raises(RolloutError) as info:
        remove_environment(Env.resolve(SHOP, "prod"), Recorder(), volumes=False, connectors=hosts)
    assert info.value.exit_code == ExitCode.CONNECT
    assert "h2: " in info.value.message and "h1: " not in info.value.message
    assert "not removed (or not completely) from: h2" in info.value.hint
    assert "removed from: h1, h3" in info.value.hint
    for host in (hosts[0], hosts[2]):
        assert of_app(host, "shop") == {"containers": [], "networks": [], "files": []}
    hosts[1].gone = False
    assert of_app(hosts[1], "shop")["containers"]  # untouched, removed by the next run
    remove_environment(Env.resolve(SHOP, "prod"), Recorder(), volumes=False, connectors=hosts)
    assert of_app(hosts[1], "shop") == {"containers": [], "networks": [], "files": []}


def test_a_job_container_started_meanwhile_is_removed_too(two_apps):
    host, _, _ = two_apps
    labels = [arg for k, v in Names("shop", "local").labels("scheduler").items() for arg in ("--label", f"{k}={v}")]
    assert host.run(["docker", "run", "--detach", "--name", "shop-local-scheduler", *labels, PROXY_IMAGE]).ok
    job = [arg for k, v in Names("shop", "local").labels("job").items() for arg in ("--label", f"{k}={v}")]
    original = host._docker_rm

    def scheduler_fires(args):  # type: ignore[no-untyped-def]
        answer = original(args)
        if "shop-local-scheduler" in args:  # it started a job just before it went
            host._docker_create(["--name", "shop-local-job-late", *job, PROXY_IMAGE], status="running")
        return answer

    host._docker_rm = scheduler_fires
    [result] = remove_environment(Env.resolve(SHOP, "local"), Recorder(), volumes=False, connectors=[host])
    assert result.steps[0] == PlannedStep("scheduler", "the scheduled jobs' scheduler first: it starts containers",
                                          ("docker", "rm", "--force", "--volumes", "shop-local-scheduler"))
    assert of_app(host, "shop")["containers"] == []


def test_the_cli_asks_for_the_environment_name_and_refuses_without_a_terminal(tmp_path, monkeypatch, capsys):
    from deployctl.cli.main import main

    path = tmp_path / "deploy.toml"
    path.write_text(f"""
app = "shop"
[services.web]
context = "."
routed = true
[environments.local]
target = "local"
state_dir = "{tmp_path / 'state'}"
""")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal
    assert main(["-c", str(path), "remove", "--env", "local"]) == ExitCode.DEPLOY_FAILED
    err = capsys.readouterr().err
    assert "refused: removing local needs its environment's name typed on a terminal" in err
    assert "--yes" in err
    assert not (tmp_path / "state").exists()


# -- a Swarm, on a scripted manager and nodes --------------------------------------------------------


class ScriptedSwarm:
    """The manager answers the listings from `objects` and removes what `rm` names; the nodes
    are FakeHosts (one of them gone when asked)."""

    def __init__(self, names: Names, layout, gone: str | None = None) -> None:  # type: ignore[no-untyped-def]
        from deployctl.plan.swarm import services as sw

        self.names, self.layout, self.sw = names, layout, sw
        self.objects = {"service": ["shop-prod-backend-r1", "shop-prod-proxy"], "secret": ["shop-prod-r1-backend-DB"],
                        "config": ["shop-prod-db-file0-abc"], "network": ["shop-prod", "shop-prod-r1"]}
        self.manager = FakeHost("m1")
        self.manager.faults = []
        self.manager.mkdir(layout.root)
        self.manager.run = self._manager_run  # type: ignore[method-assign]
        self.nodes = {a: FakeHost(a) for a in ("10.0.0.1", "10.0.0.2")}
        for address, node in self.nodes.items():
            node.mkdir(f"{layout.proxy_dir}")
            node.volumes = {"shop-prod-db-data": {}, "other-app-data": {}} if address == "10.0.0.2" else {}
        if gone:
            self.nodes[gone].gone = True
        self.ran: list[str] = []

    def _manager_run(self, argv, **kwargs):  # type: ignore[no-untyped-def]
        from deployctl.adapters.connector import CommandResult

        argv = list(argv)
        self.ran.append(" ".join(argv))
        kind = {"service": "service", "secret": "secret", "config": "config", "network": "network"}.get(argv[1])
        if kind and argv[2] == "ls":
            if argv[-1] == "{{.Name}}\t{{.Replicas}}":
                return CommandResult(0, "".join(f"{n}\t1/1\n" for n in self.objects[kind]), "")
            sep = "|" if kind == "network" else ""
            return CommandResult(0, "".join(f"{n}{sep}\n" for n in self.objects[kind]), "")
        if kind and argv[2] == "rm":
            self.objects[kind] = [n for n in self.objects[kind] if n not in argv[3:]]
            return CommandResult(0, "", "")
        if argv[:3] == ["docker", "service", "ps"]:
            return CommandResult(0, "", "")
        return FakeHost.run(self.manager, argv, **kwargs)

    # the SwarmSite surface services/operate/remove.py uses
    def ready_nodes(self):  # type: ignore[no-untyped-def]
        return [type("Node", (), {"address": a, "state": "ready"})() for a in self.nodes]

    def node(self, address: str) -> FakeHost:
        return self.nodes[address].connect()


SWARM_CONFIG = LoadedConfig(Path("/project/shop/deploy.toml"), parse_config("""
app = "shop"
registry = { server = "registry.example" }
[services.web]
context = "web"
routed = true
[accessories.db]
image = "mariadb:11"
volumes = ["data:/var/lib/mysql"]
placement = ["node.hostname==n2"]
[environments.prod]
target = "swarm"
manager = "m1"
accessories = ["db"]
state_dir = "/srv/state"
"""))


def test_swarm_removal_order_and_an_unreachable_node_named():
    from deployctl.services.lifecycle.host_state import HostState
    from deployctl.services.operate.remove import _swarm_site

    layout = layout_for(SWARM_CONFIG, "prod")
    site = ScriptedSwarm(Names("shop", "prod"), layout, gone="10.0.0.1")
    result = _swarm_site(site, HostState(site.manager, layout), Env.resolve(SWARM_CONFIG, "prod"), Recorder(), volumes=True,
                         dry_run=False, label="swarm manager m1")
    assert site.objects == {"service": [], "secret": [], "config": [], "network": []}
    removals = [r for r in site.ran if " rm " in f" {r} "]
    assert removals[0].startswith("docker service rm") and removals[-1] == f"rm -rf -- {layout.root}"
    assert [r.split()[1] for r in removals[:4]] == ["service", "secret", "config", "network"]
    assert site.nodes["10.0.0.2"].volumes == {"other-app-data": {}}  # deploy.toml's volume only
    assert not any(d.startswith(layout.root) for d in site.nodes["10.0.0.2"].dirs)
    assert result.exit_code == ExitCode.CONNECT and "10.0.0.1" in result.error and "10.0.0.2" not in result.error
    assert not any(d.startswith(layout.root) for d in site.manager.dirs)  # the lock went last


def test_swarm_second_removal_finds_nothing():
    from deployctl.services.lifecycle.host_state import HostState
    from deployctl.services.operate.remove import _swarm_site

    layout = layout_for(SWARM_CONFIG, "prod")
    site = ScriptedSwarm(Names("shop", "prod"), layout)
    _swarm_site(site, HostState(site.manager, layout), Env.resolve(SWARM_CONFIG, "prod"), Recorder(), volumes=False,
                dry_run=False, label="m")
    again = _swarm_site(site, HostState(site.manager, layout), Env.resolve(SWARM_CONFIG, "prod"), Recorder(), volumes=False,
                        dry_run=False, label="m")
    assert again.nothing and again.error is None
