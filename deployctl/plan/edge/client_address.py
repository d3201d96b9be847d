"""The client's address over plain HTTP behind a host's shared proxy (docs/proxy.md, "The
client's address"), as text added to the app's own proxy configuration.

The shared proxy (on the host's network) appends the client's address to X-Forwarded-For
and connects to the app's own proxy on 127.0.0.1:<proxy_port>, which Docker forwards from
the app network's gateway. So the app's nginx believes X-Forwarded-For from that gateway
alone (`set_real_ip_from`), and takes its **last** entry, the one the shared proxy added:
`real_ip_recursive off` on purpose. With it on, nginx would skip trusted addresses from
the right, and a client whose own address is the gateway (a process on the host asking the
shared proxy on the bridge address) would have its forged entries believed.

Why in `location /` and not at server level: the app's HTTPS listener is in the same
`server` block (tls_config.server_conf), and behind a shared proxy it sets
`real_ip_header proxy_protocol` there; nginx takes one `real_ip_header` per level. The
realip module runs once per request, first with the server level's settings (before a
location is chosen) and then, if that changed nothing, with the location's. An HTTPS
request's PROXY header is taken first (an address changed once is not changed again, so a
client's own X-Forwarded-For over HTTPS is never believed); a plain HTTP request has no
PROXY header, so the server level leaves it, and `location /` takes X-Forwarded-For.
Where the live HTTPS listener does not take the PROXY protocol (an app an earlier deployctl
put behind the shared proxy, until its certificate is installed again), HTTPS connections
also come from the gateway with nothing to tell the client by, so the block is left out
(services/edge/proxy.HostProxy.route decides; this module only writes the text).

The nginx docs: `set_real_ip_from`, `real_ip_header`, `real_ip_recursive` are allowed in
http, server and location.
"""

from __future__ import annotations

LOCATION = "        location / {\n"
BEGIN = "            # deployctl: the client's address over HTTP from the shared proxy (begin)\n"
END = "            # deployctl: the client's address over HTTP from the shared proxy (end)\n"


def block(gateways: tuple[str, ...]) -> str:
    return (BEGIN
            + "".join(f"            set_real_ip_from {address};\n" for address in gateways)
            + "            real_ip_header X-Forwarded-For;\n"
            + "            real_ip_recursive off;\n"
            + END)


def without(config: str) -> str:
    """`config` without the block (as rendered: plan/edge/proxy_config.py)."""
    start = config.find(BEGIN)
    if start < 0:
        return config
    end = config.index(END, start) + len(END)
    return config[:start] + config[end:]


def with_client_from(config: str, gateways: tuple[str, ...]) -> str:
    """`config` whose `location /` believes X-Forwarded-For from `gateways` only (none: the
    block removed). The same text twice gives the same file (a put-back, a re-route)."""
    config = without(config)
    if not gateways:
        return config
    if config.count(LOCATION) != 1:
        raise ValueError("the proxy configuration has no single `location /` to take the client's address in")
    return config.replace(LOCATION, LOCATION + block(gateways), 1)


def has_block(config: str | bytes | None) -> bool:
    if not config:
        return False
    return (BEGIN.encode() if isinstance(config, bytes) else BEGIN) in config  # type: ignore[operator]
