"""Several apps on one host through the host's shared proxy (plan/edge/shared_proxy.py,
services/edge/shared_proxy.py): the route file and main configuration as data, and on a fake
host with two apps: a route is put in once (later deploys change nothing), a host name
another app routes is refused before anything changes, a route nginx refuses never becomes
live, remove takes only its own route out, and what is not supported is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.adapters.connector import CommandResult
from deployctl.config import LoadedConfig, parse_config
from deployctl.errors import ConfigError, DeployError, ExitCode, UsageError
from deployctl.events import Recorder
from deployctl.plan.edge import shared_proxy as plan
from deployctl.plan.edge import client_address
from deployctl.plan.edge import tls_config as tc
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.operate.remove import remove_environment
from deployctl.services.env import Env
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
    return deploy(Env.resolve(loaded, "local"), images(loaded.config.app, n), {}, Recorder(), connectors=[host],
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
    [result] = remove_environment(Env.resolve(BLOG, "local"), Recorder(), volumes=False, connectors=[host])
    assert result.found["shared_proxy_routes"] == [f"{SHARED}/routes/p9994__blog__local.map"]
    assert [s.step for s in result.steps[:2]] == ["routes", "routes"]
    assert result.steps[1].argv == ("docker", "exec", "deployctl-shared-proxy-edge", "nginx", "-s", "reload", "-c",
                                    "/etc/deployctl/shared-proxy/nginx.conf")
    assert sorted(p for p in host.files if p.startswith(f"{SHARED}/routes/")) == [f"{SHARED}/routes/z__shop__local.map"]
    assert host.containers["deployctl-shared-proxy-edge"].status == "running"
    assert [n for n in host.containers if n.startswith("shop-")]
    assert through(host, "example.com", "/blog/")[0] == 404 and through(host, "shop.example.com")[0] == 200


def test_a_swarm_refuses_the_shared_proxy_by_name():
    from deployctl.services.edge.shared_proxy import refuse

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
    with pytest.raises(UsageError) as info:
        refuse(Env.resolve(loaded, "prod"))
    assert info.value.exit_code == ExitCode.USAGE and "shared_proxy" in info.value.message
    assert 'target = "swarm"' in info.value.message


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


# -- HTTPS passed through by SNI ------------------------------------------------------------------

TLS_FILES = ('tls = "files"\ntls_certificate_secret = "SHOP_TLS_CHAIN"\ntls_key_secret = "SHOP_TLS_KEY"')


def tls_shop(extra: str = "", env_extra: str = "proxy_tls_port = 8443") -> LoadedConfig:
    return config("shop", 8080, '["shop.example.com"]', f"{TLS_FILES}\n{extra}", env_extra)


@pytest.fixture
def shop_pair(monkeypatch):
    from tests.support.pebble import TestCa

    chain, key = TestCa().issue(["shop.example.com"])
    monkeypatch.setenv("SHOP_TLS_CHAIN", chain.decode())
    monkeypatch.setenv("SHOP_TLS_KEY", key.decode())
    return chain, key


def test_an_https_route_and_the_stream_server_exact():
    route = plan.Route("shop", "local", ("Shop.example.com", "*.shop.test"), None, 8080, 8443, proxy_protocol=True)
    assert route.sni_file == "z__shop__local.sni-pp" and plan.Route("a", "e", ("a.test",), None, 1).sni_file is None
    assert route.files() == {
        "z__shop__local.map": ("# Written by deployctl for shop local; do not edit.\n"
                               "# route: shop local shop.example.com / https\n"
                               "# route: shop local *.shop.test / https\n"
                               '"~^shop\\.example\\.com/" 127.0.0.1:8080;\n'
                               '"~^[^.]+\\.shop\\.test/" 127.0.0.1:8080;\n'),
        "z__shop__local.sni-pp": ("# Written by deployctl for shop local (HTTPS passed through by SNI, with the PROXY "
                                  "protocol); do not edit.\n"
                                  '"~*^shop\\.example\\.com$" 127.0.0.1:8443;\n'
                                  '"~*^[^.]+\\.shop\\.test$" 127.0.0.1:8443;\n')}
    # A listener that does not take the PROXY protocol (yet): the same lines, passed on plain.
    plain = plan.Route("shop", "local", ("shop.example.com",), None, 8080, 8443)
    assert plain.files()["z__shop__local.sni"] == (
        "# Written by deployctl for shop local (HTTPS passed through by SNI); do not edit.\n"
        '"~*^shop\\.example\\.com$" 127.0.0.1:8443;\n')
    main = plan.render_main(80, tls_port=443)
    assert plan.port_of(main) == 80 and plan.port_of(main, "tls_port") == 443 and plan.port_of(plan.render_main(80), "tls_port") is None
    assert "include /etc/nginx/modules-enabled/*.conf;\n" in main  # Debian's nginx: stream is a module
    assert main[main.index("\nstream {"):] == """
