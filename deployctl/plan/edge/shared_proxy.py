"""Several apps on one host: the host's shared proxy, as data (docs/proxy.md, "Several apps on
one host").

Two tiers. Each app keeps its own proxy exactly as with one app per host (its anchor and
nginx on its own port, the switch, canary, standby, maintenance, shadow, guard: all per
app, under the app's own lock), and the host's shared proxy, an nginx on the host's
network publishing `shared_proxy_port` (80), sends each request to the app whose
`[proxy] hosts` (and `path_prefix`) it matches, at that app's own proxy on 127.0.0.1.
So a deploy, rollback or canary of one app never reloads the shared proxy (its route, a
host name to a port, does not change with a release), and a configuration of one app that
nginx refuses is refused by that app's own nginx: the shared proxy and every other app
never see it. The shared proxy changes only when an app's route does (first deploy, new
`hosts`, remove), and then under its own lock, tested whole with `nginx -t` before the
reload.

Kamal-proxy (basecamp/kamal-proxy) routes several apps in one process by host and path
prefix (`kamal-proxy deploy svc --host a.example.com --path-prefix /api`), refusing a host
another service routes; deployctl does the same routing in nginx and refuses the same
conflicts, but keeps each app's release switching out of the shared process.

HTTPS passes through (docs/proxy.md, "HTTPS through the shared proxy"): an app with `tls`
on keeps terminating TLS in its own proxy (its certificates, ACME account and renewals as
with one app per host), and the shared proxy's `stream` server on `shared_proxy_tls_port`
reads the client's SNI (`ssl_preread`, nothing decrypted) and splices the connection to
that app's own HTTPS port on 127.0.0.1. So the shared proxy holds no private key, and a
certificate renewal reloads the app's own nginx only. Routing by name alone, an HTTPS app
has its host names whole: a `path_prefix` with it is refused, and so is a host name another
app routes with any prefix (HTTP and HTTPS would reach different apps). HTTP keeps routing
by Host, which also carries the ACME HTTP-01 challenges and the app's 301s to it.
(kamal-proxy terminates TLS itself, with every app's certificate in one process.)
The client's address goes first, in the PROXY protocol, to an app whose listener takes it
(published on the host's 127.0.0.1 only, trusting the app network's gateway only:
plan/edge/tls_config.server_conf); a route says which kind its listener is (SNI_PROXIED or
SNI), so an app an earlier deployctl routed keeps working plain beside the others.

On the host, under `<state_dir>/shared-proxy/<name>/`:
  nginx.conf                 the main configuration: one server on the port, the route map
                             (and, once an HTTPS app is routed, the stream server by SNI)
  routes/<order>__<app>__<env>.map   one app environment's lines of that map
  routes/z__<app>__<env>.sni-pp      an HTTPS app's lines of the SNI map: its own proxy's
                                     HTTPS listener takes the PROXY protocol (the client's address)
  routes/z__<app>__<env>.sni         the same, for a listener that does not take it (yet): passed
                                     on plain (written by an earlier deployctl, or before the
                                     app's certificate was installed listening for it)
  lock/                      mkdir lock while a route changes
The map keys are `$host$uri` regexes; nginx tries regexes in the order it read them, and
the routes are included by one glob (sorted by name), so the file name puts the longer
path prefixes first and routes without a prefix last: the most specific route wins
whatever the apps' names.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from ..lifecycle.names import LABEL_ROLE
from .proxy_config import path_without_query

ROLE = "shared-proxy"
LABEL_SHARED = "io.deployctl.shared-proxy"  # the shared proxy's name
MOUNT = "/etc/deployctl/shared-proxy"
CONFIG_FILE = "nginx.conf"
TEST_FILE = "nginx.test.conf"  # the main configuration with one route staged, for `nginx -t`
ROUTES = "routes"
PID_FILE = "/tmp/deployctl-shared-proxy.pid"
HEALTH_PATH = "/.deployctl-shared-proxy-health"
# On the shared proxy's own 404 (no route for the name): a route change is seen served once
# a request for it gets (or no longer gets) this.
NO_ROUTE_HEADER = "X-Deployctl-No-Route"
_ROUTE_HEADER = re.compile(r"^# route: (\S+) (\S+) (\S+) (\S+)( https)?$", re.M)  # app env host prefix [https]
SNI = ".sni"  # an HTTPS route passed on plain
# An HTTPS route whose app listener takes the PROXY protocol: the shared proxy sends the
# client's address first (docs/proxy.md, "The client's address over HTTPS").
SNI_PROXIED = ".sni-pp"
SNI_KINDS = (SNI, SNI_PROXIED)
# Where a TLS connection whose SNI no app claims goes: a server of the shared proxy itself
# that closes it (the client's handshake fails; no app's certificate is offered for a name
# it is not for).
NO_ROUTE_SOCKET = "unix:/tmp/deployctl-shared-proxy-no-route.sock"
# Where a connection for a route passed on plain goes first: a server of the shared proxy
# itself that takes the PROXY header the public server sends to every route, reads the SNI
# again and passes the connection on without one (render_main).
PLAIN_SOCKET = "unix:/tmp/deployctl-shared-proxy-plain.sock"
# Debian's nginx packages build `stream` as a module loaded from here (libnginx-mod-stream);
# the official nginx images build it in, and have no such folder (a glob matching nothing
# includes nothing). Debian's own nginx.conf includes the same glob.
MODULES_GLOB = "/etc/nginx/modules-enabled/*.conf"


def shared_dir(state_dir: str, name: str) -> str:
    return posixpath.join(state_dir, "shared-proxy", name)


def container_name(name: str) -> str:
    return f"deployctl-shared-proxy-{name}"


def route_file(app: str, env: str, prefix: str | None) -> str:
    """`p<9999 - length>` before `z`: longer prefixes first, no prefix last (see above)."""
    order = f"p{9999 - len(prefix):04d}" if prefix and prefix != "/" else "z"
    return f"{order}__{app}__{env}.map"


def route_glob(app: str, env: str) -> str:
    """Every file of one app environment in the routes folder (its map, its SNI lines, and a
    staged `.next` a killed deployctl left)."""
    return f"*__{app}__{env}.*"


@dataclass(frozen=True)
class Route:
    app: str
    env: str
    hosts: tuple[str, ...]
    prefix: str | None  # None or "/": every path
    port: int  # the app's own proxy on 127.0.0.1
    tls_port: int | None = None  # its own proxy's HTTPS port on 127.0.0.1 (tls on), passed through by SNI
    proxy_protocol: bool = False  # that port's listener takes the PROXY protocol (the client's address)

    @property
    def file(self) -> str:
        return route_file(self.app, self.env, self.prefix)

    @property
    def sni_file(self) -> str | None:
        if self.tls_port is None:
            return None
        return self.file.removesuffix(".map") + (SNI_PROXIED if self.proxy_protocol else SNI)

    def files(self) -> dict[str, str]:
        """Its files in the routes folder, name -> text."""
        files = {self.file: render_route(self)}
        if self.sni_file is not None:
            files[self.sni_file] = render_sni(self)
        return files

    def claims(self) -> set[tuple[str, str]]:
        return {(host.lower(), self.prefix or "/") for host in self.hosts}


def _host_regex(host: str) -> str:
    host = host.lower()
    if host.startswith("*."):
        return r"[^.]+\." + re.escape(host[2:])
    return re.escape(host)


def render_route(route: Route) -> str:
    """The app's lines of the shared proxy's map: `$host$uri` -> its proxy's address."""
    prefix = route.prefix if route.prefix and route.prefix != "/" else ""
    path = re.escape(prefix) + "(/|$)" if prefix else "/"
    https = " https" if route.tls_port is not None else ""
    lines = "".join(f"# route: {route.app} {route.env} {host.lower()} {route.prefix or '/'}{https}\n"
                    for host in route.hosts)
    entries = "".join(f'"~^{_host_regex(host)}{path}" 127.0.0.1:{route.port};\n' for host in route.hosts)
    return f"# Written by deployctl for {route.app} {route.env}; do not edit.\n{lines}{entries}"


