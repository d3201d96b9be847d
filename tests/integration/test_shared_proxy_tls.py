"""HTTPS through the shared proxy on real parts (docs/proxy.md, "HTTPS through the shared
proxy"): two apps on this machine's engine behind one shared proxy, A with `tls = "acme"`
against a real CA (pebble, validating for real through the shared HTTP port by Host), B on
HTTP. Both answer their own names on the shared ports: A over HTTPS by SNI with pebble's
root trusted (A's own proxy holds the certificate; the shared one holds no key), B over
HTTP; A's HTTP answers 301 to the shared HTTPS port; a name no app has over HTTPS gets no
certificate. Over HTTPS A sees the client's own address (the shared proxy's PROXY protocol:
X-Real-IP, X-Forwarded-For, its proxy's access log), and so do A and B over HTTP (the
shared proxy's X-Forwarded-For, believed from the gateway only: a client's own is not);
A's own HTTPS port answers nobody but the host's loopback, and there only the PROXY
protocol (both apps' own HTTP ports are on loopback too); a route an earlier deployctl
wrote (plain, *.sni) still passes on plain beside it. Then A is deployed under HTTPS
traffic (and B under HTTP traffic): 0 failed requests on either. Then an HTTPS app alone on
the host's two ports moves to a shared proxy with its certificate, and rolls back through it."""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from deployctl.config import load_config
from deployctl.events import Recorder, StepDone
from deployctl.plan.edge.proxy_config import RELEASE_HEADER
from deployctl.plan.edge.tls_config import NO_REDIRECT_HEADER
from deployctl.plan.judging.access_log import parse_line
from deployctl.secrets import Secret
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.env import Env
from tests.integration.deploy_fixtures import PROXY_STANDIN, docker, free_port, probe_config, remove_app, unique_app
from tests.support.net import wait_until
from tests.support.pebble import http_get, https_get, pebble
from tests.support.traffic import Traffic

pytestmark = pytest.mark.integration
SECRETS = {"PROBE_DB_PASSWORD": Secret("probe-password-value")}


@pytest.fixture(scope="module")
def stream_proxy_image():
    """The proxy stand-in with nginx's stream module (scripts/standin-images.sh installs
    libnginx-mod-stream, as the official nginx images have it built in); a stand-in built
    before that gets it added here, under a tag of this run's own."""
    has = subprocess.run(["docker", "run", "--rm", "--entrypoint", "test", PROXY_STANDIN, "-e",
                          "/usr/lib/nginx/modules/ngx_stream_module.so"], capture_output=True)
    if has.returncode == 0:
        yield PROXY_STANDIN
        return
    tag = f"deployctl-test/nginx-stream:{uuid.uuid4().hex[:10]}"
    subprocess.run(["docker", "build", "-q", "-t", tag, "-"], check=True, capture_output=True, text=True, timeout=300,
                   input=f"FROM {PROXY_STANDIN}\nRUN apt-get update -qq && apt-get install -y -qq "
                         "--no-install-recommends libnginx-mod-stream >/dev/null && rm -rf /var/lib/apt/lists/*\n")
    try:
        yield tag
    finally:
        docker("rmi", tag, check=False)


def _bridge_address() -> str:
    """This machine's address on Docker's default bridge: not loopback."""
    return _gateway("bridge")


def _seen_as(address: str) -> str:
    """The address a server on this machine sees a connection to `address` come from (the
    kernel picks the source, and a NAT rule may rewrite it: 192.0.2.2 here, not the bridge's)."""
    with socket.create_server(("0.0.0.0", 0)) as server:
        server.settimeout(5)
        with socket.create_connection((address, server.getsockname()[1]), timeout=5):
            accepted, peer = server.accept()
            accepted.close()
    return peer[0]


FORGED_ADDRESS = "203.0.113.9"
FORGED = {"X-Forwarded-For": FORGED_ADDRESS, "X-Real-IP": FORGED_ADDRESS}


