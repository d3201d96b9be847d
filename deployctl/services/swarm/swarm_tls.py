"""HTTPS on a Swarm (docs/tls.md, docs/swarm.md): services/edge/tls.py's host code, run on
every ready node's global proxy task as on a fleet's hosts. The nodes are reached as the
switch reaches them (SwarmSite.node: same connector settings, same proxy_dir), each node's
proxy is its task (NodeProxy: `docker ps` by the service label, ports published in host
mode), and the environment's lock is the manager's, the one every Swarm deploy takes.

So one certificate for the environment: the HTTP-01 answer on every node before the CA is
asked, the certificate installed staged on every node (version directory, tls/live link,
nginx -t, reload), the ACME account key on every node (0600), renewed by any deploy and by
`deployctl certs renew`. The proxy service publishes proxy_tls_port on every node
(created with it; an existing proxy gets it added, one node at a time).
"""

from __future__ import annotations

from ...adapters.connector import check
from ...events import Timer
from ...plan.edge import tls_config as tc
from ...plan.edge.tls_config import TLS_LISTEN_PORT
from ...plan.lifecycle.steps import PlannedStep
from ...plan.swarm import services as sw
from ...secrets import Secret
from ..edge import tls
from ..env import Env
from .swarm_site import SwarmSite, _each, node_proxies


def prepare(site: SwarmSite, env: Env) -> None:
    """Before the switch, under the lock (a deploy's prepare): the proxy publishes the HTTPS
    port; the challenge location on every node (tls = "acme", loaded by the switch's
    reload), or every node's certificate state removed (HTTPS off: the switch's reload drops
    it), as a host's deploy does."""
    mode = env.config.tls_for(env.name)
    publish_tls_port(site, env)
    conns, proxies = node_proxies(site, env)

    def one(pair) -> None:  # type: ignore[no-untyped-def]
        host = tls.HostTls(pair[0], site.names, site.layout, site.emit, pair[1])
        if mode == "acme":
            host.enable_challenges()
        elif mode == "off":
            host.remove_all()

    if mode != "files":
        _each(list(zip(conns, proxies)), one)


def prepare_rows(site: SwarmSite, env: Env) -> list[PlannedStep]:
    """What `prepare` does, as `--dry-run` prints it (no connection)."""
    published, mode = env.tls_port, env.config.tls_for(env.name)
    rows = []
    if published is not None:
        rows.append(PlannedStep("tls", f"the proxy service publishes {published} on every node, if it does not yet "
                                       "(its tasks replaced one node at a time)",
                                tuple(sw.publish_proxy_port(site.names, published, TLS_LISTEN_PORT))))
    if mode == "acme":
        rows.append(PlannedStep("tls", f"on every node: write {tc.tls_dir(site.layout.proxy_dir)}/{tc.CHALLENGE_CONF}: "
                                       "HTTP-01 answers, loaded by the switch below"))
    elif mode == "off":
        rows.append(PlannedStep("tls", f"on every node: remove {tc.tls_dir(site.layout.proxy_dir)} (HTTPS is off "
                                       "here; a certificate left from before goes with the switch's reload)"))
    return rows


def publish_tls_port(site: SwarmSite, env: Env) -> None:
    """An existing proxy service that does not publish proxy_tls_port yet gets it (its tasks
    replaced one node at a time, as a new proxy image's: services/swarm/swarm_site.route);
    they start with the live configuration, the switch comes after. A proxy created by this
    deploy's switch is created with it (plan/swarm/services.proxy_service)."""
    published = env.tls_port
    if published is None:
        return
    ports = site.manager.run(sw.proxy_published(site.names))
    if not ports.ok or str(published) in ports.stdout.split():
        return
    timer = Timer(site.emit, "proxy", host=site.manager.host,
                  detail=f"publish HTTPS on port {published} on every node, one node at a time")
    check(site.manager, sw.publish_proxy_port(site.names, published, TLS_LISTEN_PORT), timeout=600)
    timer.done()


def certificate(site: SwarmSite, env: Env, release: str,
                pair: tuple[Secret, Secret] | None) -> None:
    """After a deploy's switch, under the manager's lock again (as services/lifecycle/
    deploy._certificate on hosts): every node gets the environment's one certificate. The
    release is live either way; a failure says so (exit 9)."""
    try:
        conns, proxies = node_proxies(site, env)
        tls.ensure_locked(env, conns, site.emit, pair=pair, action="deploy (certificate)",
                          proxies=proxies, locks=[site.manager])
    except tls.CertificateError as exc:
        raise tls.CertificateError(f"release {release} is live, but: {exc.message}", hint=exc.hint) from None
