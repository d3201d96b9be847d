"""HTTPS certificates on an environment's hosts (docs/tls.md): one certificate for every
host, obtained from an ACME CA (HTTP-01, answered on every host) or taken from the secret
source (`tls = "files"`), installed staged, renewed within 30 days of expiry.

The files and snippets are plan/edge/tls_config.py's; the ACME protocol is adapters/acme_client.py.
Here: which host needs what, the order of the steps across hosts, and what a failure
leaves serving (always what served before: a certificate goes live only after the CA
issued it and it passed the same checks a `files` pair passes, and nginx -t accepted it).
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from ...adapters.connector import check as run_checked
from ...errors import ConfigError, DeployctlError, ExitCode
from ...events import Emit, Message, Timer
from ...plan.edge import certificates as certs
from ...plan.edge import tls_config as tc
from ...plan.lifecycle.names import Names, StateLayout
from ...plan.edge.proxy_config import CONFIG_PATH, PROXY_MOUNT
from ...secrets import Secret, redactor
from ..env import Env
from .proxy import HostProxy, network_gateways
from ..secret_sources import environment_source, fetch_secrets

ACME_TIMEOUT = 90.0  # seconds for the CA to validate every name and issue
SERVE_WAIT = 10.0  # seconds for nginx's reloaded workers to serve a new certificate


class CertificateError(DeployctlError):
    """A certificate could not be obtained, renewed or installed; whatever certificate each
    host served before still serves (the message says which release and certificate)."""

    exit_code = ExitCode.CERTIFICATE


@dataclass(frozen=True)
class HostCertificate:
    host: str
    version: str | None
    info: certs.CertificateInfo | None
    relisten: bool = False  # good, but its listener not of the kind the environment needs

    def as_dict(self, now: datetime) -> dict:
        return {"host": self.host, "version": self.version,
                "certificate": self.info.as_dict(now) if self.info else None}


class HostTls:
    """One host's certificate files, challenge answers and ACME account key.

    `proxy`: what runs nginx there and where its ports are published (running_nginx(),
    port(listen_port)): the host's HostProxy by default; a Swarm node's global proxy task
    (services/swarm/swarm_site.NodeProxy), whose directory is the same layout's proxy_dir."""

    def __init__(self, conn, names: Names, layout: StateLayout, emit: Emit,  # conn: Connector
                 proxy=None, proxy_protocol: bool = False) -> None:  # type: ignore[no-untyped-def]
        self.conn, self.names, self.layout, self.emit = conn, names, layout, emit
        self.proxy_dir = layout.proxy_dir
        self.proxy = proxy if proxy is not None else HostProxy(conn, names, layout, emit)
        # Behind a host's shared proxy: HTTPS listens for its PROXY protocol (tls_config.server_conf).
        self.proxy_protocol = proxy_protocol

    @property
    def account_key_file(self) -> str:
        # Beside the history, outside the proxy directory: nginx never sees it.
        return posixpath.join(self.layout.root, "acme", "account.pem")

    def live_version(self) -> str | None:
        result = self.conn.run(tc.read_live(self.proxy_dir))
        version = result.stdout.strip() if result.ok else ""
        return version if version.startswith(tc.VERSION_PREFIX) and "/" not in version else None

    def live_pair(self) -> tuple[str | None, bytes | None, bytes | None]:
        version = self.live_version()
        if version is None:
            return None, None, None
        folder = tc.version_dir(self.proxy_dir, version)
        return (version, self.conn.read_file(f"{folder}/{tc.CHAIN_FILE}"),
                self.conn.read_file(f"{folder}/{tc.KEY_FILE}"))

    def current(self) -> HostCertificate:
        version = self.live_version()
        chain = (self.conn.read_file(f"{tc.version_dir(self.proxy_dir, version)}/{tc.CHAIN_FILE}")
                 if version else None)
        try:
            info = certs.describe(chain) if chain else None
        except certs.CertificateProblem:
            info = None  # damaged on the host: renewed like a missing one
        # A good certificate whose listener is of the other kind (an app moved behind a
        # shared proxy, or away from one, or installed before the PROXY protocol): installed
        # again as the version of its kind (EnvironmentTls.ensure).
        relisten = bool(info and chain and version != tc.version_of(chain, self.proxy_protocol))
        return HostCertificate(self.conn.host, version, info, relisten)

    def enable_challenges(self) -> None:
        """The HTTP-01 location (tls = "acme"), loaded by the switch's reload or start."""
        self.conn.put_file(f"{tc.tls_dir(self.proxy_dir)}/{tc.CHALLENGE_CONF}", tc.challenge_conf(PROXY_MOUNT).encode(),
                           0o644)

    def remove_all(self) -> None:
        """HTTPS turned off: certificates, keys and the challenge location leave the host."""
        self.conn.remove_tree(tc.tls_dir(self.proxy_dir))

    def place_challenge(self, token: str, key_authorization: str) -> None:
        self.conn.put_file(tc.challenge_file(self.proxy_dir, token), key_authorization.encode(), 0o644)

    def remove_challenge(self, token: str) -> None:
        self.conn.run(["rm", "-f", tc.challenge_file(self.proxy_dir, token)])

    def read_account_key(self) -> bytes | None:
        return self.conn.read_file(self.account_key_file)

    def write_account_key(self, key: bytes) -> None:
        self.conn.put_file(self.account_key_file, key, 0o600)

    def install(self, chain: bytes, key: bytes, published_port: int, hsts: bool,
                check: tuple[int, str] | None = None) -> str:
        """Staged: the new version's files first (the live ones untouched), then the live link
        renamed over, nginx -t, reload. A refusal puts the link back: the previous certificate
        keeps serving. Returns the version now live."""
        version = tc.version_of(chain, self.proxy_protocol)
        previous = self.live_version()
        folder = tc.version_dir(self.proxy_dir, version)
        trusted = self._shared_proxy_addresses() if self.proxy_protocol else ()
        self.conn.put_file(f"{folder}/{tc.KEY_FILE}", key, 0o600)
        self.conn.put_file(f"{folder}/{tc.CHAIN_FILE}", chain, 0o644)
        self.conn.put_file(f"{folder}/{tc.SERVER_CONF}",
                           tc.server_conf(PROXY_MOUNT, version, published_port, hsts, trusted).encode(), 0o644)
        run_checked(self.conn, tc.link_live(self.proxy_dir, version))
        nginx = self.proxy.running_nginx()
        if nginx is not None:
            tested = self.conn.run(tc.nginx_test(nginx, CONFIG_PATH))
            if not tested.ok:
                if previous:
                    self.conn.run(tc.link_live(self.proxy_dir, previous))
                else:
                    self.conn.run(["rm", "-f", f"{tc.tls_dir(self.proxy_dir)}/{tc.LIVE_LINK}"])
                raise CertificateError(f"{self.conn.host}: nginx -t refused the new certificate; "
                                       f"{previous or 'no certificate'} stays live: "
                                       f"{(tested.stderr or tested.stdout).strip()[-300:]}")
            run_checked(self.conn, tc.nginx_reload(nginx, CONFIG_PATH))
            if check is not None:
                self._wait_serving(version, *check)
        self.conn.run(tc.prune_versions(self.proxy_dir, [v for v in (version, previous) if v]))
        return version

    def _shared_proxy_addresses(self) -> tuple[str, ...]:
        """Where the shared proxy's connections reach the app's nginx from: the anchor
        publishes HTTPS on the host's 127.0.0.1 only, and Docker forwards a connection to
        it from the app network's gateway. Nothing else is trusted with a PROXY header."""
        found, said = network_gateways(self.conn, self.names.network)
        if not found:
            raise CertificateError(f"{self.conn.host}: the network {self.names.network} names no gateway, which the "
                                   f"HTTPS listener behind the shared proxy trusts with the client's address: {said}")
        return found

    def _wait_serving(self, version: str, listen_port: int, path: str) -> None:
        """A reload is asynchronous: until nginx's new workers answer (with this version's
        header), the certificate is not in use yet, and a deploy reporting it would be early."""
        port = self.proxy.port(listen_port)
        deadline = time.monotonic() + SERVE_WAIT
        while port is not None and time.monotonic() < deadline:
            try:
                answer = self.conn.http_get("127.0.0.1", port, path, timeout=2.0)
                if answer.headers.get(tc.CERTIFICATE_HEADER.lower()) == version:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.emit(Message(f"nginx did not answer with certificate {version} within {SERVE_WAIT:g}s of its reload",
                          level="warning", host=self.conn.host))