def _http_body(port: int, name: str, path: str, address: str, headers: dict[str, str]) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection(address, port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": f"{name}:{port}", "Connection": "close", **headers})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _gateway(network: str) -> str:
    """The network's gateway on this machine. An engine may list the default bridge's IPAM
    with its subnet alone (a fresh Debian 12 docker.io did, 2026-12-06): then it is the
    subnet's first address, where Docker puts a gateway it was not given."""
    said = docker("network", "inspect", network, "--format", "{{range .IPAM.Config}}{{.Gateway}}|{{.Subnet}} {{end}}")
    for entry in said.split():
        gateway, _, subnet = entry.partition("|")
        if gateway:
            return gateway
        if subnet and isinstance(net := ipaddress.ip_network(subnet, strict=False), ipaddress.IPv4Network):
            return str(next(net.hosts()))
    raise AssertionError(f"no IPv4 gateway or subnet for {network}: {said!r}")


def _proxy_log(app: str) -> str:
    """The access log of the app's own proxy (its running nginx container), with docker's timestamps."""
    names = docker("ps", "--filter", f"name=^{app}-local-proxy-nginx-", "--format", "{{.Names}}").split()
    assert names, f"no nginx container of {app}'s proxy"
    return subprocess.run(["docker", "logs", "--timestamps", names[0]], capture_output=True, text=True,
                          check=True).stdout


def _a_plain_route_is_passed_on_plain(tmp: Path, shared_dir: Path, shared: str, edge_tls: int) -> None:
    """A TLS server in this process (a listener of an earlier deployctl's app: no PROXY
    header expected; a header would break its handshake) behind a plain route file."""
    import threading

    from deployctl.plan.edge import shared_proxy as sp
    from tests.support.pebble import TestCa

    name = f"plain-{uuid.uuid4().hex[:6]}.deployctl.test"
    ca = TestCa()
    chain, key = ca.issue([name])
    (tmp / "plain.pem").write_bytes(chain)
    (tmp / "plain.key").write_bytes(key)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp / "plain.pem", tmp / "plain.key")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    first: list[bytes] = []

    def serve() -> None:
        try:
            raw, _ = listener.accept()
            with server_context.wrap_socket(raw, server_side=True) as conn:
                first.append(conn.recv(4096))
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nplain")
        except OSError as exc:  # a PROXY header before the hello: the handshake fails here
            first.append(repr(exc).encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    route = sp.Route("plain", "old", (name,), None, 1, port)
    (shared_dir / "routes" / route.sni_file).write_text(sp.render_sni(route))
    try:
        docker("exec", sp.container_name(shared), "nginx", "-s", "reload", "-c", f"{sp.MOUNT}/{sp.CONFIG_FILE}")
        trust = ssl.create_default_context(cadata=ca.pem.decode())

        def answered() -> bool:
            try:
                return https_get(edge_tls, name, "/", trust)[0] == 200
            except (ssl.SSLError, ConnectionError):
                return False  # the reload not seen yet: the name has no route
        wait_until(answered, 10, "the plain route answering through the shared HTTPS port")
        thread.join(5)
        assert first and first[0].startswith(b"GET / HTTP/1.1"), first
    finally:
        (shared_dir / "routes" / route.sni_file).unlink()
        listener.close()


def _config(tmp: Path, app: str, host: str, shared: str, edge: int, edge_tls: int, image: str,
            tls: str = "") -> Path:
    folder = tmp / app
    folder.mkdir()
    extra = f'shared_proxy = "{shared}"\nshared_proxy_port = {edge}\nshared_proxy_tls_port = {edge_tls}\n'
    if tls:
        extra += f"proxy_tls_port = {free_port()}\n"
    path = probe_config(folder, app, port=free_port(), state_dir=str(tmp / "state"), proxy_image=image,
                        extra_env=extra)
    path.write_text(path.read_text().replace("[proxy]\n", f'[proxy]\nhosts = ["{host}"]\n{tls}', 1))
    return path


def test_an_acme_app_and_an_http_app_share_the_ports_https_by_sni_and_a_deploy_fails_nothing(
        tmp_path, probe_images, stream_proxy_image):
    a, b = unique_app(), unique_app()
    name_a, name_b = f"{a}.deployctl.test", f"{b}.deployctl.test"
    shared, edge, edge_tls = "e" + uuid.uuid4().hex[:8], free_port(), free_port()
    images = {"backend": probe_images.good, "frontend": probe_images.good}
    try:
        with pebble(tmp_path, edge) as ca:  # the CA validates through the shared HTTP port
            tls = (f'tls = "acme"\nacme_email = "ops@example.com"\nacme_directory = "{ca.directory}"\n'
                   f'acme_ca_bundle = "{ca.ca_bundle}"\n')
            path_a = _config(tmp_path, a, name_a, shared, edge, edge_tls, stream_proxy_image, tls)
            path_b = _config(tmp_path, b, name_b, shared, edge, edge_tls, stream_proxy_image)
            with ThreadPoolExecutor(2) as pool:
                first = [pool.submit(deploy, Env.resolve(load_config(p), "local"), ReleaseImages(images, revision),
                                     SECRETS, Recorder())
                         for p, revision in ((path_a, "aaaaaaa0000"), (path_b, "bbbbbbb0000"))]
                a1, b1 = (f.result().release for f in first)
            trust = ca.client_context(tmp_path)  # pebble's root only, names checked

            # A over HTTPS on the shared port, by SNI: its own proxy's certificate, its release.
            status, headers, _, _, _ = https_get(edge_tls, name_a, "/version", trust)
            assert status == 200 and headers[RELEASE_HEADER] == a1
            # B over HTTP by Host; A's HTTP answers 301 to the shared HTTPS port (a reload is
            # asynchronous: proven once it answers so).
            status, headers = http_get(edge, name_b, "/version")
            assert status == 200 and headers[RELEASE_HEADER] == b1
            redirect = (301, f"https://{name_a}:{edge_tls}/version")
            wait_until(lambda: (lambda s, h: (s, h.get("Location")))(*http_get(edge, name_a, "/version")) == redirect,
                       10, "A's HTTP answering 301 to the shared HTTPS port")
            # A name no app has over HTTPS: no certificate offered, the handshake ends.
            with pytest.raises((ssl.SSLError, ConnectionError)):
                https_get(edge_tls, name_b, "/version", trust)
            state = tmp_path / "state"
            assert not [p for p in (state / "shared-proxy" / shared).rglob("*") if p.suffix == ".pem"]

            # The client's address reaches A over HTTPS: a client connecting to the host's bridge
            # address (not from loopback, and not the app network's gateway, where the
            # connection reaches A's proxy from).
            # The client's own X-Forwarded-For and X-Real-IP are not believed (a forgery).
            address = _bridge_address()
            client = _seen_as(address)
            status, _, body, _, _ = https_get(edge_tls, name_a, "/headers", trust, address=address, headers=FORGED)
            seen = json.loads(body)
            assert status == 200 and (seen["X-Real-IP"], seen["X-Forwarded-For"], seen["X-Forwarded-Proto"]) == (
                client, f"{FORGED_ADDRESS}, {client}", "https"), seen
            assert client not in ("127.0.0.1", _gateway(f"{a}-local")), client
            # Over plain HTTP too (plan/edge/client_address.py): B, and A answering over HTTP
            # (deployctl's own header: no 301; its HTTPS listener's `real_ip_header
            # proxy_protocol` beside it): the address the shared proxy added, never the forged one.
            for app, name, extra in ((b, name_b, {}), (a, name_a, {NO_REDIRECT_HEADER: "1"})):
                status, body = _http_body(edge, name, "/headers", address, {**FORGED, **extra})
                seen = json.loads(body)
                assert status == 200 and (seen["X-Real-IP"], seen["X-Forwarded-For"], seen["X-Forwarded-Proto"]) == (
                    client, f"{FORGED_ADDRESS}, {client}, {client}", "http"), (app, seen)
            # The apps' own HTTP ports too are on the host's loopback only: from any other address
            # a connection would reach their nginx from the gateway as well (Docker's proxy).
            for app in (a, b):
                published = docker("port", f"{app}-local-proxy", "80/tcp").split()
                assert published and all(p.startswith("127.0.0.1:") for p in published), published
                with pytest.raises(ConnectionRefusedError):
                    socket.create_connection((address, int(published[0].rpartition(":")[2])), timeout=3).close()
            # Each app's own proxy logs the client too, in the line the guard and the canary parse.
            for app, count in ((a, 2), (b, 1)):
                log = _proxy_log(app)
                lines = [line for line in log.splitlines() if '"GET /headers ' in line]
                assert [line.split()[1] for line in lines] == [client] * count, log[-800:]
                assert [(e.path, e.status) for e in map(parse_line, lines) if e is not None] == [("/headers", 200)] * count
            # A's own HTTPS port: published on the host's loopback only, refused from anywhere
            # else, and there it takes only the PROXY protocol (a TLS hello alone is closed).
            published = docker("port", f"{a}-local-proxy", "443/tcp").split()
            assert published and all(p.startswith("127.0.0.1:") for p in published), published
            own_tls = int(published[0].rpartition(":")[2])
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((address, own_tls), timeout=3).close()
            with pytest.raises((ssl.SSLError, ConnectionError)):
                https_get(own_tls, name_a, "/headers", trust)
            # A route an earlier deployctl wrote (*.sni: its app's listener takes no PROXY
            # header) is passed on plain beside A's, through the same stream server.
            _a_plain_route_is_passed_on_plain(tmp_path, state / "shared-proxy" / shared, shared, edge_tls)
            assert list((state / a / "local" / "proxy" / "tls").glob("v-*/privkey.pem"))

            # A deployed under HTTPS traffic through the shared port, B's HTTP traffic beside it.
            with Traffic(f"https://127.0.0.1:{edge_tls}/version", workers=2, ssl_context=trust,
                         server_name=name_a) as traffic_a, \
                    Traffic(f"http://127.0.0.1:{edge}/version", workers=2, host_header=name_b) as traffic_b:
                traffic_a.wait_for(20)
                a2 = deploy(Env.resolve(load_config(path_a), "local"), ReleaseImages(images, "aaaaaaa1111"), SECRETS,
                            Recorder()).release
                traffic_a.wait_for(20)
            for report in (traffic_a.report, traffic_b.report):
                assert report.total > 40 and report.failures == [], report.summary() + repr(report.failures[:3])
            assert {a1, a2} <= set(traffic_a.report.releases()) and set(traffic_b.report.releases()) == {b1}
            status, headers, _, _, _ = https_get(edge_tls, name_a, "/version", trust)
            assert status == 200 and headers[RELEASE_HEADER] == a2
    finally:
        for app in (a, b):
            remove_app(app)
        docker("rm", "-f", f"deployctl-shared-proxy-{shared}", check=False)


def test_an_https_app_alone_on_80_and_443_moves_to_the_shared_proxy_with_its_certificate_and_rolls_back_through_it(
        tmp_path, probe_images, stream_proxy_image, monkeypatch):
    """One app alone on the host's HTTP and HTTPS ports (here two free ones), `tls = "files"`
    from a company CA; its next deploy with `shared_proxy` hands both ports to the shared
    proxy in one cut: the same certificate serves through it (a real TLS client checks the
    chain against the CA), HTTP by Host and HTTPS by SNI answer the new release, the client's
    address arrives, and a rollback goes through the shared proxy."""
    from tests.support.pebble import TestCa

    app = unique_app()
    name, shared, port, tls_port = f"{app}.deployctl.test", "e" + uuid.uuid4().hex[:8], free_port(), free_port()
    company = TestCa("corp CA")
    chain, key = company.issue([name])
    monkeypatch.setenv("MOVE_TLS_CHAIN", chain.decode())
    monkeypatch.setenv("MOVE_TLS_KEY", key.decode())
    trust = ssl.create_default_context(cadata=company.pem.decode())  # names checked, this CA only
    tls = 'tls = "files"\ntls_certificate_secret = "MOVE_TLS_CHAIN"\ntls_key_secret = "MOVE_TLS_KEY"\n'
    folder = tmp_path / app
    folder.mkdir()
    path = probe_config(folder, app, port=port, state_dir=str(tmp_path / "state"), proxy_image=stream_proxy_image,
                        extra_env=f"proxy_tls_port = {tls_port}\n", rollout={"warm_window": 0})
    alone = path.read_text().replace("[proxy]\n", f'[proxy]\nhosts = ["{name}"]\n{tls}', 1)
    images = {"backend": probe_images.good, "frontend": probe_images.good}
    try:
        path.write_text(alone)
        a1 = deploy(Env.resolve(load_config(path), "local"), ReleaseImages(images, "ccccccc0000"), SECRETS,
                    Recorder()).release
        status, headers, _, _, _ = https_get(tls_port, name, "/version", trust)
        assert status == 200 and headers[RELEASE_HEADER] == a1
        # The move: its own ports elsewhere (loopback), the shared proxy on the ones it had.
        path.write_text(alone.replace(f"proxy_port = {port}\nstate_dir",
                                      f"proxy_port = {free_port()}\nstate_dir", 1).replace(
            f"proxy_tls_port = {tls_port}\n", f"proxy_tls_port = {free_port()}\nshared_proxy = \"{shared}\"\n"
                                              f"shared_proxy_port = {port}\nshared_proxy_tls_port = {tls_port}\n"))
        events = Recorder()
        a2 = deploy(Env.resolve(load_config(path), "local"), ReleaseImages(images, "ccccccc1111"), SECRETS,
                    events).release
        moved = [e.detail for e in events.of(StepDone) if e.step == "move"]
        print("move:", moved)
        assert moved and f"ports {port} and {tls_port} closed for" in moved[0] and "HTTPS by SNI" in moved[0]
        assert docker("inspect", "--format", "{{.State.Status}}", f"deployctl-shared-proxy-{shared}") == "running"
        # The same certificate through the shared proxy (the chain checked), the new release.
        status, headers, _, der, _ = https_get(tls_port, name, "/version", trust)
        assert status == 200 and headers[RELEASE_HEADER] == a2
        assert der == ssl.PEM_cert_to_DER_cert(chain.decode().split("-----END CERTIFICATE-----")[0]
                                               + "-----END CERTIFICATE-----\n")
        redirect = (301, f"https://{name}:{tls_port}/version")
        assert (lambda s, h: (s, h.get("Location")))(*http_get(port, name, "/version")) == redirect
        # The client's address arrives over HTTPS (the PROXY protocol); a forged header is not believed.
        address = _bridge_address()
        client = _seen_as(address)
        status, _, body, _, _ = https_get(tls_port, name, "/headers", trust, address=address, headers=FORGED)
        seen = json.loads(body)
        assert status == 200 and (seen["X-Real-IP"], seen["X-Forwarded-For"]) == (
            client, f"{FORGED_ADDRESS}, {client}"), seen
        assert not docker("ps", "-aq", "--filter", f"name={app}-local-proxy-premove")
        # A rollback after the move goes through the shared proxy (over HTTPS and HTTP).
        from deployctl.services.lifecycle.rollback import rollback

        rollback(Env.resolve(load_config(path), "local"), Recorder())
        status, headers, _, _, _ = https_get(tls_port, name, "/version", trust)
        assert status == 200 and headers[RELEASE_HEADER] == a1
        status, _, body, _, _ = https_get(tls_port, name, "/headers", trust, address=address)
        assert json.loads(body)["X-Real-IP"] == client
    finally:
        remove_app(app)
        docker("rm", "-f", f"deployctl-shared-proxy-{shared}", check=False)
