"""HTTPS on a host's proxy, as data: where the certificate files live, the nginx snippets
that serve them, and the commands that make a new certificate live (docs/tls.md).

The certificate is host state, not release state: a rollback to a release deployed before
HTTPS (or before the last renewal) must keep serving the current certificate. So the main
nginx.conf (plan/edge/proxy_config.py) never names a certificate; it includes two globs inside
its server, and what they match is the host's:

    <proxy dir>/tls/acme-challenge.conf   tls = "acme": answers /.well-known/acme-challenge/
                                          from <proxy dir>/acme/ (files deployctl places)
    <proxy dir>/tls/live -> v-<hash>      the certificate in use: a symlink to a version
    <proxy dir>/tls/v-<hash>/             fullchain.pem, privkey.pem (0600), server.conf
                                          (listen 443 ssl http2, protocols, ciphers, the
                                          HTTP->HTTPS redirect, HSTS)

Nothing matches before the first certificate: the server answers HTTP only, as before.
A new certificate is staged as a new version directory (the live one untouched), then the
`live` link is renamed over (atomic), nginx -t checks it and nginx reloads; a refusal puts
the link back (services/edge/tls.py). A version is named by its content, so a rollback of the
link always points at exactly the files that were live.
"""

from __future__ import annotations

import hashlib
import ipaddress
import posixpath
import re


TLS_DIR = "tls"
LIVE_LINK = "live"
CHALLENGE_CONF = "acme-challenge.conf"
CHALLENGE_ROOT = "acme"  # <proxy dir>/acme/.well-known/acme-challenge/<token>
CHALLENGE_PATH = "/.well-known/acme-challenge/"
CHAIN_FILE, KEY_FILE, SERVER_CONF = "fullchain.pem", "privkey.pem", "server.conf"
TLS_LISTEN_PORT = 443  # inside the proxy's network namespace; the host publishes proxy_tls_port
VERSION_PREFIX = "v-"
# Mozilla's "intermediate" profile (TLS 1.2 + 1.3, forward secrecy, AEAD only): every browser
# and client of the last ten years. TLS 1.3 suites are not configurable here (all are good).
CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384",
])
HSTS_MAX_AGE = 63072000  # two years, as hstspreload.org asks
# On every answer of a server with a certificate: the version it serves, so an install knows
# when nginx's new workers (a reload is asynchronous) serve the new certificate.
CERTIFICATE_HEADER = "X-Deployctl-Certificate"
# On deployctl's own HTTP requests through the proxy: answered by the release, never
# redirected to HTTPS (http_redirect_map).
NO_REDIRECT_HEADER = "X-Deployctl-No-Redirect"


def tls_dir(proxy_dir: str) -> str:
    return posixpath.join(proxy_dir, TLS_DIR)


def version_dir(proxy_dir: str, version: str) -> str:
    return posixpath.join(proxy_dir, TLS_DIR, version)


def challenge_file(proxy_dir: str, token: str) -> str:
    return posixpath.join(proxy_dir, CHALLENGE_ROOT, CHALLENGE_PATH.strip("/"), token)


# What a version listening for the PROXY protocol adds to its chain's hash (version_of).
PROXY_PROTOCOL_SALT = b"\nlisten: proxy_protocol"


def version_of(chain_pem: bytes, proxy_protocol: bool = False) -> str:
    """A version directory's name: its certificate chain's hash (public: it is also sent as
    CERTIFICATE_HEADER), so the same certificate is the same version. `proxy_protocol`: its
    server.conf listens for the shared proxy's PROXY protocol (server_conf), a listener of
    another kind, so another version: moving a live certificate to it (or back) is a staged
    install like any other (a new folder, the link renamed, nginx -t, reload)."""
    return VERSION_PREFIX + hashlib.sha256(chain_pem + (PROXY_PROTOCOL_SALT if proxy_protocol else b"")).hexdigest()[:16]


def server_includes(mount: str) -> str:
    """The lines the main configuration's server block holds (plan/edge/proxy_config.py): the
    host's HTTPS and challenge snippets; a glob that matches nothing includes nothing."""
    return (f"        # HTTPS and ACME challenge answers as this host's certificate state says\n"
            f"        # (plan/edge/tls_config.py); before the first certificate these include nothing.\n"
            f"        include {mount}/{TLS_DIR}/*.conf;\n"
            f"        include {mount}/{TLS_DIR}/{LIVE_LINK}/*.conf;\n")


def http_redirect_map(health_path: str) -> str:
    """In the http block: which requests the HTTPS snippet redirects (it is the only user).
    Over HTTP everything but the ACME challenges and the proxy's own health check, which a
    load balancer asks over HTTP, and deployctl's own requests (NO_REDIRECT_HEADER): the
    switch's verify, `status` and maintenance's wait ask the release over HTTP on the host,
    and a 301 (nginx's own answer, no release stamp) proves nothing. A client sending that
    header over HTTP gets only its own request answered over HTTP, as it asked; browsers
    (HSTS, Secure cookies) are not concerned."""
    return (f"    # HTTP -> HTTPS once this host has a certificate (its tls/live/server.conf uses this);\n"
            f"    # ACME challenges and the proxy's health check stay on HTTP.\n"
            f"    map \"$scheme:$uri\" $deployctl_to_https_by_path {{\n"
            f"        default 0;\n"
            f"        \"~^http:{_regex(CHALLENGE_PATH)}\" 0;\n"
            f"        \"http:{health_path}\" 0;\n"
            f"        \"~^http:\" 1;\n"
            f"    }}\n"
            f"    # deployctl's own checks of the release over HTTP are answered, not redirected.\n"
            f"    map $http_{NO_REDIRECT_HEADER.lower().replace('-', '_')} $deployctl_to_https {{\n"
            f"        default $deployctl_to_https_by_path;\n"
            f"        \"1\" 0;\n"
            f"    }}\n")


