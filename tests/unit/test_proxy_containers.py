"""One `docker ps` tells the switch the anchor, its port and the nginx containers."""

from __future__ import annotations

from deployctl.plan.lifecycle import docker_commands as dc
from deployctl.plan.lifecycle.names import Names
from deployctl.plan.edge.proxy_containers import parse_proxy_listing

LISTING = """\
shop-prod-backend-20261202-010203-0000001|running|service|r/b@sha256:1|
shop-prod-proxy-nginx-6551cbda78|running|proxy-nginx|nginx:1.27-alpine|
shop-prod-proxy-nginx-0000000000|exited|proxy-nginx|nginx:1.25-alpine|
shop-prod-proxy|running|proxy-anchor|nginx:1.27-alpine|0.0.0.0:35081->80/tcp, [::]:35081->80/tcp
"""


def test_the_listing_is_one_docker_ps_of_the_environment():
    assert dc.list_proxy(Names("shop", "prod")) == [
        "docker", "ps", "--all", "--no-trunc", "--format",
        '{{.Names}}|{{.State}}|{{.Label "io.deployctl.role"}}|{{.Image}}|{{.Ports}}',
        "--filter", "label=io.deployctl.app=shop", "--filter", "label=io.deployctl.env=prod"]


def test_anchor_nginx_and_port_from_one_listing():
    seen = parse_proxy_listing(LISTING, "shop-prod-proxy")
    assert seen.anchor is not None and seen.anchor.is_anchor and seen.anchor.state == "running"
    assert seen.anchor.published(80) == 35081
    assert seen.anchor.published(8080) is None  # not the container port it maps
    assert seen.nginx == {"shop-prod-proxy-nginx-6551cbda78": ("running", "nginx:1.27-alpine"),
                          "shop-prod-proxy-nginx-0000000000": ("exited", "nginx:1.25-alpine")}
    assert seen.nginx_state("shop-prod-proxy-nginx-6551cbda78") == "running"
    assert seen.nginx_state("shop-prod-proxy-nginx-ffffffffff") == ""


def test_a_stopped_anchor_publishes_nothing_yet_and_an_earlier_layout_proxy_is_no_anchor():
    stopped = parse_proxy_listing("shop-prod-proxy|exited|proxy-anchor|img|\n", "shop-prod-proxy")
    assert stopped.anchor is not None and stopped.anchor.published(80) is None
    old = parse_proxy_listing("shop-prod-proxy|running|proxy|nginx|127.0.0.1:8080->80/tcp\n", "shop-prod-proxy")
    assert old.anchor is not None and not old.anchor.is_anchor and old.anchor.published(80) == 8080
    assert parse_proxy_listing("", "shop-prod-proxy").anchor is None
