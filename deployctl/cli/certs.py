"""`deployctl certs status` and `deployctl certs renew`: the HTTPS certificate of an
environment's hosts (docs/tls.md). `renew` is what a schedule runs (a Jenkins cron, say):
it renews only what is within 30 days of expiry, so running it daily is cheap."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Annotated

import typer

from .common import finish, table
from .config import EnvOption
from .context import AppContext

certs_app = typer.Typer(help="The HTTPS certificate of an environment's hosts: status (names, issuer, expiry), renew.",
                        no_args_is_help=True)


def _refuse_off(app: AppContext, env: str) -> None:
    from ..errors import UsageError

    if app.loaded.config.tls_for(env) == "off":
        raise UsageError(f'tls is "off" for {env}: it serves no certificate',
                         hint='set tls = "acme" or "files" in [proxy] (or in the environment) (docs/tls.md)')


@contextmanager
def _hosts(app: AppContext, env: str):  # type: ignore[no-untyped-def]
    """The environment's hosts as services/edge/tls.py takes them: (connectors, their proxies
    or None for hosts', the connectors whose lock guards them or None for their own). A Swarm's
    are its ready nodes' global proxy tasks under the manager's lock (cli/swarm_nodes.py)."""
    _refuse_off(app, env)
    if app.loaded.environment(env).target == "swarm":
        from .swarm_nodes import swarm_nodes

        with swarm_nodes(app, env) as (conns, proxies, manager):
            yield conns, proxies, [manager]
        return
    from ..services.hosts import connected

    with connected(app.env(env).connectors()) as conns:
        yield conns, None, None


@certs_app.command("status")
def status(ctx: typer.Context, env: EnvOption = "local") -> None:
    """Per host (a Swarm: per node): the certificate's names, issuer and expiry (nothing is changed)."""
    from ..plan.edge.certificates import now_utc
    from ..services.edge.tls import EnvironmentTls

    app: AppContext = ctx.obj
    with _hosts(app, env) as (conns, proxies, _):
        now = now_utc()
        hosts = EnvironmentTls(app.env(env), conns, app.emit, proxies).status()
    if app.mode == "json":
        finish(app, "certs status", {"environment": env, "hosts": [h.as_dict(now) for h in hosts]})
        return
    table(app, f"certificates of {env}", ["host", "names", "issuer", "expires", "days left"],
          [[h.host, ", ".join(h.info.names), h.info.issuer, f"{h.info.not_after:%Y-%m-%d %H:%M} UTC",
            f"{h.info.days_left(now):.0f}"] if h.info else [h.host, "-", "-", "no certificate", "-"]
           for h in hosts])


@certs_app.command("renew")
def renew(
    ctx: typer.Context,
    env: EnvOption = "local",
    force: Annotated[bool, typer.Option("--force", help="A new certificate even if the current one has more "
                                                        "than 30 days left.")] = False,
) -> None:
    """Renew the certificate when it is within 30 days of expiry (or missing on a host);
    under the deploy lock. Exit 9 when the CA refuses (the current certificate keeps serving)."""
    from ..services.edge.tls import ensure_locked

    app: AppContext = ctx.obj
    with _hosts(app, env) as (conns, proxies, locks):
        done = ensure_locked(app.env(env), conns, app.emit, force=force, proxies=proxies, locks=locks)
    finish(app, "certs renew", {"environment": env, "result": done})
