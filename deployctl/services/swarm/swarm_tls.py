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
from ...config import LoadedConfig
from ...events import Timer
from ...plan.edge.tls_config import TLS_LISTEN_PORT
from ...plan.swarm import services as sw
from ...secrets import Secret
from ..edge import tls
from ..hosts import tls_port
from .swarm_site import SwarmSite, _each, node_proxies


def prepare(site: SwarmSite, loaded: LoadedConfig, env_name: str) -> None:
    """Before the switch, under the lock (a deploy's prepare): the proxy publishes the HTTPS
    port; the challenge location on every node (tls = "acme", loaded by the switch's
    reload), or every node's certificate state removed (HTTPS off: the switch's reload drops
    it), as a host's deploy does."""
    mode = loaded.config.tls_for(env_name)
    publish_tls_port(site, loaded, env_name)
    conns, proxies = node_proxies(site, loaded, env_name)

    def one(pair) -> None:  # type: ignore[no-untyped-def]
        host = tls.HostTls(pair[0], site.names, site.layout, site.emit, pair[1])
        if mode == "acme":
            host.enable_challenges()
        elif mode == "off":
            host.remove_all()

    if mode != "files":
        _each(list(zip(conns, proxies)), one)


def publish_tls_port(site: SwarmSite, loaded: LoadedConfig, env_name: str) -> None:
    """An existing proxy service that does not publish proxy_tls_port yet gets it (its tasks
    replaced one node at a time, as a new proxy image's: services/swarm/swarm_site.route);
    they start with the live configuration, the switch comes after. A proxy created by this
    deploy's switch is created with it (plan/swarm/services.proxy_service)."""
    published = tls_port(loaded, env_name)
    if published is None:
        return
    ports = site.manager.run(sw.proxy_published(site.names))
    if not ports.ok or str(published) in ports.stdout.split():
        return
    timer = Timer(site.emit, "proxy", host=site.manager.host,
                  detail=f"publish HTTPS on port {published} on every node, one node at a time")
    check(site.manager, sw.publish_proxy_port(site.names, published, TLS_LISTEN_PORT), timeout=600)
    timer.done()


def certificate(site: SwarmSite, loaded: LoadedConfig, env_name: str, release: str,
                pair: tuple[Secret, Secret] | None) -> None:
    """After a deploy's switch, under the manager's lock again (as services/lifecycle/
    deploy._certificate on hosts): every node gets the environment's one certificate. The
    release is live either way; a failure says so (exit 9)."""
    try:
        conns, proxies = node_proxies(site, loaded, env_name)
        tls.ensure_locked(loaded, env_name, conns, site.emit, pair=pair, action="deploy (certificate)",
                          proxies=proxies, locks=[site.manager])
    except tls.CertificateError as exc:
        raise tls.CertificateError(f"release {release} is live, but: {exc.message}", hint=exc.hint) from None