def render_sni(route: Route) -> str:
    """An HTTPS app's lines of the shared proxy's SNI map: the name the client asks for ->
    its own proxy's HTTPS port (case-insensitive: SNI is not lowercased as $host is)."""
    assert route.tls_port is not None
    entries = "".join(f'"~*^{_host_regex(host)}$" 127.0.0.1:{route.tls_port};\n' for host in route.hosts)
    how = ", with the PROXY protocol" if route.proxy_protocol else ""
    return f"# Written by deployctl for {route.app} {route.env} (HTTPS passed through by SNI{how}); do not edit.\n{entries}"


def claims_of(text: str) -> list[tuple[str, str, str, str, bool]]:
    """(app, env, host, prefix, https) of a route file's header lines."""
    return [(*m.groups()[:4], m.group(5) is not None) for m in _ROUTE_HEADER.finditer(text)]  # type: ignore[misc]


def conflicts(route: Route, others: dict[str, str]) -> list[str]:
    """Other app environments' files (name -> text) that claim a host and prefix this route
    claims: nginx would send those requests to one of them only, so it is refused. Where
    either routes HTTPS, the host name alone: SNI carries no path, so an HTTPS app answers
    every path of its names and no other app may have one of them."""
    mine = route.claims()
    names = {host for host, _ in mine}
    https = route.tls_port is not None
    found = []
    for text in others.values():
        for app, env, host, prefix, theirs in claims_of(text):
            if (app, env) == (route.app, route.env):
                continue
            if (host, prefix) in mine:
                found.append(f"{host}{'' if prefix == '/' else prefix} is routed to {app} {env}")
            elif (https or theirs) and host in names:
                found.append(f"{host}{'' if prefix == '/' else prefix} is routed to {app} {env}, and with HTTPS "
                             "(passed through by name) a host name belongs to one app whole")
    return sorted(set(found))