stream {
    # Routes passed on plain (*.sni: an app listener that does not take the PROXY protocol).
    map $ssl_preread_server_name $deployctl_shared_tls_plain {
        default "";
        include /etc/deployctl/shared-proxy/routes/*.sni;
    }
    # Routes whose app listener takes the PROXY protocol (*.sni-pp): the client's address.
    map $ssl_preread_server_name $deployctl_shared_tls_proxied {
        default unix:/tmp/deployctl-shared-proxy-no-route.sock;
        include /etc/deployctl/shared-proxy/routes/*.sni-pp;
    }
    map $deployctl_shared_tls_plain $deployctl_shared_tls_target {
        "" $deployctl_shared_tls_proxied;
        default unix:/tmp/deployctl-shared-proxy-plain.sock;
    }

    server {
        listen 443;
        ssl_preread on;
        proxy_pass $deployctl_shared_tls_target;
        # The client's address and port, before its TLS bytes (PROXY protocol v1).
        proxy_protocol on;
        proxy_connect_timeout 5s;
        # As the HTTP side's read timeout: a quiet WebSocket over HTTPS keeps its connection.
        proxy_timeout 3600s;
    }

    server {
        listen unix:/tmp/deployctl-shared-proxy-plain.sock proxy_protocol;
        ssl_preread on;
        proxy_pass $deployctl_shared_tls_plain;
        proxy_connect_timeout 5s;
        proxy_timeout 3600s;
    }

    server {
        listen unix:/tmp/deployctl-shared-proxy-no-route.sock proxy_protocol;
        return "";
    }
}
"""
    assert "\nstream {" not in plan.render_main(80)  # HTTP only: an image without the module serves it
    staged = plan.render_main(80, ["z__a__e.map", "z__b__e.sni", "z__shop__local.map.next",
                                   "z__shop__local.sni-pp.next"], 443)
    stream = staged.split("stream {")[1]
    assert (f"include {plan.MOUNT}/routes/z__shop__local.sni-pp.next;" in stream.split("_proxied {")[1].split("}")[0]
            and f"include {plan.MOUNT}/routes/z__b__e.sni;" in stream.split("_plain {")[1].split("}")[0]
            and ".sni" not in staged.split("stream {")[0])
    assert plan.list_routes("/s") == ["find", "/s/routes", "-maxdepth", "1", "(", "-name", "*.map", "-o", "-name",
                                      "*.sni", "-o", "-name", "*.sni-pp", ")", "-type", "f"]


def test_with_https_a_host_name_belongs_to_one_app_whole():
    shop = plan.Route("shop", "local", ("a.test",), None, 1, 2)
    blog = plan.render_route(plan.Route("blog", "prod", ("a.test", "b.test"), "/blog", 3))
    assert plan.conflicts(shop, {"p__blog__prod.map": blog}) == [
        "a.test/blog is routed to blog prod, and with HTTPS (passed through by name) a host name belongs to one app whole"]
    # and the other way round: an HTTP app's prefix on a name an HTTPS app has
    prefixed = plan.Route("blog", "prod", ("a.test",), "/blog", 3)
    assert len(plan.conflicts(prefixed, {"z__shop__local.map": plan.render_route(shop)})) == 1
    assert plan.conflicts(shop, {"p__blog__prod.map": plan.render_route(plan.Route("blog", "prod", ("b.test",), "/b", 3))}) == []


def test_an_https_app_and_an_http_app_share_the_proxy_and_the_redirect_names_the_shared_port(host, shop_pair):
    shop1 = ship(tls_shop(), host, 1)
    routes = f"{SHARED}/routes"
    assert sorted(p.rpartition("/")[2] for p in host.files if p.startswith(routes + "/")) == [
        "z__shop__local.map", "z__shop__local.sni-pp"]
    assert host.text(f"{routes}/z__shop__local.sni-pp").endswith('"~*^shop\\.example\\.com$" 127.0.0.1:8443;\n')
    main = host.text(f"{SHARED}/nginx.conf")
    assert plan.port_of(main, "tls_port") == 443 and "ssl_preread on;" in main and "proxy_protocol on;" in main
    assert len(runs(host, "nginx -s reload -c /etc/deployctl/shared-proxy/nginx.conf")) == 0  # started with it
    # The app's own certificate, on its own proxy, listening for the shared proxy's PROXY
    # protocol from the app network's gateway only; its redirect goes to the shared HTTPS port.
    version = tc.version_of(shop_pair[0], proxy_protocol=True)
    assert version != tc.version_of(shop_pair[0])
    server = host.text(f"/srv/state/shop/local/proxy/tls/{version}/server.conf")
    gateway = str(next(__import__("ipaddress").ip_network(host.subnets["shop-local"]).hosts()))
    assert server.splitlines()[1:5] == ["listen 443 ssl http2 reuseport proxy_protocol;",
                                        "# The client's address from the shared proxy's PROXY protocol header, "
                                        "trusted from it only.",
                                        f"set_real_ip_from {gateway};", "real_ip_header proxy_protocol;"]
    assert "return 301 https://$host$request_uri;" in server
    # HTTPS published on the host's loopback only: nobody else can speak the PROXY protocol to it
    # (nor send an X-Forwarded-For to HTTP that the proxy believes: plan/edge/client_address.py).
    assert host.containers["shop-local-proxy"].published == ["127.0.0.1:8080:80", "127.0.0.1:8443:443"]
    assert not [p for p in host.files if p.startswith(SHARED) and p.endswith(".pem")]  # no key in the shared proxy
    assert through(host, "shop.example.com") == (200, shop1)
    # An HTTP app after it: the stream server stays (the live one's port), its route is HTTP only.
    ship(BLOG, host, 1)
    main = host.text(f"{SHARED}/nginx.conf")
    assert plan.port_of(main, "tls_port") == 443 and f"include {plan.MOUNT}/routes/*.sni-pp;" in main
    assert not [p for p in host.files if "__blog__local.sni" in p]
    assert host.containers["blog-local-proxy"].published == ["127.0.0.1:8081:80"]
    # A later deploy of the HTTPS app changes nothing in the shared proxy.
    reloads = len(runs(host, "nginx -s reload -c /etc/deployctl/shared-proxy/nginx.conf"))
    shop2 = ship(tls_shop(), host, 2)
    assert len(runs(host, "nginx -s reload -c /etc/deployctl/shared-proxy/nginx.conf")) == reloads
    assert through(host, "shop.example.com") == (200, shop2)


def test_https_with_a_path_prefix_is_refused_by_name_before_anything_changes(host, shop_pair):
    with pytest.raises(UsageError) as info:
        ship(tls_shop('path_prefix = "/shop"'), host, 1)
    assert info.value.exit_code == ExitCode.USAGE
    assert 'proxy.path_prefix = "/shop" with HTTPS (tls = "files")' in info.value.message
    assert "environments.local.shared_proxy" in info.value.message and "host name" in info.value.hint
    assert host.calls == []


def test_a_host_name_an_https_app_has_is_refused_for_another_app_with_a_prefix(host, shop_pair):
    ship(tls_shop(), host, 1)
    clash = config("clash", 8082, '["shop.example.com"]', 'path_prefix = "/api"')
    with pytest.raises(ConfigError) as info:
        ship(clash, host, 1)
    assert "shop.example.com is routed to shop local, and with HTTPS" in info.value.message
    assert not [n for n in host.containers if n.startswith("clash")]


def test_the_https_ports_of_an_app_on_a_shared_proxy_are_checked_in_the_config():
    with pytest.raises(ConfigError) as info:
        tls_shop(env_extra="")  # proxy_tls_port left at 443, the shared proxy's
    assert "environments.local.proxy_tls_port: 443 is also a port of its shared proxy" in info.value.message
    with pytest.raises(ConfigError) as info:
        tls_shop(env_extra="proxy_tls_port = 8443\nshared_proxy_tls_port = 80")
    assert "environments.local.shared_proxy_tls_port: 80 is also its shared_proxy_port" in info.value.message
    assert tls_shop(env_extra="proxy_tls_port = 8443\nshared_proxy_tls_port = 8444").environment(
        "local").shared_proxy_tls_port == 8444


def test_another_shared_https_port_than_the_running_one_is_refused(host, shop_pair):
    ship(tls_shop(), host, 1)
    other = config("other", 8090, '["other.example.com"]', TLS_FILES.replace("SHOP_", "OTHER_"),
                   "proxy_tls_port = 8453\nshared_proxy_tls_port = 8444")
    from deployctl.services.edge.shared_proxy import SharedProxy

    with pytest.raises(ConfigError) as info:
        SharedProxy(host, Env.resolve(other, "local"), Recorder()).check_claims()
    assert "environments.local.shared_proxy_tls_port: 8444, but the shared proxy edge on local publishes 443" in \
        info.value.message


def test_an_image_without_the_stream_module_is_said_with_what_to_do(host, shop_pair):
    ship(BLOG, host, 1)  # the shared proxy runs, HTTP only
    host.faults.append(Fault("run", r"nginx -t -q -c /etc/deployctl/shared-proxy/nginx.test.conf", 
                             effect=lambda argv: CommandResult(1, "", 'nginx: [emerg] unknown directive "stream" in '
                                                                      f"{plan.MOUNT}/{plan.TEST_FILE}:56")))
    with pytest.raises(DeployError) as info:
        ship(tls_shop(), host, 1)
    assert "nothing reloaded" in info.value.message and "libnginx-mod-stream" in info.value.hint
    assert not [p for p in host.files if "__shop__" in p and p.startswith(SHARED)]  # staged files gone
    assert "\nstream {" not in host.text(f"{SHARED}/nginx.conf")


def test_a_renewal_reloads_only_the_apps_own_proxy_and_remove_takes_its_sni_lines_out(host, shop_pair, monkeypatch):
    from deployctl.services.edge import tls
    from tests.support.pebble import TestCa

    ship(tls_shop(), host, 1)
    shared_reloads = len(runs(host, "nginx -s reload -c /etc/deployctl/shared-proxy/nginx.conf"))
    chain, key = TestCa().issue(["shop.example.com"])  # a new pair in the secret source
    monkeypatch.setenv("SHOP_TLS_CHAIN", chain.decode())
    monkeypatch.setenv("SHOP_TLS_KEY", key.decode())
    own_reloads = len(runs(host, "nginx -s reload -c /etc/deployctl/proxy/nginx.conf"))
    done = tls.ensure_locked(Env.resolve(tls_shop(), "local"), [host], Recorder())
    assert "installed on local" in done
    assert len(runs(host, "nginx -s reload -c /etc/deployctl/proxy/nginx.conf")) == own_reloads + 1
    assert len(runs(host, "nginx -s reload -c /etc/deployctl/shared-proxy/nginx.conf")) == shared_reloads
    remove_environment(Env.resolve(tls_shop(), "local"), Recorder(), connectors=[host], volumes=False)
    assert not [p for p in host.files if p.startswith(f"{SHARED}/routes/")]


# -- the client's address over HTTPS: the PROXY protocol -------------------------------------------

PROXY_DIR = "/srv/state/shop/local/proxy"


def _as_an_earlier_deployctl_left_it(host: FakeHost, chain: bytes, key: bytes) -> str:
    """shop's state as a deployctl before the PROXY protocol wrote it: HTTPS published on every
    address, a plain listener, its route passed on plain (*.sni)."""
    from deployctl.plan.edge.proxy_config import PROXY_MOUNT

    host.containers["shop-local-proxy"].published = ["8080:80", "8443:443"]
    plain = tc.version_of(chain)
    for name, data in ((tc.CHAIN_FILE, chain), (tc.KEY_FILE, key),
                       (tc.SERVER_CONF, tc.server_conf(PROXY_MOUNT, plain, 443, False).encode())):
        host.put_file(f"{PROXY_DIR}/tls/{plain}/{name}", data)
    host.links[f"{PROXY_DIR}/tls/live"] = plain
    routes = f"{SHARED}/routes"
    del host.files[f"{routes}/z__shop__local.sni-pp"]
    host.put_file(f"{routes}/z__shop__local.sni",
                  plan.render_sni(plan.Route("shop", "local", ("shop.example.com",), None, 8080, 8443)).encode())
    return plain


def test_an_app_an_earlier_deployctl_put_behind_the_shared_proxy_moves_to_the_proxy_protocol_on_its_next_deploy(
        host, shop_pair):
    ship(tls_shop(), host, 1)
    _as_an_earlier_deployctl_left_it(host, *shop_pair)
    # Another HTTPS app of an earlier deployctl on the same shared proxy: passed on plain
    # until its own next deploy, whatever shop does.
    old = plan.render_sni(plan.Route("old", "local", ("old.example.com",), None, 9080, 9443))
    host.put_file(f"{SHARED}/routes/z__old__local.sni", old.encode())
    shared_reloads = len(runs(host, "nginx -s reload -c /etc/deployctl/shared-proxy/nginx.conf"))
    events = Recorder()
    deploy(Env.resolve(tls_shop(), "local"), images("shop", 2), {}, events, connectors=[host], now=1_780_000_000 + 120)
    said = [e.text for e in events.of(__import__("deployctl.events", fromlist=["Message"]).Message)]
    assert any("publishing HTTP on port 8080 on the host's loopback only and HTTPS on port 8443 on the host's "
               "loopback only" in t for t in said), said
    assert host.containers["shop-local-proxy"].published == ["127.0.0.1:8080:80", "127.0.0.1:8443:443"]
    proxied = tc.version_of(shop_pair[0], proxy_protocol=True)
    assert host.links[f"{PROXY_DIR}/tls/live"] == proxied
    assert tc.takes_proxy_protocol(host.text(f"{PROXY_DIR}/tls/{proxied}/server.conf"))
    assert said[-1].endswith("(from the secret source): installed on local"), said  # the version of its kind
    # Its switch came before that install, while HTTPS was plain: over HTTP the client's
    # address was not taken from X-Forwarded-For (an HTTPS client could have forged it), said.
    assert not client_address.has_block(host.text(f"{PROXY_DIR}/nginx.conf"))
    assert any("takes no PROXY protocol yet" in t for t in said), said
    # The route followed the listener (one reload of the shared proxy); the other app's is as it was.
    assert sorted(p.rpartition("/")[2] for p in host.files if p.startswith(f"{SHARED}/routes/")) == [
        "z__old__local.sni", "z__shop__local.map", "z__shop__local.sni-pp"]
    assert host.text(f"{SHARED}/routes/z__old__local.sni") == old
    assert len(runs(host, "nginx -s reload -c /etc/deployctl/shared-proxy/nginx.conf")) == shared_reloads + 1
    # The next deploy and a rollback change neither the anchor nor the shared proxy.
    anchor = host.containers["shop-local-proxy"]
    ship(tls_shop(), host, 3)
    from deployctl.services.lifecycle.rollback import rollback

    rollback(Env.resolve(tls_shop(), "local"), Recorder(), connectors=[host])
    assert host.containers["shop-local-proxy"] is anchor and anchor.published == ["127.0.0.1:8080:80", "127.0.0.1:8443:443"]
    assert len(runs(host, "nginx -s reload -c /etc/deployctl/shared-proxy/nginx.conf")) == shared_reloads + 1
    assert host.links[f"{PROXY_DIR}/tls/live"] == proxied
    assert client_address.has_block(host.text(f"{PROXY_DIR}/nginx.conf"))  # the listener takes it now


def test_a_listener_nginx_refuses_to_move_keeps_its_plain_route_and_says_so(host, shop_pair):
    """An image without the realip module, say: the plain listener stays live, and so does
    the route that passes HTTPS on to it plain (never the PROXY header to a listener that
    would read it as a broken TLS hello)."""
    from deployctl.services.edge.tls import CertificateError

    ship(tls_shop(), host, 1)
    plain = _as_an_earlier_deployctl_left_it(host, *shop_pair)
    host.faults.append(Fault("run", r"nginx -t -q -c /etc/deployctl/proxy/nginx.conf",
                             effect=lambda argv: CommandResult(1, "", 'nginx: [emerg] unknown directive '
                                                                      '"set_real_ip_from"')))
    with pytest.raises(CertificateError) as info:
        ship(tls_shop(), host, 2)
    assert info.value.exit_code == ExitCode.CERTIFICATE and "set_real_ip_from" in info.value.message
    assert host.links[f"{PROXY_DIR}/tls/live"] == plain
    assert sorted(p.rpartition("/")[2] for p in host.files if p.startswith(f"{SHARED}/routes/")) == [
        "z__shop__local.map", "z__shop__local.sni"]
    assert not client_address.has_block(host.text(f"{PROXY_DIR}/nginx.conf"))


def test_an_app_not_behind_a_shared_proxy_listens_and_publishes_as_before(host, shop_pair):
    alone = config("shop", 8080, '["shop.example.com"]', TLS_FILES, "proxy_tls_port = 8443", shared=False)
    ship(alone, host, 1)
    version = tc.version_of(shop_pair[0])
    assert host.links[f"{PROXY_DIR}/tls/live"] == version
    assert not tc.takes_proxy_protocol(host.text(f"{PROXY_DIR}/tls/{version}/server.conf"))
    assert "real_ip" not in host.text(f"{PROXY_DIR}/tls/{version}/server.conf")
    assert host.containers["shop-local-proxy"].published == ["8080:80", "8443:443"]
    assert not runs(host, "network inspect --format {{range .IPAM.Config}}{{.Gateway}}")


def test_a_good_acme_certificate_is_installed_again_listening_for_the_proxy_protocol_without_asking_the_ca(
        host, shop_pair):
    from deployctl.services.edge.tls import EnvironmentTls

    ship(tls_shop(), host, 1)
    plain = _as_an_earlier_deployctl_left_it(host, *shop_pair)
    acme = config("shop", 8080, '["shop.example.com"]',
                  'tls = "acme"\nacme_email = "ops@example.com"\nacme_directory = "https://ca.invalid/dir"',
                  "proxy_tls_port = 8443")
    done = EnvironmentTls(Env.resolve(acme, "local"), [host], Recorder()).ensure()  # ca.invalid: never asked
    assert "no renewal needed; HTTPS listening for the shared proxy's PROXY protocol on local" in done
    proxied = tc.version_of(shop_pair[0], proxy_protocol=True)
    assert host.links[f"{PROXY_DIR}/tls/live"] == proxied and proxied != plain
    assert host.text(f"{PROXY_DIR}/tls/{proxied}/{tc.KEY_FILE}") == shop_pair[1].decode()
    assert EnvironmentTls(Env.resolve(acme, "local"), [host], Recorder()).ensure().endswith("no renewal needed")


# -- the client's address over HTTP: X-Forwarded-For from the gateway only ----------------------------

def test_the_client_address_block_exact_in_location_slash_and_idempotent():
    from deployctl.plan.edge.proxy_config import render_proxy_config
    from deployctl.plan.lifecycle.release_spec import ProxySpec

    rendered = render_proxy_config(ProxySpec("nginx:x", False), "r1", {"r1": "web-r1:8000"})
    added = client_address.with_client_from(rendered, ("172.20.0.1",))
    assert added.replace(client_address.block(("172.20.0.1",)), "") == rendered
    assert client_address.block(("172.20.0.1",)) == (
        "            # deployctl: the client's address over HTTP from the shared proxy (begin)\n"
        "            set_real_ip_from 172.20.0.1;\n"
        "            real_ip_header X-Forwarded-For;\n"
        "            real_ip_recursive off;\n"
        "            # deployctl: the client's address over HTTP from the shared proxy (end)\n")
    location = added.index("        location / {\n")
    assert added.index(client_address.BEGIN) == location + len("        location / {\n")  # not at server level
    assert client_address.with_client_from(added, ("172.20.0.1",)) == added  # a put-back, a re-route
    assert client_address.with_client_from(added, ("172.21.0.1",)).count("set_real_ip_from") == 1
    assert client_address.without(added) == rendered and client_address.with_client_from(added, ()) == rendered


def test_behind_the_shared_proxy_http_takes_the_client_from_the_gateway_only_and_an_app_alone_is_unchanged(host):
    from deployctl.plan.lifecycle.switch_plan import proxy_config_for
    from deployctl.services.lifecycle.rollback import rollback

    ship(SHOP, host, 1)
    # Published on the host's loopback only: from anywhere else a connection reaches nginx from the
    # same gateway (Docker's proxy) and could send an X-Forwarded-For it would believe.
    assert host.containers["shop-local-proxy"].published == ["127.0.0.1:8080:80"]
    live = host.text("/srv/state/shop/local/proxy/nginx.conf")
    gateway = str(next(__import__("ipaddress").ip_network(host.subnets["shop-local"]).hosts()))
    assert client_address.block((gateway,)) in live and live.count("set_real_ip_from") == 1
    # As an earlier deployctl left it (HTTP on every address): the next deploy starts the anchor
    # again on loopback, once, and says so.
    anchor = host.containers["shop-local-proxy"]
    anchor.publish, anchor.published = "8080:80", ["8080:80"]
    events = Recorder()
    deploy(Env.resolve(SHOP, "local"), images("shop", 2), {}, events, connectors=[host], now=1_780_000_000 + 120)
    assert host.containers["shop-local-proxy"].published == ["127.0.0.1:8080:80"]
    said = [e.text for e in events.of(__import__("deployctl.events", fromlist=["Message"]).Message)]
    assert any(t.startswith("publishing HTTP on port 8080 on the host's loopback only: the proxy shop-local-proxy "
                            "starts again (one-time") for t in said), said
    rollback(Env.resolve(SHOP, "local"), Recorder(), connectors=[host])  # every configuration a switch writes has it
    assert client_address.block((gateway,)) in host.text("/srv/state/shop/local/proxy/nginx.conf")
    # An app not behind a shared proxy: the configuration exactly as rendered, no inspect of its network.
    other = FakeHost("other", images=[PROXY_IMAGE, "sha256:shop1"])
    alone = config("shop", 8080, '["shop.example.com"]', shared=False)
    ship(alone, other, 1)
    assert other.containers["shop-local-proxy"].published == ["8080:80"]
    from deployctl.plan.lifecycle.release_spec import ReleaseSpec
    from deployctl.services.lifecycle.host_state import HostState

    recorded = HostState(other, Env.resolve(alone, "local").layout).history().records[-1].spec
    spec = ReleaseSpec.from_dict(recorded)  # the release as recorded
    assert other.text("/srv/state/shop/local/proxy/nginx.conf") == proxy_config_for(spec)
    assert not [t for c, t in other.calls if c == "run" and "{{.Gateway}}" in t]