# -- an environment -------------------------------------------------------------------------

def files_pair(env: Env, now: datetime | None = None) -> tuple[Secret, Secret]:
    """tls = "files": the chain and key from the secret source, checked before any host
    changes; a ConfigError (exit 3) names the key and says what is wrong."""
    proxy = env.config.proxy
    assert proxy.tls_certificate_secret and proxy.tls_key_secret
    source = environment_source(env.config, env.settings)
    values = fetch_secrets(source, [proxy.tls_certificate_secret, proxy.tls_key_secret],
                           context="[proxy] tls = \"files\"")
    chain, key = values[proxy.tls_certificate_secret], values[proxy.tls_key_secret]
    try:
        certs.load_key(key.reveal().encode(), f"proxy.tls_key_secret ({proxy.tls_key_secret})")
        certs.check_pair(chain.reveal().encode(), key.reveal().encode(), proxy.hosts, now or certs.now_utc())
    except certs.CertificateProblem as exc:
        raise ConfigError([f"proxy.tls_certificate_secret ({proxy.tls_certificate_secret}) and "
                           f"proxy.tls_key_secret ({proxy.tls_key_secret}): {exc}"]) from None
    return chain, key


class EnvironmentTls:
    """Every host of an environment, one certificate. `proxies`: each connector's proxy
    (HostTls), for a Swarm's nodes (services/swarm/swarm_tls.py); hosts' by default."""

    def __init__(self, env: Env, conns: Sequence, emit: Emit,
                 proxies: Sequence | None = None) -> None:
        self.env, self.emit = env, emit
        self.proxy = env.config.proxy
        names, layout = env.names, env.layout
        environment = env.settings
        # Behind a shared proxy: HTTPS listens for its PROXY protocol (docs/proxy.md).
        self.proxy_protocol = environment.shared_proxy is not None
        self.hosts = [HostTls(conn, names, layout, emit, proxy, proxy_protocol=self.proxy_protocol)
                      for conn, proxy in zip(conns, proxies if proxies is not None else [None] * len(conns))]
        # The HTTPS port clients use, which the redirect names: the shared proxy's, which
        # passes HTTPS through to this app's own proxy_tls_port (docs/proxy.md).
        self.port = (environment.shared_proxy_tls_port if environment.shared_proxy is not None
                     else env.tls_port or 443)

    def status(self) -> list[HostCertificate]:
        return [host.current() for host in self.hosts]

    def ensure(self, *, force: bool = False, now: datetime | None = None,
               pair: tuple[Secret, Secret] | None = None) -> str:
        """Every host serves a certificate that covers `hosts` and is more than 30 days from
        expiry (`force`: a new one whatever). Returns what was done, for the report."""
        now = now or certs.now_utc()
        if self.env.config.tls_for(self.env.name) == "files":
            chain, key = pair or files_pair(self.env, now)
            return self._spread(chain.reveal().encode(), key.reveal().encode(), "from the secret source")
        current = self.status()
        reasons = {c.host: certs.renewal_reason(c.info, self.proxy.hosts, now) for c in current}
        if not force and not any(reasons.values()):
            ends = min(c.info.not_after for c in current if c.info)
            return f"certificate valid until {ends:%Y-%m-%d}; no renewal needed{self._relisten(current)}"
        good = [h for h, c in zip(self.hosts, current) if reasons[c.host] is None]
        if good and not force:
            # A host added later (or one that lost its files): the certificate the others serve.
            _, chain, key = good[0].live_pair()
            if chain and key:
                return self._spread(chain, key, f"copied from {good[0].conn.host}")
        why = "forced" if force else next(f"{h}: {r}" for h, r in reasons.items() if r)
        chain, key = self._order(why, now)
        return self._spread(chain, key, "issued by the CA")

    def _relisten(self, current: list[HostCertificate]) -> str:
        """Hosts whose good certificate listens otherwise than the environment needs get it
        installed again as the version that does (staged, as any install)."""
        moved = []
        for host, certificate in zip(self.hosts, current):
            if certificate.relisten:
                _, chain, key = host.live_pair()
                if chain and key:
                    host.install(chain, key, self.port, self.proxy.hsts, check=(self.proxy.port, self.proxy.healthcheck))
                    moved.append(host.conn.host)
        kind = "the shared proxy's PROXY protocol" if self.proxy_protocol else "plain TLS"
        return f"; HTTPS listening for {kind} on {', '.join(moved)}" if moved else ""

    def _spread(self, chain: bytes, key: bytes, where: str) -> str:
        version = tc.version_of(chain, self.proxy_protocol)
        changed = []
        for host in self.hosts:
            if host.live_version() != version:
                host.install(chain, key, self.port, self.proxy.hsts, check=(self.proxy.port, self.proxy.healthcheck))
                changed.append(host.conn.host)
        info = certs.describe(chain)
        what = f"certificate for {', '.join(info.names)} until {info.not_after:%Y-%m-%d} ({where})"
        return f"{what}: installed on {', '.join(changed)}" if changed else f"{what}: already on every host"

    # -- ACME -------------------------------------------------------------------------------

    def _account_key(self) -> bytes:
        """The ACME account key: kept on every host (0600), made once. Never printed."""
        found = next((k for k in (h.read_account_key() for h in self.hosts) if k), None)
        key = found or certs.new_private_key()
        redactor.add(Secret(key.decode()))  # never in any output, even a traceback
        for host in self.hosts:
            if host.read_account_key() != key:
                host.write_account_key(key)
        return key

    def _order(self, why: str, now: datetime) -> tuple[bytes, bytes]:
        from ...adapters.acme_client import AcmeClient, AcmeError

        proxy = self.proxy
        timer = Timer(self.emit, "certificate", detail=f"ACME order for {', '.join(proxy.hosts)} ({why})")
        placed: list[str] = []
        try:
            client = AcmeClient(proxy.acme_directory, self._account_key(), ca_bundle=proxy.acme_ca_bundle)
            assert proxy.acme_email
            client.account(proxy.acme_email)
            order_url, order = client.new_order(proxy.hosts)
            pending = []
            for url in order.get("authorizations", []):
                authorization = client.get(url, "the authorization")
                if authorization.get("status") == "valid":
                    continue  # validated recently for this account: nothing to answer
                token, challenge = client.http01(authorization)
                # On EVERY host before the CA is asked: it validates through whichever host
                # its request (or a load balancer) reaches.
                for host in self.hosts:
                    host.place_challenge(token, client.key_authorization(token))
                placed.append(token)
                pending.append((url, challenge, authorization.get("identifier", {}).get("value", "?")))
            for _, challenge, _ in pending:
                client.respond(challenge)
            for url, _, name in pending:
                client.wait(url, f"the authorization of {name}", done=("valid",), timeout=ACME_TIMEOUT)
            key = certs.new_private_key()
            client.finalize(order, certs.csr_der(key, proxy.hosts))
            finished = client.wait(order_url, "the order", done=("valid",), timeout=ACME_TIMEOUT)
            chain = client.certificate(finished["certificate"])
        except AcmeError as exc:
            timer.failed(str(exc))
            raise CertificateError(f"the ACME server ({proxy.acme_directory}) refused or failed: {exc}",
                                   hint="every host keeps serving the certificate it had (if any); "
                                        "retry with `deployctl certs renew`") from None
        finally:
            for token in placed:
                for host in self.hosts:
                    try:
                        host.remove_challenge(token)
                    except Exception:  # noqa: BLE001 - a stale answer is harmless; never hide the real error
                        pass
        try:
            certs.check_pair(chain, key, proxy.hosts, certs.now_utc())
        except certs.CertificateProblem as exc:
            raise CertificateError(f"the certificate the CA issued cannot serve: {exc}") from None
        timer.done(f"issued until {certs.describe(chain).not_after:%Y-%m-%d}")
        return chain, key