def render_main(port: int, routes: list[str] | None = None, tls_port: int | None = None) -> str:
    """The shared proxy's nginx.conf. `routes`: the route files to include, by name, instead
    of the globs (the test configuration of a staged route). `tls_port`: the port HTTPS is
    passed through on by SNI, once an HTTPS app is routed (None: HTTP only)."""
    def included(extension: str) -> str:
        if routes is None:
            return f"        include {MOUNT}/{ROUTES}/*{extension};\n"
        return "".join(f"        include {MOUNT}/{ROUTES}/{name};\n" for name in routes
                       if name.removesuffix(".next").endswith(extension))

    stream = "" if tls_port is None else f"""
# HTTPS passed through, not terminated: the client's SNI picks the app's own proxy, which
# holds its certificate (plan/edge/shared_proxy.py). Nothing here is decrypted.
stream {{
    # Routes passed on plain (*{SNI}: an app listener that does not take the PROXY protocol).
    map $ssl_preread_server_name $deployctl_shared_tls_plain {{
        default "";
{included(SNI)}    }}
    # Routes whose app listener takes the PROXY protocol (*{SNI_PROXIED}): the client's address.
    map $ssl_preread_server_name $deployctl_shared_tls_proxied {{
        default {NO_ROUTE_SOCKET};
{included(SNI_PROXIED)}    }}
    map $deployctl_shared_tls_plain $deployctl_shared_tls_target {{
        "" $deployctl_shared_tls_proxied;
        default {PLAIN_SOCKET};
    }}

    server {{
        listen {tls_port};
        ssl_preread on;
        proxy_pass $deployctl_shared_tls_target;
        # The client's address and port, before its TLS bytes (PROXY protocol v1).
        proxy_protocol on;
        proxy_connect_timeout 5s;
        # As the HTTP side's read timeout: a quiet WebSocket over HTTPS keeps its connection.
        proxy_timeout 3600s;
    }}

    server {{
        listen {PLAIN_SOCKET} proxy_protocol;
        ssl_preread on;
        proxy_pass $deployctl_shared_tls_plain;
        proxy_connect_timeout 5s;
        proxy_timeout 3600s;
    }}

    server {{
        listen {NO_ROUTE_SOCKET} proxy_protocol;
        return "";
    }}
}}
"""
    return f"""# Written by deployctl: the host's shared proxy (docs/proxy.md); do not edit.
# port: {port}
{"" if tls_port is None else f"# tls_port: {tls_port}{chr(10)}"}worker_processes auto;
pid {PID_FILE};
error_log /dev/stderr warn;
include {MODULES_GLOB};

events {{
    worker_connections 4096;
}}

http {{
    server_tokens off;
    # As each app's proxy logs (plan/edge/proxy_config.py): never a query string, which can
    # carry a token, in a log Docker keeps.
{path_without_query()}    log_format deployctl_shared '$remote_addr [$time_iso8601] "$request_method $deployctl_path $server_protocol" '
                                '$status $body_bytes_sent rt=$request_time upstream=$upstream_addr';
    access_log /dev/stdout deployctl_shared;
    # Each app's own proxy checks the body size; the shared one passes any on.
    client_max_body_size 0;
    proxy_http_version 1.1;
    map $http_upgrade $deployctl_shared_connection {{
        default upgrade;
        "" close;
    }}
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $deployctl_shared_connection;
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_read_timeout 3600s;
    proxy_send_timeout 3600s;
    # One connection per request to an app's proxy: a reload of that proxy closes nothing
    # the shared one is about to reuse.
    map "$host$uri" $deployctl_shared_target {{
        default "";
{included(".map")}    }}

    server {{
        listen {port} default_server;
        location = {HEALTH_PATH} {{
            access_log off;
            return 200 "ok\\n";
        }}
        location / {{
            if ($deployctl_shared_target = "") {{
                add_header {NO_ROUTE_HEADER} 1 always;
                return 404 "No app answers for this host name here\\n";
            }}
            proxy_pass http://$deployctl_shared_target;
        }}
    }}
}}
{stream}"""


