"""deployctl's proxy configuration: the whole nginx.conf, rendered from the release's
ProxySpec and the releases it routes to.

deployctl owns it (as Kamal owns kamal-proxy) so that what the switch relies on never
depends on the project: one upstream per release, every response stamped with the release
whose upstream served it (`X-Deployctl-Release`, set per upstream, so the stamp is proof,
not a claim), an access log naming the upstream address, status, timing and release, and
the proxy's own health endpoint. A project's own proxy image extends it through two
include folders (docs/proxy.md); nothing of ours lives there.

The file is mounted from the host as a directory (PROXY_MOUNT) so that a rewrite by rename
is seen inside the container; `nginx -t` then `nginx -s reload` applies it gracefully. A
switch stages the new file beside it and renames it into place only in the command that
reloads (STAGED_FILE), so the file nginx would load next never names a release the switch
did not get to.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from . import maintenance
from ..lifecycle.release_spec import ProxySpec
from ..lifecycle.releases import is_release_id
from .tls_config import http_redirect_map, server_includes

PROXY_MOUNT = "/etc/deployctl/proxy"  # the host's proxy directory, read-only, inside the container
CONFIG_FILE = "nginx.conf"
CONFIG_PATH = f"{PROXY_MOUNT}/{CONFIG_FILE}"
# A switch writes the new configuration here first; one command on the host tests it, renames
# it over CONFIG_FILE and reloads (plan/lifecycle/docker_commands.nginx_swap_and_reload).
STAGED_FILE = f"{CONFIG_FILE}.next"
LIVE_COPY = "nginx.live.conf"  # beside it during a canary: the live-only configuration its watchdog puts back
PID_FILE = "/tmp/deployctl-nginx.pid"
# Beside nginx.conf while the anchor serves with its own nginx (plan/lifecycle/docker_commands.py).
ANCHOR_MARKER = "anchor-serving"
RELEASE_HEADER = "X-Deployctl-Release"
# Where a project's own proxy image adds configuration (the extension point, docs/proxy.md).
HTTP_SNIPPETS = "/etc/deployctl/proxy.d/http/*.conf"
SERVER_SNIPPETS = "/etc/deployctl/proxy.d/server/*.conf"
NO_RELEASE = "none"
STANDBY_FLAG_PREFIX = "standby-"  # in the proxy directory: a flag file, see Standby
_RELEASE_LINE = re.compile(r"^# live: (\S+)$", re.M)
_CANARY_LINE = re.compile(r"^# canary: (\S+) (\d+)%$", re.M)
_STANDBY_LINE = re.compile(r"^# standby: (\S+) (\S+) (\S+)$", re.M)
_SHADOW_LINE = re.compile(r"^# shadow: (\S+) ([A-Z,]+)$", re.M)


@dataclass(frozen=True)
class Standby:
    """The release a configuration can route to without a reload: the one left warm by the
    switch that wrote it (rollout.warm_window). While the file `flag` exists in the proxy
    directory, every request goes to `release` instead of the live one: nginx checks for the
    file per request (a stat), so a rollback inside the warm window is one file created on
    the host, seen by the next request. A reload cannot do that: nginx's master lets the old
    workers accept for 100 ms after starting the new ones, so a reloaded switch reaches all
    the traffic only after the reload's round trip plus those 100 ms (issue 15, 0.3 s).

    `address` is an IP and port, not the container's name: nginx resolves names when it
    loads the file, and a standby whose window ended (its containers stopped) would then
    fail every later load of this file (a reload, the anchor's fallback nginx). A stale IP
    is harmless, as nothing routes to it until the flag exists, and a rollback creates the
    flag only after checking that the address is still the release's. `flag` is unique to
    the render, so a flag left behind never switches a later configuration."""

    release: str
    address: str
    flag: str

    def __post_init__(self) -> None:
        if not re.fullmatch(rf"{STANDBY_FLAG_PREFIX}[A-Za-z0-9_.-]+", self.flag):
            raise ValueError(f"standby flag {self.flag!r}: expected {STANDBY_FLAG_PREFIX}<letters, digits, _.->")


def standby_flag(live: str, standby: str, nonce: str) -> str:
    """A flag name unique to one render (`nonce`: e.g. the time of the switch in ms)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{STANDBY_FLAG_PREFIX}{standby}-from-{live}-{nonce}")


def upstream_name(release: str) -> str:
    return "release_" + re.sub(r"[^A-Za-z0-9_]", "_", release)


def render_proxy_config(proxy: ProxySpec, live: str | None, upstreams: dict[str, str],
                        canary: tuple[str, int] | None = None, standby: Standby | None = None,
                        shadow: "Shadow | None" = None) -> str:
    """`upstreams`: release -> `container:port` of its routed service. `live` is the release
    that gets the traffic (None: none yet; the proxy answers 503 itself). `canary`: (release,
    percent) gets that share of the requests instead, chosen per request (split_clients on
    $request_id: every request is drawn anew, so a client is not pinned to one release, and
    the share holds for any mix of clients; the access log's stamp says who answered).
    `standby`: the release the traffic goes to instead while its flag file exists (Standby);
    not beside a canary, which is itself the way back. `shadow`: the live release answers
    every request and its copies go to the shadow release too (Shadow); only beside a plain
    live route (the shadow window comes before any canary, standby or switch)."""
    if shadow is not None and (canary is not None or standby is not None or live is None):
        raise ValueError("a shadow mirrors a plain live route only (no canary, standby or empty proxy)")
    if standby is not None and (canary is not None or live is None or standby.release == live):
        standby = None
    if standby is not None:
        upstreams = {**upstreams, standby.release: standby.address}
    blocks = "".join(
        f"    upstream {upstream_name(release)} {{\n        server {address};\n        keepalive 16;\n    }}\n"
        for release, address in sorted(upstreams.items())
    )
    stamps = "".join(f"        {upstream_name(release)} {release};\n" for release in sorted(upstreams))
    split = ""
    if canary is not None and live is not None:
        new, share = canary
        # proxy_pass to a variable naming a defined upstream uses that upstream (no resolver),
        # and $proxy_host is still the upstream's name, so the stamp below holds.
        split = (f"    split_clients \"${{request_id}}\" $deployctl_upstream {{\n"
                 f"        {share}% {upstream_name(new)};\n        * {upstream_name(live)};\n    }}\n\n")
        route = "            proxy_pass http://$deployctl_upstream;\n"
    elif standby is not None and live is not None:
        route = (f"            set $deployctl_upstream {upstream_name(live)};\n"
                 f"            if (-f {PROXY_MOUNT}/{standby.flag}) {{\n"
                 f"                set $deployctl_upstream {upstream_name(standby.release)};\n"
                 f"            }}\n"
                 "            proxy_pass http://$deployctl_upstream;\n")
    elif live is not None:
        route = f"{shadow_mirror(shadow)}            proxy_pass http://{upstream_name(live)};\n"
    else:
        route = "            return 503 \"No release deployed yet\\n\";\n"
    return f"""# Written by deployctl on every switch; do not edit (changes are replaced).
# live: {live or NO_RELEASE}
{shadow_line(shadow)}{f"# canary: {canary[0]} {canary[1]}%{chr(10)}" if split else ""}{standby_line(standby)}{MAIN_CONTEXT}
http {{
{http_common(proxy, proxy.connect_timeout)}    # One server per upstream: a failed request is never retried on another release.
    proxy_next_upstream off;
    include {HTTP_SNIPPETS};

{blocks}
{split}{http_redirect_map(proxy.health_path)}
{shadow_map(shadow)}    # The release whose upstream served the response ($proxy_host is the upstream's name
    # in proxy_pass; empty when nginx answered itself, and an empty header is not sent).
    map $proxy_host $deployctl_release {{
        default "";
{stamps}    }}

    server {{
        listen {proxy.listen_port} reuseport;
        # At server level, so a project's snippets that add headers do not hide it.
        add_header {RELEASE_HEADER} $deployctl_release always;
{maintenance.server_block(None)}{health_location(proxy)}{shadow_location(shadow)}{server_includes(PROXY_MOUNT)}        include {SERVER_SNIPPETS};
        location / {{
{maintenance.LOCATION_CHECK}{route}        }}
{maintenance.page_location(PROXY_MOUNT)}    }}
}}
"""


# The top of the file, the same for this proxy and a Swarm node's (plan/swarm/swarm_proxy.py).
MAIN_CONTEXT = f"""worker_processes auto;
pid {PID_FILE};
error_log /dev/stderr warn;

events {{
    worker_connections 4096;
}}
"""


def http_common(proxy: ProxySpec, connect_timeout: float) -> str:
    """The http block's settings both proxies share: the access log the guard and the canary
    read (plan/judging/access_log.py parses this format), the forwarded headers and the timeouts."""
    return f"""    server_tokens off;
    # One line per request: who answered (upstream address and release), how, how fast.
{path_without_query()}    log_format deployctl {log_format('$deployctl_release')};
    access_log /dev/stdout deployctl;
    client_max_body_size {proxy.max_body_size};
{websocket_upgrade()}    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_connect_timeout {_ms(connect_timeout)};
    proxy_read_timeout {_ms(proxy.read_timeout)};
    proxy_send_timeout {_ms(proxy.read_timeout)};
"""


def websocket_upgrade() -> str:
    """HTTP/1.1 to the upstreams, with the client's Upgrade passed on (WebSockets): a request
    that asks for an upgrade gets `Connection: upgrade`, every other one `Connection: ""`,
    which keeps the upstream keep-alive pool (`keepalive 16`) for plain HTTP. An upgraded
    connection stays with the upstream (the release) that accepted it: a reload leaves it on
    the old worker, which exits when it closes; the old release's containers stop after the
    drain (rollout.drain), which closes what is still open (docs/proxy.md, WebSockets)."""
    return """    map $http_upgrade $deployctl_connection {
        default upgrade;
        "" "";
    }
    proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $deployctl_connection;
"""


def path_without_query() -> str:
    """`$deployctl_path`: the request's path as the client sent it, without its query string,
    which can carry tokens (password reset links, API keys in URLs); the access log is the
    proxy container's stdout, kept by Docker and read by anyone with `docker logs`, so what
    it must not hold is never written (plan/judging/access_log.py drops queries as well)."""
    return """    map $request_uri $deployctl_path {
        default $request_uri;
        "~^(?<deployctl_path_only>[^?]*)\\?" $deployctl_path_only;
    }
"""


def log_format(release: str) -> str:
    """The access log's fields (plan/judging/access_log.py parses them), `release` last: the stamp
    map, or a release id as text (the shadow window's copies, Shadow). The request line is
    nginx's `$request` without its query string (`path_without_query`)."""
    return ("""'$remote_addr [$time_iso8601] "$request_method $deployctl_path $server_protocol" $status $body_bytes_sent '\n"""
            """                         'rt=$request_time upstream=$upstream_addr ustatus=$upstream_status '\n"""
            f"""                         'urt=$upstream_response_time release={release}'""")


def health_location(proxy: ProxySpec) -> str:
    """The proxy's own health endpoint (a load balancer's target check), never logged."""
    return f"""        location = {proxy.health_path} {{
            access_log off;
            default_type text/plain;
            return 200 "ok\\n";
        }}
"""


def _ms(seconds: float) -> str:
    """nginx takes whole units only ("2.5s" is refused): milliseconds, always."""
    return f"{round(seconds * 1000)}ms"


def live_release(text: str | bytes | None) -> str | None:
    """Which release a rendered configuration routes to (None: none, or not ours)."""
    match = _header(_RELEASE_LINE, text)
    # Only a release id counts: the file lives on the host, and what it names becomes names.
    return match.group(1) if match and is_release_id(match.group(1)) else None


def _header(line: re.Pattern[str], text: str | bytes | None) -> re.Match[str] | None:
    """One of the comment lines at the top of a rendered configuration (or of a file that
    is not ours: None)."""
    if not text:
        return None
    return line.search(text.decode(errors="replace") if isinstance(text, bytes) else text)


def standby_line(standby: Standby | None) -> str:
    if standby is None:
        return ""
    return (f"# standby: {standby.release} {standby.address} {standby.flag}\n"
            f"# (while {PROXY_MOUNT}/{standby.flag} exists, the traffic goes to {standby.release})\n")


def standby_of(text: str | bytes | None) -> Standby | None:
    """The standby a rendered configuration can switch to by its flag (None: none)."""
    match = _header(_STANDBY_LINE, text)
    if not match or not is_release_id(match.group(1)):
        return None
    try:
        return Standby(match.group(1), match.group(2), match.group(3))
    except ValueError:  # a flag that is no flag of ours: no standby to switch to
        return None


def canary_of(text: str | bytes | None) -> tuple[str, int] | None:
    """The canary a rendered configuration splits to, with its percent (None: no split)."""
    match = _header(_CANARY_LINE, text)
    return (match.group(1), int(match.group(2))) if match and is_release_id(match.group(1)) else None


def config_tag(image: str) -> str:
    """A short, stable tag for the nginx container of an image: the same image keeps its
    container, a new one gets a new container beside the old (a swap without a gap)."""
    return hashlib.sha256(image.encode()).hexdigest()[:10]


# -- the shadow window (docs/release-safety.md): the live release answers, a copy goes to the new

# The internal location the mirror's subrequests go to. nginx needs a URI for `mirror`; this
# one is `internal` (a client asking for it gets a 404 from nginx, not the app), and named so
# that no app is likely to serve it.
SHADOW_LOCATION = "/.deployctl-shadow"
SHADOW_LOG_FORMAT = "deployctl_shadow"
# Methods whose requests carry a body the copy needs (else nginx sends the mirror none).
_BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Shadow:
    """`release` gets a copy of every live request whose method is in `methods`; nginx throws
    its answers away, and logs each one (stamped with `release`, as any upstream's answer) in
    the access log the verdict reads."""

    release: str
    methods: tuple[str, ...]
    # Seconds a copy may take (connect, send, read). nginx finalizes a request only when its
    # mirror subrequest is done: the user has the answer, but a keep-alive connection takes
    # its next request only then, so a slow copy delays that user's next request. This bounds
    # it; a copy cut off is logged as a 504 and counts against the new release.
    timeout: float = 1.0

    def __post_init__(self) -> None:
        if not self.methods or not all(re.fullmatch(r"[A-Z]+", m) for m in self.methods):
            raise ValueError(f"shadow methods {self.methods!r}: expected upper-case HTTP methods")
        if not 0 < self.timeout <= 60:
            raise ValueError(f"shadow timeout {self.timeout!r}: expected seconds in (0, 60]")


def shadow_map(shadow: Shadow | None) -> str:
    """http level: which methods are copied (1) and which are not (0)."""
    if shadow is None:
        return ""
    methods = "".join(f"        {method} 1;\n" for method in shadow.methods)
    return (f"    # The shadow window: requests of these methods are copied to {shadow.release}.\n"
            f"    map $request_method $deployctl_shadow {{\n        default 0;\n{methods}    }}\n"
            f"    log_format {SHADOW_LOG_FORMAT} {log_format(shadow.release)};\n\n")


def shadow_mirror(shadow: Shadow | None) -> str:
    """In the live location: every request is copied to the shadow location (which drops the
    methods not copied); the body goes along only when a copied method carries one."""
    if shadow is None:
        return ""
    body = "on" if any(m in _BODY_METHODS for m in shadow.methods) else "off"
    return f"            mirror {SHADOW_LOCATION};\n            mirror_request_body {body};\n"


def shadow_location(shadow: Shadow | None, upstream: str | None = None, setup: str = "") -> str:
    """Server level: the copy goes to the shadow release with the original URI. Its answer is
    thrown away by nginx; `log_subrequest` writes it to the access log in the usual format,
    stamped with the shadow release, so the verdict tells its answers from the live
    release's. The stamp is the release id as text, not the stamp map: nginx evaluates a map
    once per request and a subrequest shares its parent's values, so whichever of the two
    asked first would stamp both (seen: the live answers logged as the copy's). The copy's
    own header is text too, so nothing here evaluates the map. A method not copied ends
    here, unlogged. `upstream`: where the copy goes (default: the release's upstream block;
    a Swarm node's: its service's tasks by DNS); `setup`: rewrite lines run first."""
    if shadow is None:
        return ""
    limit = f"{max(1, round(shadow.timeout * 1000))}ms"
    return f"""        location = {SHADOW_LOCATION} {{
            internal;
{setup}            if ($deployctl_shadow = 0) {{
                access_log off;
                return 204;
            }}
            log_subrequest on;
            access_log /dev/stdout {SHADOW_LOG_FORMAT};
            add_header {RELEASE_HEADER} {shadow.release} always;
            proxy_connect_timeout {limit};
            proxy_send_timeout {limit};
            proxy_read_timeout {limit};
            proxy_pass {upstream or f"http://{upstream_name(shadow.release)}"}$request_uri;
        }}
"""


def shadow_line(shadow: Shadow | None) -> str:
    return f"# shadow: {shadow.release} {','.join(shadow.methods)}\n" if shadow is not None else ""


def shadow_of(text: str | bytes | None) -> Shadow | None:
    """The shadow a rendered configuration mirrors to (None: none): a configuration left by a
    deployctl killed during its shadow window."""
    match = _header(_SHADOW_LINE, text)
    if not match or not is_release_id(match.group(1)):
        return None
    return Shadow(match.group(1), tuple(match.group(2).split(",")))