def ensure_locked(env: Env, conns: Sequence, emit: Emit, *, force: bool = False,
                  pair: tuple[Secret, Secret] | None = None, action: str = "certs renew",
                  force_unlock: bool = False, proxies: Sequence | None = None,
                  locks: Sequence | None = None) -> str:
    """`ensure` under every host's deploy lock (a deploy or rollback in between would reload
    nginx under it): after a deploy's rollout, and `deployctl certs renew`. `locks`: the
    connectors whose lock guards these hosts (a Swarm's manager for its nodes); `conns`
    themselves by default."""
    from ..lifecycle.host_state import HostState
    from ..lifecycle.transaction import take_lock

    environment = env.settings
    layout = env.layout
    states = []
    try:
        for conn in (conns if locks is None else locks):
            state = HostState(conn, layout, emit)
            take_lock(state, emit, host=conn.host, action=action, release=None, force=force_unlock,
                      rollout=environment.rollout)
            states.append(state)
        try:
            done = EnvironmentTls(env, conns, emit, proxies).ensure(force=force, pair=pair)
        finally:
            if environment.shared_proxy is not None:
                # An install may have changed the kind of the HTTPS listener (to the PROXY
                # protocol, the first time since an earlier deployctl), or failed and put the
                # previous one back: the shared proxy's route follows what is live on each host.
                from .shared_proxy import put_routes

                put_routes(env, list(conns), emit, None)
    finally:
        for state in states:
            state.release()
    emit(Message(done))
    return done
