"""HTTPS rules, pure and on fake hosts (docs/tls.md): the [proxy] keys' errors name the key;
the nginx snippets; the certificate checks of `tls = "files"`; the ACME order's placement
(every host holds the challenge answer before the CA is asked) and its installation (every
host, key 0600, staged: a refusal leaves the previous certificate live); a deploy obtains
the certificate after the switch (a Swarm's nodes: tests/unit/test_swarm_tls.py). tests/integration/test_tls.py
proves the same against a real CA (pebble) and real nginx."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from deployctl.config import LoadedConfig, parse_config
from deployctl.errors import ConfigError, ExitCode
from deployctl.events import Recorder
from deployctl.plan.edge import certificates as certs
from deployctl.plan.edge import tls_config as tc
from deployctl.plan.edge.proxy_config import PROXY_MOUNT, render_proxy_config
from deployctl.plan.lifecycle.release_spec import ProxySpec
from deployctl.services.edge import tls
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.hosts import layout_for
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.env import Env
from tests.support.fake_host import FakeHost, Fault
from tests.support.pebble import TestCa

BASE = """
app = "shop"
registry = {{ server = "registry.example" }}
[services.web]
context = "web"
routed = true
[services.web.healthcheck]
timeout = 2
[proxy]
{proxy}
[environments.fleet]
target = "ssh"
hosts = ["h1", "h2", "h3"]
proxy_port = 8080
proxy_tls_port = 8443
state_dir = "/srv/state"
secrets = "env"
[environments.fleet.rollout]
drain = 0
guard_window = 0
warm_window = 0
{extra}
"""
ACME = 'hosts = ["shop.example.com"]\ntls = "acme"\nacme_email = "ops@example.com"\n' \
       'acme_directory = "https://ca.test/dir"'
FILES = 'hosts = ["shop.example.com"]\ntls = "files"\ntls_certificate_secret = "TLS_CHAIN"\n' \
        'tls_key_secret = "TLS_KEY"'


def loaded(proxy: str = ACME, extra: str = "") -> LoadedConfig:
    return LoadedConfig(Path("/project/deploy.toml"), parse_config(BASE.format(proxy=proxy, extra=extra)))


def problems(proxy: str, extra: str = "") -> str:
    with pytest.raises(ConfigError) as info:
        loaded(proxy, extra)
    return "\n".join(info.value.problems)


@pytest.fixture(autouse=True)
def virtual_time(monkeypatch):
    """Waits (the reload's, the CA's polling) cost nothing."""
    real_monotonic, offset = time.monotonic, [0.0]
    monkeypatch.setattr(time, "sleep", lambda s: offset.__setitem__(0, offset[0] + s))
    monkeypatch.setattr(time, "monotonic", lambda: real_monotonic() + offset[0])


# -- configuration ---------------------------------------------------------------------------

def test_the_keys_errors_name_the_key_and_what_was_expected():
    assert "proxy.acme_email: proxy.tls = \"acme\" needs an e-mail address" in problems(
        'hosts = ["a.example.com"]\ntls = "acme"')
    assert 'proxy.tls = "acme" needs proxy.hosts' in problems('tls = "acme"\nacme_email = "a@b.example"')
    assert "proxy.hosts[0]: 'https://a.example.com' is not a DNS name" in problems(
        'hosts = ["https://a.example.com"]\ntls = "acme"\nacme_email = "a@b.example"')
    assert 'proxy.tls_certificate_secret: proxy.tls = "files" needs it' in problems(
        'hosts = ["a.example.com"]\ntls = "files"')
    assert "wildcard name needs a DNS-01 challenge" in problems(
        'hosts = ["*.example.com"]\ntls = "acme"\nacme_email = "a@b.example"')
    assert "proxy.acme_email is set but no environment has HTTPS" in problems('acme_email = "a@b.example"')
    assert "acme_directory" in problems(ACME.replace("https://ca.test/dir", "http://ca.test/dir"))
    assert "proxy.tls: 'on' is not allowed: expected 'off', 'acme' or 'files'" in problems('tls = "on"')
    clash = problems(ACME, extra="[environments.other]\ntarget = \"local\"\nproxy_port = 9443\nproxy_tls_port = 9443")
    assert "environments.other.proxy_tls_port: 9443 is also its proxy_port" in clash
    assert loaded(FILES).config.proxy.tls == "files"
    assert loaded().environment("fleet").proxy_tls_port == 8443


def test_an_environment_turns_https_on_or_off_for_itself():
    # HTTPS on production only: a local environment keeps plain HTTP, and no other keys change.
    mixed = loaded(ACME.replace('tls = "acme"\n', ""),
                   extra='[environments.fleet2]\ntarget = "local"\ntls = "acme"\nproxy_port = 8081')
    assert mixed.config.tls_for("fleet") == "off" and mixed.config.tls_for("fleet2") == "acme"
    assert "environments.fleet2.tls = \"acme\" needs proxy.hosts" in problems(
        "", extra='[environments.fleet2]\ntarget = "local"\ntls = "acme"')
    off_here = loaded(extra='[environments.dev]\ntarget = "local"\ntls = "off"\nproxy_port = 8081')
    assert off_here.config.tls_for("dev") == "off" and off_here.config.tls_for("fleet") == "acme"


# -- rendering -------------------------------------------------------------------------------

def test_the_main_configuration_includes_the_hosts_tls_state_and_redirects_only_with_it():
    text = render_proxy_config(ProxySpec("nginx", False, health_path="/up"), "r1", {"r1": "web:80"})
    assert f"include {PROXY_MOUNT}/tls/*.conf;" in text and f"include {PROXY_MOUNT}/tls/live/*.conf;" in text
    # The redirect map: everything on HTTP but the challenges and the proxy's health check.
    assert '"~^http:/\\.well-known/acme-challenge/" 0;' in text and '"http:/up" 0;' in text
    assert '"~^http:" 1;' in text
    assert "return 301" not in text  # only a certificate's own snippet redirects
    # deployctl's own requests (verify, status, maintenance's wait) are answered, not redirected.
    assert ("    map $http_x_deployctl_no_redirect $deployctl_to_https {\n"
            "        default $deployctl_to_https_by_path;\n"
            '        "1" 0;\n'
            "    }\n") in text


def test_deployctls_own_requests_through_the_proxy_ask_not_to_be_redirected():
    from deployctl.services.edge.proxy import HostProxy
    from deployctl.services.hosts import names_for

    site = loaded()
    proxy = HostProxy(FakeHost("h1"), names_for(site, "fleet"), layout_for(site, "fleet"), Recorder())
    assert proxy.bypass() == {tc.NO_REDIRECT_HEADER: "1"}  # maintenance off: only this one


def test_a_certificate_snippet_serves_tls_1_2_and_1_3_http2_and_redirects_to_its_port():
    conf = tc.server_conf(PROXY_MOUNT, "v-abc", 8443, hsts=True)
    assert "listen 443 ssl http2 reuseport;" in conf
    assert f"ssl_certificate {PROXY_MOUNT}/tls/v-abc/fullchain.pem;" in conf
    assert f"ssl_certificate_key {PROXY_MOUNT}/tls/v-abc/privkey.pem;" in conf
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in conf and "RC4" not in conf and "CBC" not in conf
    assert "return 301 https://$host:8443$request_uri;" in conf
    assert 'Strict-Transport-Security "max-age=63072000" always' in conf
    plain = tc.server_conf(PROXY_MOUNT, "v-abc", 443, hsts=False)
    assert "return 301 https://$host$request_uri;" in plain and "Strict-Transport-Security" not in plain
    # Behind a shared proxy: the same snippet, its listener taking the PROXY protocol and the
    # client's address trusted from the given addresses only; another version of the same chain.
    behind = tc.server_conf(PROXY_MOUNT, "v-abc", 443, hsts=False, proxy_protocol_from=("172.20.0.1",))
    assert behind == plain.replace(
        "listen 443 ssl http2 reuseport;\n",
        "listen 443 ssl http2 reuseport proxy_protocol;\n"
        "# The client's address from the shared proxy's PROXY protocol header, trusted from it only.\n"
        "set_real_ip_from 172.20.0.1;\n"
        "real_ip_header proxy_protocol;\n")
    assert tc.takes_proxy_protocol(behind) and not tc.takes_proxy_protocol(plain) and not tc.takes_proxy_protocol(None)
    assert tc.version_of(b"chain") != tc.version_of(b"chain", proxy_protocol=True)
    assert tc.version_of(b"chain") == "v-" + __import__("hashlib").sha256(b"chain").hexdigest()[:16]  # as before
    assert tc.gateways("172.20.0.1|172.20.0.0/16 |fd00:1::/64 ") == ("172.20.0.1", "fd00:1::1")
    assert tc.gateways("") == ()
    assert f"root {PROXY_MOUNT}/acme;" in tc.challenge_conf(PROXY_MOUNT)
    assert tc.challenge_file("/p", "tok") == "/p/acme/.well-known/acme-challenge/tok"
    assert tc.link_live("/p", "v-1") == ["sh", "-c", "ln -sfn v-1 /p/tls/live.next && mv -fT /p/tls/live.next /p/tls/live"]


# -- certificate checks ----------------------------------------------------------------------

NOW = datetime.now(timezone.utc)


def test_a_files_pair_is_checked_for_key_names_and_dates():
    ca = TestCa()
    chain, key = ca.issue(["shop.example.com", "www.example.com"])
    assert certs.check_pair(chain, key, ["shop.example.com"], NOW).names == ("shop.example.com", "www.example.com")
    _, other_key = ca.issue(["shop.example.com"])
    with pytest.raises(certs.CertificateProblem, match="private key does not match"):
        certs.check_pair(chain, other_key, ["shop.example.com"], NOW)
    with pytest.raises(certs.CertificateProblem, match="is for shop.example.com, www.example.com, not for api.example.com"):
        certs.check_pair(chain, key, ["api.example.com"], NOW)
    old_chain, old_key = ca.issue(["shop.example.com"], starts=-100, days=-1)
    with pytest.raises(certs.CertificateProblem, match="expired on"):
        certs.check_pair(old_chain, old_key, ["shop.example.com"], NOW)
    with pytest.raises(certs.CertificateProblem, match="not a PEM certificate chain"):
        certs.check_pair(b"nonsense", key, ["shop.example.com"], NOW)
    with pytest.raises(certs.CertificateProblem, match="not an unencrypted PEM private key") as info:
        certs.check_pair(chain, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", [], NOW)
    assert "AAAA" not in str(info.value)
    wild, wild_key = ca.issue(["*.example.com"])
    assert certs.check_pair(wild, wild_key, ["shop.example.com"], NOW)
    assert not certs.covers(["*.example.com"], "a.b.example.com") and not certs.covers(["*.example.com"], "example.com")


def test_renewal_is_due_within_30_days_for_missing_names_and_for_no_certificate():
    ca = TestCa()
    info = certs.describe(ca.issue(["shop.example.com"], days=31)[0])
    assert certs.renewal_reason(info, ["shop.example.com"], NOW) is None
    assert "within 30 days" in certs.renewal_reason(info, ["shop.example.com"], NOW + timedelta(days=2))
    assert certs.renewal_reason(info, ["shop.example.com", "new.example.com"], NOW) == "it does not cover new.example.com"
    assert certs.renewal_reason(None, ["shop.example.com"], NOW) == "no certificate yet"


# -- the ACME order on a fleet of fake hosts -------------------------------------------------

class FakeCa:
    """The CA side of adapters/acme_client.AcmeClient's interface. `respond` is where a real
    CA starts validating: it records which hosts held the answer at that moment."""

    instances: list["FakeCa"] = []
    hosts: list[FakeHost] = []
    proxy_dir = ""
    refuse: str | None = None

    def __init__(self, directory: str, account_key: bytes, *, ca_bundle: str | None = None) -> None:
        self.ca, self.account_key, self.seen_at_respond = TestCa("fake ACME"), account_key, {}
        self.tokens: list[str] = []
        FakeCa.instances.append(self)

    def account(self, email: str) -> str:
        return "https://ca.test/acct/1"

    def new_order(self, names: list[str]) -> tuple[str, dict]:
        return "https://ca.test/order/1", {"authorizations": [f"https://ca.test/authz/{n}" for n in names],
                                           "finalize": "https://ca.test/finalize/1"}

    def get(self, url: str, what: str) -> dict:
        return {"status": "pending", "identifier": {"value": url.rsplit("/", 1)[1]}}

    def http01(self, authorization: dict) -> tuple[str, str]:
        token = f"token-{authorization['identifier']['value']}"
        self.tokens.append(token)
        return token, f"https://ca.test/chall/{token}"

    def key_authorization(self, token: str) -> str:
        return f"{token}.thumbprint"

    def respond(self, challenge: str) -> None:
        token = challenge.rsplit("/", 1)[1]
        path = tc.challenge_file(self.proxy_dir, token)
        self.seen_at_respond[token] = [h.host for h in self.hosts if h.text(path) == f"{token}.thumbprint"]

    def wait(self, url: str, what: str, *, done: tuple, timeout: float) -> dict:
        from deployctl.adapters.acme_client import AcmeError

        if self.refuse:
            raise AcmeError(f"{what} is invalid: {self.refuse}")
        return {"status": "valid", "certificate": "https://ca.test/cert/1"}

    def finalize(self, order: dict, csr_der: bytes) -> None:
        self.csr = csr_der

    def certificate(self, url: str) -> bytes:
        return self.ca.sign_csr(self.csr)


@pytest.fixture
def fleet(monkeypatch):
    import deployctl.adapters.acme_client as acme_client

    hosts = [FakeHost(h, images=[]) for h in ("h1", "h2", "h3")]
    FakeCa.instances, FakeCa.hosts, FakeCa.refuse = [], hosts, None
    FakeCa.proxy_dir = layout_for(loaded(), "fleet").proxy_dir
    monkeypatch.setattr(acme_client, "AcmeClient", FakeCa)
    return hosts


def images(n: int) -> ReleaseImages:
    return ReleaseImages({"web": f"registry.example/shop/web@sha256:{n:064d}"}, f"{n:07d}")


def test_a_fleet_deploy_places_the_answer_on_every_host_before_the_ca_validates_then_one_certificate_everywhere(fleet):
    site, layout = loaded(), layout_for(loaded(), "fleet")
    release = deploy(Env.resolve(site, "fleet"), images(1), {}, Recorder(), connectors=list(fleet), now=1_780_000_000).release
    ca = FakeCa.instances[-1]
    assert ca.seen_at_respond == {"token-shop.example.com": ["h1", "h2", "h3"]}
    versions = {h.links.get(f"{layout.proxy_dir}/tls/live") for h in fleet}
    assert len(versions) == 1 and None not in versions  # one certificate, on every host
    version = versions.pop()
    for host in fleet:
        assert host.files[f"{layout.proxy_dir}/tls/{version}/privkey.pem"][1] == 0o600
        assert host.files[f"{layout.root}/acme/account.pem"][1] == 0o600
        assert host.text(f"{layout.proxy_dir}/tls/acme-challenge.conf") is not None  # loaded by the switch
        assert not [p for p in host.files if "/.well-known/acme-challenge/" in p]  # answers removed after
        nginx = next(c for c in host.containers.values() if c.loaded is not None and c.status == "running")
        assert nginx.certificate == version  # reloaded: the new certificate serves
        assert any("--publish 8080:80 --publish 8443:443" in text for _, text in host.calls)  # the anchor
    account = {h.files[f"{layout.root}/acme/account.pem"][0] for h in fleet}
    assert len(account) == 1  # one ACME account for the environment
    assert release and certs.describe(fleet[0].files[f"{layout.proxy_dir}/tls/{version}/fullchain.pem"][0]).names == (
        "shop.example.com",)
    # The next deploy: nothing to renew, no order.
    deploy(Env.resolve(site, "fleet"), images(2), {}, Recorder(), connectors=list(fleet), now=1_780_000_100)
    assert len(FakeCa.instances) == 1


def test_a_host_added_later_gets_the_current_certificate_without_an_order(fleet):
    site, layout = loaded(), layout_for(loaded(), "fleet")
    deploy(Env.resolve(site, "fleet"), images(1), {}, Recorder(), connectors=fleet[:2], now=1_780_000_000)
    deploy(Env.resolve(site, "fleet"), images(2), {}, Recorder(), connectors=list(fleet), now=1_780_000_100)
    assert len(FakeCa.instances) == 1
    assert len({h.links[f"{layout.proxy_dir}/tls/live"] for h in fleet}) == 1


def test_a_refusing_ca_is_quoted_exit_9_and_every_host_keeps_its_certificate(fleet):
    site, layout = loaded(), layout_for(loaded(), "fleet")
    deploy(Env.resolve(site, "fleet"), images(1), {}, Recorder(), connectors=list(fleet), now=1_780_000_000)
    before = [h.links[f"{layout.proxy_dir}/tls/live"] for h in fleet]
    FakeCa.refuse = "Connection refused (connection)"
    emit = Recorder()
    with pytest.raises(tls.CertificateError) as info:
        tls.ensure_locked(Env.resolve(site, "fleet"), fleet, emit, force=True)
    assert info.value.exit_code == ExitCode.CERTIFICATE == 9
    assert "Connection refused (connection)" in info.value.message and "keeps serving" in info.value.hint
    assert [h.links[f"{layout.proxy_dir}/tls/live"] for h in fleet] == before
    assert not any(layout.lock_dir in h.dirs for h in fleet)  # the locks were released
    assert not [p for h in fleet for p in h.files if "/.well-known/acme-challenge/" in p]


def test_an_install_nginx_refuses_puts_the_previous_certificate_back(fleet):
    site, layout = loaded(), layout_for(loaded(), "fleet")
    deploy(Env.resolve(site, "fleet"), images(1), {}, Recorder(), connectors=list(fleet), now=1_780_000_000)
    host = fleet[0]
    before = host.links[f"{layout.proxy_dir}/tls/live"]
    host.faults.append(Fault("run", r"nginx -t -q -c /etc/deployctl/proxy/nginx.conf$", effect="fail"))
    with pytest.raises(tls.CertificateError, match="nginx -t refused the new certificate"):
        tls.ensure_locked(Env.resolve(site, "fleet"), [host], Recorder(), force=True)
    assert host.links[f"{layout.proxy_dir}/tls/live"] == before


def test_tls_files_is_checked_before_any_host_changes_and_installed_on_every_host(fleet, monkeypatch):
    site = loaded(FILES)
    layout = layout_for(site, "fleet")
    ca = TestCa()
    wrong_chain, wrong_key = ca.issue(["other.example.com"])
    monkeypatch.setenv("TLS_CHAIN", wrong_chain.decode())
    monkeypatch.setenv("TLS_KEY", wrong_key.decode())
    with pytest.raises(ConfigError) as info:
        deploy(Env.resolve(site, "fleet"), images(1), {}, Recorder(), connectors=list(fleet), now=1_780_000_000)
    message = "\n".join(info.value.problems)
    assert "proxy.tls_certificate_secret (TLS_CHAIN)" in message and "not for shop.example.com" in message
    assert "PRIVATE KEY" not in message
    assert all(h.calls == [] or not h.containers for h in fleet)  # nothing ran on any host
    chain, key = ca.issue(["shop.example.com"])
    monkeypatch.setenv("TLS_CHAIN", chain.decode())
    monkeypatch.setenv("TLS_KEY", key.decode())
    deploy(Env.resolve(site, "fleet"), images(1), {}, Recorder(), connectors=list(fleet), now=1_780_000_000)
    version = tc.version_of(chain)
    for host in fleet:
        assert host.links[f"{layout.proxy_dir}/tls/live"] == version
        assert host.files[f"{layout.proxy_dir}/tls/{version}/privkey.pem"] == (key, 0o600)
    assert FakeCa.instances == []  # no CA involved
    status = tls.EnvironmentTls(Env.resolve(site, "fleet"), fleet, Recorder()).status()
    assert [s.info.names for s in status] == [("shop.example.com",)] * 3
    assert "PRIVATE KEY" not in repr([s.as_dict(NOW) for s in status])


def test_a_rollback_keeps_serving_the_current_certificate(fleet):
    from deployctl.services.lifecycle.rollback import rollback

    site, layout = loaded(), layout_for(loaded(), "fleet")
    deploy(Env.resolve(site, "fleet"), images(1), {}, Recorder(), connectors=list(fleet), now=1_780_000_000)
    deploy(Env.resolve(site, "fleet"), images(2), {}, Recorder(), connectors=list(fleet), now=1_780_000_100)
    version = fleet[0].links[f"{layout.proxy_dir}/tls/live"]
    rollback(Env.resolve(site, "fleet"), Recorder(), connectors=list(fleet))
    for host in fleet:
        nginx = next(c for c in host.containers.values() if c.loaded is not None and c.status == "running")
        # The certificate is host state: the rolled-back release's configuration includes it too.
        assert nginx.certificate == version and b"/tls/live/*.conf" in nginx.loaded
    assert len(FakeCa.instances) == 1


def test_turning_https_off_removes_the_certificate_with_the_next_deploy(fleet):
    site = loaded()
    deploy(Env.resolve(site, "fleet"), images(1), {}, Recorder(), connectors=list(fleet), now=1_780_000_000)
    off = loaded(extra="").config.model_copy()
    off.environments["fleet"] = off.environments["fleet"].model_copy(update={"tls": "off"})
    deploy(Env.resolve(LoadedConfig(Path("/project/deploy.toml"), off), "fleet"), images(2), {}, Recorder(),
           connectors=list(fleet), now=1_780_000_100)
    for host in fleet:
        assert not [p for p in host.files if "/tls/" in p] and not host.links
        nginx = next(c for c in host.containers.values() if c.loaded is not None and c.status == "running")
        assert nginx.certificate is None  # the reload dropped HTTPS


def test_where_the_app_answers_is_its_https_names_once_tls_is_on():
    """`release` ends with the URL where the app answers: HTTP only redirects there."""
    from deployctl.services.lifecycle.release import app_urls

    assert app_urls(Env.resolve(loaded(), "fleet")) == ["https://shop.example.com:8443/"]
    assert app_urls(Env.resolve(loaded('hosts = ["shop.example.com"]'), "fleet")) == [
        "http://h1:8080/", "http://h2:8080/", "http://h3:8080/"]
