"""The proxy's site features, as rendered: WebSockets pass through both proxies (hosts and
a Swarm node) while plain HTTP keeps its keep-alive pool to the upstreams."""

from __future__ import annotations

import re

from deployctl.plan.edge.proxy_config import render_proxy_config
from deployctl.plan.lifecycle.release_spec import ProxySpec
from deployctl.plan.swarm.swarm_proxy import render_swarm_proxy_config

R1, R2 = "20261127-101500-aaaaaaa", "20261127-111500-bbbbbbb"


def _rendered() -> dict[str, str]:
    spec = ProxySpec("nginx", False)
    return {"host": render_proxy_config(spec, R2, {R1: "a:1", R2: "b:1"}),
            "swarm": render_swarm_proxy_config(spec, R2, "shop-frontend", 8000)}


def test_websockets_get_upgrade_and_connection_passed_and_plain_http_keeps_alive():
    for where, text in _rendered().items():
        # An upgrade request gets `Connection: upgrade`; any other `Connection: ""`, which is
        # what lets nginx reuse an upstream connection (keepalive).
        mapping = re.search(r"map \$http_upgrade \$deployctl_connection \{\n\s+default upgrade;\n\s+\"\" \"\";\n\s+\}",
                            text)
        assert mapping, where
        assert "proxy_set_header Upgrade $http_upgrade;" in text, where
        assert "proxy_set_header Connection $deployctl_connection;" in text, where
        assert 'proxy_set_header Connection "";' not in text, where
        assert "proxy_http_version 1.1;" in text, where
    assert text.count("keepalive") == 0  # the Swarm's upstream is a variable: no pool there
    assert _rendered()["host"].count("keepalive 16;") == 2