def probe(route: Route) -> tuple[str, str]:
    """A Host and path the route covers: what the wait after a change asks for."""
    prefix = route.prefix if route.prefix and route.prefix != "/" else ""
    return route.hosts[0].replace("*.", "deployctl-probe."), f"{prefix}/"


def port_of(main: str | bytes | None, key: str = "port") -> int | None:
    """The port a main configuration says it publishes (`key` "tls_port": its HTTPS one)."""
    if not main:
        return None
    text = main.decode(errors="replace") if isinstance(main, bytes) else main
    match = re.search(rf"^# {key}: (\d+)$", text, re.M)
    return int(match.group(1)) if match else None


def stream_missing(nginx_output: str) -> bool:
    """nginx's words for an image without the stream module (or without ssl_preread in it)."""
    return any(f'unknown directive "{word}"' in nginx_output for word in ("stream", "ssl_preread"))


def run_shared_proxy(name: str, image: str, host_dir: str) -> list[str]:
    """The shared proxy: nginx on the host's network (it reaches every app's proxy on
    127.0.0.1, and publishes its port without Docker's proxy), restarted with the engine."""
    return ["docker", "run", "--detach", "--name", container_name(name), "--network", "host",
            "--restart", "unless-stopped", "--label", f"{LABEL_ROLE}={ROLE}", "--label", f"{LABEL_SHARED}={name}",
            "-v", f"{host_dir}:{MOUNT}:ro", "--entrypoint", "nginx", image,
            "-g", "daemon off;", "-c", f"{MOUNT}/{CONFIG_FILE}"]


def test_config(name: str) -> list[str]:
    return ["docker", "exec", container_name(name), "nginx", "-t", "-q", "-c", f"{MOUNT}/{TEST_FILE}"]


def reload(name: str) -> list[str]:
    return ["docker", "exec", container_name(name), "nginx", "-s", "reload", "-c", f"{MOUNT}/{CONFIG_FILE}"]


def list_routes(host_dir: str) -> list[str]:
    return ["find", posixpath.join(host_dir, ROUTES), "-maxdepth", "1", "(", "-name", "*.map",
            *[arg for kind in SNI_KINDS for arg in ("-o", "-name", f"*{kind}")], ")", "-type", "f"]
