"""An `nginx -t` that cannot resolve an upstream says why: the container it names crashed,
is between two restarts, or is gone (the fleet crash drill's race said only "host not found
in upstream")."""

from __future__ import annotations

import pytest

from deployctl.adapters.connector import CommandResult
from deployctl.errors import DeployError
from deployctl.plan.edge.nginx_errors import unresolved_upstreams
from deployctl.plan.lifecycle.names import Names, StateLayout
from deployctl.services.edge.proxy import HostProxy
from tests.support.fake_host import Container, FakeHost, Fault

REFUSED = ('nginx: [emerg] host not found in upstream "shop-production-20261206-x-frontend-1:8080" in '
           '/etc/nginx/nginx.conf:14\nnginx: [emerg] host not found in upstream "shop-cache" in '
           '/etc/nginx/nginx.conf:20\nnginx: [emerg] host not found in upstream '
           '"shop-production-20261206-x-frontend-1:8080" in /etc/nginx/nginx.conf:31\n'
           "nginx: configuration file /etc/nginx/nginx.conf test failed")


def test_the_names_nginx_could_not_resolve_are_read_once_each_without_their_port():
    assert unresolved_upstreams(REFUSED) == ["shop-production-20261206-x-frontend-1", "shop-cache"]
    assert unresolved_upstreams('nginx: [emerg] unknown directive "proxy_pas" in /etc/nginx/nginx.conf:3') == []


def _proxy(host: FakeHost) -> HostProxy:
    names = Names("shop", "production")
    return HostProxy(host, names, StateLayout("/srv/deployctl", "shop", "production"), lambda event: None)


def test_a_refused_configuration_says_which_upstream_container_crashed_and_which_is_gone():
    host = FakeHost("h1", Fault("run", r"nginx -t", effect=lambda argv: CommandResult(1, "", REFUSED)))
    host.containers["shop-production-20261206-x-frontend-1"] = Container(
        "shop-production-20261206-x-frontend-1", "shop/frontend:x", {}, {}, status="restarting", exit_code=3)
    with pytest.raises(DeployError) as raised:
        _proxy(host)._proxy_command(["sh", "-c", "nginx -t && mv staged nginx.conf && nginx -s reload"], "the new configuration")
    message = raised.value.message
    assert "host not found in upstream" in message, message
    assert ("shop-production-20261206-x-frontend-1: it exited with code 3 and its restart policy is "
            "restarting it") in message, message
    assert "shop-cache: the container is gone" in message, message


def test_a_refusal_that_names_no_upstream_asks_nothing_more_of_the_host():
    host = FakeHost("h1", Fault("run", r"nginx -t", effect=lambda argv: CommandResult(1, "", "nginx: [emerg] bad")))
    with pytest.raises(DeployError) as raised:
        _proxy(host)._proxy_command(["sh", "-c", "nginx -t"], "the new configuration")
    assert raised.value.message.endswith("(nothing reloaded): nginx: [emerg] bad")
    assert not [text for call, text in host.calls if "inspect" in text]
