"""The proxy's nginx.conf on a Swarm node: as plan/edge/proxy_config.py's (same stamp header,
access log and health endpoint), but the live release is a set of tasks spread over the
nodes that Swarm moves, adds and replaces. So the upstream is not a fixed address: nginx
asks Docker's embedded DNS (127.0.0.11, on every container of the overlay network) for
`tasks.<service>` at request time, keeping an answer one second, and a task that does not
accept the connection (its node just died, it is being replaced) is skipped for the next
one: a connection error is retried, a request an upstream already received is not.

HTTPS as on a host (plan/edge/tls_config.py): the node's certificate state is included by
the same globs (nothing before the first certificate), the same redirect map beside them.
Maintenance mode as on a host (plan/edge/maintenance.py): the same marked block, check and
page location, so `maintenance on|off` rewrites it and a switch carries it.
"""

from __future__ import annotations

from ..edge.proxy_config import HTTP_SNIPPETS, MAIN_CONTEXT, NO_RELEASE, PROXY_MOUNT, RELEASE_HEADER, SERVER_SNIPPETS, Shadow, Standby, health_location, http_common
from ..edge.proxy_config import standby_line
from ..edge.proxy_config import shadow_line, shadow_location, shadow_map, shadow_mirror
from ..edge import maintenance
from ..edge.tls_config import http_redirect_map, server_includes
from ..lifecycle.release_spec import ProxySpec

DNS = "127.0.0.11"
DNS_VALID = "1s"
# Connecting to a task on the same LAN takes milliseconds; one that does not answer within
# this is on a node that is gone, and the request moves to another task.
MAX_CONNECT_TIMEOUT = 1.0
NEXT_TRIES = 3


def tasks_address(service: str) -> str:
    """Every running task of the service (dnsrr), one A record each."""
    return f"tasks.{service}"


def standby_address(service: str, port: int) -> str:
    """What a Swarm configuration's standby routes to (plan/edge/proxy_config.Standby's
    `address`): the release's tasks by Docker's DNS, asked per request like the live route,
    so a standby whose tasks moved or went is never a stale address loaded with the file."""
    return f"{tasks_address(service)}:{port}"


