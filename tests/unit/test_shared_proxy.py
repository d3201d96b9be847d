"""Several apps on one host through the host's shared proxy (plan/edge/shared_proxy.py,
services/edge/shared_proxy.py): the route file and main configuration as data, and on a fake
host with two apps: a route is put in once (later deploys change nothing), a host name
another app routes is refused before anything changes, a route nginx refuses never becomes
live, remove takes only its own route out, and what is not supported is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.config import LoadedConfig, parse_config
from deployctl.errors import ConfigError, DeployError, ExitCode, UsageError
from deployctl.events import Recorder
from deployctl.plan.edge import shared_proxy as plan
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.operate.remove import remove_environment
from tests.support.fake_host import FakeHost, Fault
from tests.support.virtual_time import virtual_time

virtual_time = pytest.fixture(autouse=True)(virtual_time)

PROXY_IMAGE = "nginx:1.27-alpine"
SHARED = "/srv/state/shared-proxy/edge"


def config(app: str, port: int, hosts: str, extra: str = "", env_extra: str = "", shared: bool = True) -> LoadedConfig:
    return LoadedConfig(Path(f"/project/{app}/deploy.toml"), parse_config(f"""
app = "{app}"
[services.web]
context = "web"
routed = true
[services.web.healthcheck]
timeout = 2
[proxy]
hosts = {hosts}
{extra}
[environments.local]
target = "local"
proxy_port = {port}
state_dir = "/srv/state"
{'shared_proxy = "edge"' if shared else ''}
shared_proxy_port = 80
{env_extra}
[environments.local.rollout]
drain = 0
guard_window = 0
warm_window = 0
"""))


SHOP = config("shop", 8080, '["shop.example.com"]')
BLOG = config("blog", 8081, '["example.com", "www.example.com"]', 'path_prefix = "/blog"')


def images(app: str, n: int) -> ReleaseImages:
    return ReleaseImages({"web": f"sha256:{app}{n}"}, f"{n:07d}")


def ship(loaded: LoadedConfig, host: FakeHost, n: int) -> str:
    return deploy(loaded, "local", images(loaded.config.app, n), {}, Recorder(), connectors=[host],
                  now=1_780_000_000 + 60 * n).release


@pytest.fixture
def host():
    host = FakeHost("local", images=[PROXY_IMAGE] + [f"sha256:{a}{n}" for a in ("shop", "blog", "clash")
                                                    for n in range(1, 4)])
    yield host
    assert not host.unknown, host.unknown


def runs(host: FakeHost, needle: str) -> list[str]:
    return [text for call, text in host.calls if call == "run" and needle in text]


# -- as data ---------------------------------------------------------------------------------------


def test_route_file_and_its_lines_exact():
    route = plan.Route("blog", "local", ("example.com", "*.example.org"), "/blog", 8081)
    assert route.file == "p9994__blog__local.map"
    assert plan.Route("shop", "local", ("a.test",), None, 1).file == "z__shop__local.map"
    assert plan.render_route(route) == (
        "# Written by deployctl for blog local; do not edit.\n"
        "# route: blog local example.com /blog\n"
        "# route: blog local *.example.org /blog\n"
        '"~^example\\.com/blog(/|$)" 127.0.0.1:8081;\n'
        '"~^[^.]+\\.example\\.org/blog(/|$)" 127.0.0.1:8081;\n')
    # Longer prefixes sort first, routes without one last: the most specific wins in nginx's map.
    names = sorted([plan.route_file("a", "e", None), plan.route_file("b", "e", "/x"), plan.route_file("c", "e", "/x/yz")])
    assert names == ["p9994__c__e.map", "p9997__b__e.map", "z__a__e.map"]


def test_conflicts_name_the_app_that_routes_the_host():
    route = plan.Route("shop", "local", ("a.test",), None, 1)
    other = plan.render_route(plan.Route("blog", "prod", ("a.test", "b.test"), None, 2))
    assert plan.conflicts(route, {"z__blog__prod.map": other}) == ["a.test is routed to blog prod"]
    prefixed = plan.render_route(plan.Route("blog", "prod", ("a.test",), "/blog", 2))
    assert plan.conflicts(route, {"p__blog__prod.map": prefixed}) == []  # another path of the same host
    assert plan.conflicts(route, {"z__shop__local.map": plan.render_route(route)}) == []  # its own


def test_main_configuration_includes_the_routes_or_a_given_list():
    main = plan.render_main(80)
    assert "listen 80 default_server;" in main and f"include {plan.MOUNT}/routes/*.map;" in main
    assert plan.port_of(main) == 80
    test = plan.render_main(80, ["z__a__e.map", "z__b__e.map.next"])
    assert f"include {plan.MOUNT}/routes/z__b__e.map.next;" in test and "*.map" not in test
    assert plan.run_shared_proxy("edge", "nginx:x", SHARED)[:8] == [
        "docker", "run", "--detach", "--name", "deployctl-shared-proxy-edge", "--network", "host", "--restart"]


# -- on a fake host ---------------------------------------------------------------------------------


def through(host: FakeHost, name: str, path: str = "/") -> tuple[int, str]:
    answer = host.http_get("127.0.0.1", 80, path, headers={"Host": name})
    return answer.status, answer.headers.get("x-deployctl-release", "")


def test_two_apps_share_one_proxy_and_a_later_deploy_changes_nothing_in_it(host):
    shop1 = ship(SHOP, host, 1)
    assert len(runs(host, "docker run --detach --name deployctl-shared-proxy-edge")) == 1
    assert host.text(f"{SHARED}/routes/z__shop__local.map").endswith('"~^shop\\.example\\.com/" 127.0.0.1:8080;\n')
    blog1 = ship(BLOG, host, 1)
    assert len(runs(host, "docker run --detach --name deployctl-shared-proxy-edge")) == 1  # started once
    assert through(host, "shop.example.com") == (200, shop1)
    assert through(host, "www.example.com", "/blog/x") == (200, blog1)
    assert through(host, "www.example.com", "/other")[0] == 404  # blog answers under its prefix only
    assert host.text(f"{SHARED}/routes/p9994__blog__local.map") is not None
    tested = host.text(f"{SHARED}/{plan.TEST_FILE}")
    assert "z__shop__local.map;" in tested and "p9994__blog__local.map.next;" in tested  # the whole config, tested
    reloads = len(runs(host, "nginx -s reload -c /etc/deployctl/shared-proxy/nginx.conf"))
    assert reloads == 1
    writes = len([c for c in host.calls if c[0] == "put_file" and c[1].startswith(SHARED)])
    shop2 = ship(SHOP, host, 2)  # a release changes no route
    assert through(host, "shop.example.com") == (200, shop2)
    assert len(runs(host, "nginx -s reload -c /etc/deployctl/shared-proxy/nginx.conf")) == reloads
    assert len([c for c in host.calls if c[0] == "put_file" and c[1].startswith(SHARED)]) == writes
    assert f"{SHARED}/lock" not in host.dirs


def test_a_host_name_another_app_routes_is_refused_before_anything_changes(host):
    ship(SHOP, host, 1)
    clash = config("clash", 8082, '["shop.example.com"]')
    with pytest.raises(ConfigError) as info:
        ship(clash, host, 1)
    assert info.value.exit_code == ExitCode.CONFIG
    assert "proxy.hosts: shop.example.com is routed to shop local" in info.value.message
    assert not [n for n in host.containers if n.startswith("clash-")]


def test_an_app_whose_own_proxy_has_the_shared_port_is_refused_before_anything_changes(host):
    ship(config("shop", 80, '["shop.example.com"]', shared=False), host, 1)  # one app per host: its proxy on 80
    calls = len(host.calls)
    with pytest.raises(UsageError) as info:
        ship(config("shop", 8080, '["shop.example.com"]'), host, 2)
    assert info.value.exit_code == ExitCode.USAGE
    assert "publishes port 80, the shared proxy's" in info.value.message and "deployctl remove" in info.value.hint
    assert not [text for call, text in host.calls[calls:] if call == "run" and text.startswith(("docker run",
                                                                                                "docker create"))]


def test_a_route_nginx_refuses_never_becomes_live(host):
    ship(SHOP, host, 1)
    before = dict(host.files)
    host.faults.append(Fault("run", r"nginx -t -q -c /etc/deployctl/shared-proxy/nginx.test.conf",
                             effect=lambda argv: __import__("deployctl.adapters.connector", fromlist=["x"]).CommandResult(
                                 1, "", "nginx: [emerg] invalid parameter")))
    with pytest.raises(DeployError) as info:
        ship(BLOG, host, 1)
    assert "nginx -t refused the shared proxy edge" in info.value.message and "invalid parameter" in info.value.message
    assert "the release is live on the app's own proxy port" in info.value.hint
    routes = sorted(p for p in host.files if p.startswith(f"{SHARED}/routes/"))
    assert routes == [f"{SHARED}/routes/z__shop__local.map"]  # nothing staged left, nothing renamed in
    assert host.files[routes[0]] == before[routes[0]]
    assert not runs(host, "nginx -s reload -c /etc/deployctl/shared-proxy/nginx.conf")
    assert f"{SHARED}/lock" not in host.dirs


def test_remove_takes_only_its_own_route_out_first(host):
    ship(SHOP, host, 1)
    ship(BLOG, host, 1)
    [result] = remove_environment(BLOG, "local", Recorder(), volumes=False, connectors=[host])
    assert result.found["shared_proxy_routes"] == [f"{SHARED}/routes/p9994__blog__local.map"]
    assert [s.step for s in result.steps[:2]] == ["routes", "routes"]
    assert result.steps[1].argv == ("docker", "exec", "deployctl-shared-proxy-edge", "nginx", "-s", "reload", "-c",
                                    "/etc/deployctl/shared-proxy/nginx.conf")
    assert sorted(p for p in host.files if p.startswith(f"{SHARED}/routes/")) == [f"{SHARED}/routes/z__shop__local.map"]
    assert host.containers["deployctl-shared-proxy-edge"].status == "running"
    assert [n for n in host.containers if n.startswith("shop-")]
    assert through(host, "example.com", "/blog/")[0] == 404 and through(host, "shop.example.com")[0] == 200


@pytest.mark.parametrize("env_extra, what", [('tls = "acme"', "HTTPS"), ("", "Swarm")])
def test_what_the_shared_proxy_does_not_do_is_refused_by_name(env_extra, what):
    from deployctl.services.edge.shared_proxy import refuse

    if what == "Swarm":
        loaded = LoadedConfig(Path("/p/deploy.toml"), parse_config("""