def _regex(path: str) -> str:
    return path.replace(".", r"\.")


def challenge_conf(mount: str) -> str:
    """tls = "acme": the HTTP-01 answers, files under <proxy dir>/acme/ (read-only mount)."""
    return (f"# Written by deployctl (tls = \"acme\"): HTTP-01 challenge answers, placed per order.\n"
            f"location ^~ {CHALLENGE_PATH} {{\n"
            f"    root {mount}/{CHALLENGE_ROOT};\n"
            f"    default_type text/plain;\n"
            f"    try_files $uri =404;\n"
            f"}}\n")


def server_conf(mount: str, version: str, published_port: int, hsts: bool,
                proxy_protocol_from: tuple[str, ...] = ()) -> str:
    """A version's HTTPS snippet: inside the main server block, so HTTPS serves exactly the
    routes HTTP does (one set of locations, one release stamp).

    `proxy_protocol_from`: the app is behind a host's shared proxy (docs/proxy.md), which
    passes HTTPS through by SNI and tells the client's address in a PROXY protocol header
    first; these addresses (the app network's gateway: where a connection to the anchor's
    loopback-published port comes from) are the only ones trusted to say it. The listener
    then takes only such connections; `real_ip_header` makes the client's address
    $remote_addr (the access log, X-Real-IP, X-Forwarded-For). Requests on the HTTP
    listener carry no PROXY header, and the realip module leaves them as they are."""
    where = f"{mount}/{TLS_DIR}/{version}"
    port = "" if published_port == 443 else f":{published_port}"
    hsts_line = (f"add_header Strict-Transport-Security \"max-age={HSTS_MAX_AGE}\" always;\n" if hsts else "")
    listen = f"listen {TLS_LISTEN_PORT} ssl http2 reuseport{PROXY_PROTOCOL_LISTEN if proxy_protocol_from else ''};\n"
    real_ip = ("# The client's address from the shared proxy's PROXY protocol header, trusted from it only.\n"
               + "".join(f"set_real_ip_from {address};\n" for address in proxy_protocol_from)
               + "real_ip_header proxy_protocol;\n") if proxy_protocol_from else ""
    return (f"# Written by deployctl: HTTPS with the certificate {version}.\n"
            f"{listen}{real_ip}"
            f"ssl_certificate {where}/{CHAIN_FILE};\n"
            f"ssl_certificate_key {where}/{KEY_FILE};\n"
            f"ssl_protocols TLSv1.2 TLSv1.3;\n"
            f"ssl_ciphers {CIPHERS};\n"
            f"ssl_prefer_server_ciphers off;\n"
            f"ssl_session_cache shared:deployctl_tls:10m;\n"
            f"ssl_session_timeout 1d;\n"
            f"ssl_session_tickets off;\n"
            f"add_header {CERTIFICATE_HEADER} {version} always;\n"
            f"if ($deployctl_to_https) {{\n"
            f"    return 301 https://$host{port}$request_uri;\n"
            f"}}\n"
            f"{hsts_line}")


PROXY_PROTOCOL_LISTEN = " proxy_protocol"
_PROXY_PROTOCOL_LINE = re.compile(rf"^listen {TLS_LISTEN_PORT} .*{PROXY_PROTOCOL_LISTEN};$", re.M)


def takes_proxy_protocol(server_conf_text: bytes | str | None) -> bool:
    """A version's server.conf listens for the PROXY protocol (what the shared proxy must
    then speak to it: services/edge/shared_proxy.py reads the live one)."""
    if not server_conf_text:
        return False
    text = server_conf_text.decode(errors="replace") if isinstance(server_conf_text, bytes) else server_conf_text
    return _PROXY_PROTOCOL_LINE.search(text) is not None


def gateways(inspect_output: str) -> tuple[str, ...]:
    """The gateways `docker_commands.network_gateways` lists (`GATEWAY|SUBNET ` per address
    range); a range Docker names no gateway for has its subnet's first address, Docker's
    default one."""
    found = []
    for entry in inspect_output.split():
        gateway, _, subnet = entry.partition("|")
        if not gateway and subnet:
            try:
                gateway = str(next(ipaddress.ip_network(subnet, strict=False).hosts()))
            except (ValueError, StopIteration):
                continue
        if gateway and gateway not in found:
            found.append(gateway)
    return tuple(found)


def link_live(proxy_dir: str, version: str) -> list[str]:
    """The live link renamed over in one step (`mv -T` of a new link: atomic, never absent)."""
    folder = tls_dir(proxy_dir)
    return ["sh", "-c", f"ln -sfn {version} {folder}/{LIVE_LINK}.next && "
                        f"mv -fT {folder}/{LIVE_LINK}.next {folder}/{LIVE_LINK}"]


def read_live(proxy_dir: str) -> list[str]:
    return ["readlink", posixpath.join(tls_dir(proxy_dir), LIVE_LINK)]


def nginx_test(nginx: str, config: str) -> list[str]:
    return ["docker", "exec", nginx, "nginx", "-t", "-q", "-c", config]


def nginx_reload(nginx: str, config: str) -> list[str]:
    return ["docker", "exec", nginx, "nginx", "-s", "reload", "-c", config]


def prune_versions(proxy_dir: str, keep: list[str]) -> list[str]:
    """Version directories but `keep` (the live one and the one before, which a failed
    activation puts back)."""
    argv = ["find", tls_dir(proxy_dir), "-mindepth", "1", "-maxdepth", "1", "-type", "d",
            "-name", f"{VERSION_PREFIX}*"]
    for version in keep:
        argv += ["!", "-name", version]
    return argv + ["-exec", "rm", "-rf", "{}", "+"]