def render_swarm_proxy_config(proxy: ProxySpec, live: str | None, service: str | None, port: int | None,
                              shadow: tuple[Shadow, str, int] | None = None,
                              canary: tuple[str, int, str, int] | None = None,
                              standby: tuple[Standby, str, int] | None = None) -> str:
    """`service`/`port`: the live release's routed Swarm service (None: nothing deployed
    yet, the proxy answers 503 itself). `shadow`: (the Shadow, its release's routed service,
    port): the live release answers every request, copies go to the new release's tasks
    (the shadow window, plan/edge/proxy_config.Shadow; only beside a live route). `canary`:
    (release, percent, its routed service, port): that share of the requests goes to the
    release's tasks instead, drawn per request as on a host (split_clients on $request_id),
    each answer stamped and logged with the release that answered it. `standby`: (the
    Standby, its routed service, port): the release every request goes to instead while the
    flag file exists in the node's proxy directory, with no reload (a rollback inside the
    warm window raises it on every node at once: services/swarm/swarm_deploy.py), as on a
    host (plan/edge/proxy_config.Standby); only beside a plain live route."""
    if standby is not None and (shadow is not None or canary is not None or live is None or service is None
                                or standby[0].release == live):
        standby = None
    if shadow is not None and (live is None or service is None):
        raise ValueError("a shadow mirrors a live route only")
    if canary is not None and (live is None or service is None):
        raise ValueError("a canary splits a live route only")
    if shadow is not None and canary is not None:
        raise ValueError("a shadow window comes before a canary, not beside it")
    mirror, copies = None, ""
    if shadow is not None:
        mirror, shadow_service, shadow_port = shadow
        # A subrequest shares its parent's variables and runs the server's `set` again (the
        # stamp emptied): the copy sets the live stamp back before anything else, so the
        # user's answer is still logged and stamped as the live release's.
        copies = shadow_location(mirror, f"http://$deployctl_shadow_upstream:{shadow_port}",
                                 f"            set $deployctl_release {live};\n"
                                 f"            set $deployctl_shadow_upstream {tasks_address(shadow_service)};\n")
    split = ""
    if canary is not None and live is not None:
        new, share, new_service, new_port = canary
        # The release drawn for the request, then its tasks by Docker's DNS (a variable
        # proxy_pass asks the resolver, as the plain route does).
        split = (f"    split_clients \"${{request_id}}\" $deployctl_split {{\n"
                 f"        {share}% {new};\n        * {live};\n    }}\n"
                 f"    map $deployctl_split $deployctl_split_upstream {{\n"
                 f"        {new} {tasks_address(new_service)}:{new_port};\n"
                 f"        default {tasks_address(service or '')}:{port};\n    }}\n")
        route = ("            set $deployctl_release $deployctl_split;\n"
                 "            set $deployctl_upstream $deployctl_split_upstream;\n"
                 "            proxy_pass http://$deployctl_upstream;\n")
    elif standby is not None and live is not None and service is not None:
        flagged, standby_service, standby_port = standby
        # nginx stats the flag per request; `set` is all the `if` holds (safe in a location).
        route = (f"            set $deployctl_release {live};\n"
                 f"            set $deployctl_upstream {tasks_address(service)};\n"
                 f"            set $deployctl_port {port};\n"
                 f"            if (-f {PROXY_MOUNT}/{flagged.flag}) {{\n"
                 f"                set $deployctl_release {flagged.release};\n"
                 f"                set $deployctl_upstream {tasks_address(standby_service)};\n"
                 f"                set $deployctl_port {standby_port};\n"
                 f"            }}\n"
                 "            proxy_pass http://$deployctl_upstream:$deployctl_port;\n")
    elif live is not None and service is not None:
        route = (f"{shadow_mirror(mirror)}"
                 f"            set $deployctl_release {live};\n"
                 f"            set $deployctl_upstream {tasks_address(service)};\n"
                 f"            proxy_pass http://$deployctl_upstream:{port};\n")
    else:
        route = "            return 503 \"No release deployed yet\\n\";\n"
    connect = min(proxy.connect_timeout, MAX_CONNECT_TIMEOUT)
    return f"""# Written by deployctl (swarm) on every switch; do not edit (changes are replaced).
# live: {live or NO_RELEASE}
{shadow_line(mirror)}{f"# canary: {canary[0]} {canary[1]}%{chr(10)}" if split else ""}{standby_line(standby[0] if standby else None)}{MAIN_CONTEXT}
http {{
{http_common(proxy, connect)}    # Docker's DNS for the overlay network: the live release's tasks, asked again each second.
    resolver {DNS} valid={DNS_VALID} ipv6=off;
    resolver_timeout 2s;
    # Only to another task of the same release, and only when the request never reached one.
    proxy_next_upstream error timeout;
    proxy_next_upstream_tries {NEXT_TRIES};
    include {HTTP_SNIPPETS};
{http_redirect_map(proxy.health_path)}{shadow_map(mirror)}{split}
    server {{
        listen {proxy.listen_port} reuseport;
        set $deployctl_release "";
        # At server level, as on hosts: an add_header in `location /` would hide the HTTPS
        # snippet's (the certificate's version, HSTS) there. `always`: on 5xx answers too.
        # Without it the verify could not tell the new release's own 500s from nginx
        # settling, and waited out its timeout while users got them (the Swarm test's
        # verify-fails phase).
        add_header {RELEASE_HEADER} $deployctl_release always;
{maintenance.server_block(None)}{health_location(proxy)}{copies}{server_includes(PROXY_MOUNT)}        include {SERVER_SNIPPETS};
        location / {{
{maintenance.LOCATION_CHECK}{route}        }}
{maintenance.page_location(PROXY_MOUNT)}    }}
}}
"""