app = "shop"
registry = { server = "r.example" }
[services.web]
context = "web"
routed = true
[proxy]
hosts = ["shop.example.com"]
[environments.prod]
target = "swarm"
manager = "m1"
proxy_port = 8080
shared_proxy = "edge"
"""))
        env = "prod"
    else:
        loaded = config("shop", 8080, '["shop.example.com"]', 'acme_email = "ops@example.com"', env_extra)
        env = "local"
    with pytest.raises(UsageError) as info:
        refuse(loaded, env)
    assert info.value.exit_code == ExitCode.USAGE and "shared_proxy" in info.value.message
    assert what in info.value.message or (what == "Swarm" and 'target = "swarm"' in info.value.message)


def test_the_config_names_what_the_shared_proxy_needs():
    with pytest.raises(ConfigError) as info:
        parse_config("""
app = "shop"
[services.web]
context = "web"
routed = true
[environments.local]
target = "local"
proxy_port = 80
shared_proxy = "edge"
""")
    assert "shared_proxy needs proxy.hosts" in info.value.message
    with pytest.raises(ConfigError) as info:
        parse_config("""
app = "shop"
[services.web]
context = "web"
routed = true
[proxy]
path_prefix = "/api"
[environments.local]
target = "local"
""")
    assert "proxy.path_prefix only applies through a shared proxy" in info.value.message
    with pytest.raises(ConfigError) as info:
        parse_config("""
app = "shop"
[services.web]
context = "web"
routed = true
[proxy]
hosts = ["a.example.com"]
path_prefix = "/a b"
[environments.local]
target = "local"
proxy_port = 8080
shared_proxy = "edge"
""")
    assert "proxy.path_prefix" in info.value.message and "is not a path prefix" in info.value.message
