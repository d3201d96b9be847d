"""`deployctl maintenance on|off`: every host of the environment answers 503 with
`Retry-After` and a page (plan/edge/maintenance.py), while the app keeps running.

Per host, under its deploy lock (so a deploy never writes a configuration read before the
change): the page first, then the live nginx.conf with its maintenance block rewritten,
staged beside it and made live by the switch's own swap (`nginx -t`, rename, reload). A
host where nginx refuses it keeps what it served. The hosts are changed in parallel and
each says what it did. A Swarm's nodes the same way, each node's global proxy task through
the same staged swap, under the manager's lock (cli/maintenance.py gives them).
"""

from __future__ import annotations

import secrets as token_source
import time
from dataclasses import dataclass

from ...errors import DeployctlError, DeployError, ExitCode
from ...events import Emit, Timer
from ...plan.edge import maintenance as plan
from ...plan.pipeline.build import rfc3339
from ...plan.edge.proxy_config import RELEASE_HEADER
from ...plan.edge.tls_config import NO_REDIRECT_HEADER
from ..lifecycle.host_calls import each_host_result, not_everywhere, why
from ..lifecycle.host_state import HostState
from ..env import Env
from .proxy import SERVED_WAIT, HostProxy, answers_settled
from ..lifecycle.transaction import take_lock

MAX_AT_ONCE = 16


@dataclass
class MaintenanceResult:
    host: str
    maintenance: bool  # as the host's proxy serves now
    changed: bool
    error: str | None = None


def set_maintenance(env: Env, emit: Emit, *, on: bool, page: bytes | None = None,
                    retry_after: int = plan.DEFAULT_RETRY_AFTER, connectors: list | None = None,
                    proxies: list | None = None, lock=None) -> list[MaintenanceResult]:  # type: ignore[no-untyped-def]
    """`proxies`: each connector's proxy (a Swarm's ready nodes, their global proxy tasks:
    services/swarm/swarm_site.NodeProxy, connected by the caller); `lock`: the connector whose
    deploy lock guards them all (a Swarm's manager). By default each host's own proxy and lock."""
    environment = env.settings
    state = plan.Maintenance(rfc3339(time.time()), retry_after, token_source.token_hex(16)) if on else None
    conns = connectors if connectors is not None else env.connectors()
    names, layout = env.names, env.layout
    by_host = dict(zip((c.host for c in conns), proxies)) if proxies is not None else {}

    def locked(conn):  # type: ignore[no-untyped-def]
        """The change, with what fails it as the host's result."""
        host_state = HostState(conn, layout, emit)
        take_lock(host_state, emit, host=conn.host, action="maintenance", release=None,
                  message="on" if on else "off", rollout=environment.rollout)
        return host_state

    def one(conn) -> MaintenanceResult:  # type: ignore[no-untyped-def]
        try:
            if lock is not None:  # a Swarm's node: connected, and under the manager's lock already
                return _apply(conn, by_host[conn.host], state, page, emit, env.config.proxy.port)
            conn.connect()
            host_state = locked(conn)
            try:
                return _apply(conn, HostProxy(conn, names, layout, emit), state, page, emit,
                              env.config.proxy.port)
            finally:
                host_state.release()
        except DeployctlError as exc:
            return MaintenanceResult(conn.host, not on, False, exc.message)
        except OSError as exc:
            return MaintenanceResult(conn.host, not on, False, why(exc))
        finally:
            if lock is None:
                conn.close()

    manager = locked(lock) if lock is not None else None
    try:
        results = each_host_result(conns, one, limit=MAX_AT_ONCE)
    finally:
        if manager is not None:
            manager.release()
    not_everywhere(results, f"maintenance {'on' if on else 'off'} did not reach every host", ExitCode.DEPLOY_FAILED,
                   done="changed", again="run it again once the hosts answer (it is idempotent)")
    return results


def _apply(conn, proxy: HostProxy, state: plan.Maintenance | None, page: bytes | None,  # type: ignore[no-untyped-def]
           emit: Emit, listen_port: int) -> MaintenanceResult:
    live = proxy.live_config()
    if live is None:
        raise DeployError(f"{conn.host}: nothing deployed here yet (no proxy configuration): deploy first")
    text = live.decode(errors="replace")
    before = plan.state_of(text)
    if state is not None and before is not None:  # on again: since and token stay, Retry-After may change
        state = plan.Maintenance(before.since, state.retry_after, before.token)
    try:
        new = plan.with_state(text, state)
    except ValueError as exc:
        raise DeployError(f"{conn.host}: {exc}") from None
    page_path = f"{proxy.layout.proxy_dir}/{plan.PAGE_FILE}"
    timer = Timer(emit, "maintenance", host=conn.host, detail="on" if state else "off")
    if state is not None:
        # The page before the block that serves it; a page given again replaces the old one.
        if page is not None or before is None:
            conn.put_file(page_path, page if page is not None else plan.DEFAULT_PAGE, 0o644)
    if new != text:
        proxy.replace(new.encode(), "the maintenance change")
        _wait_served(conn, proxy, listen_port, on=state is not None)
    if state is None:
        conn.run(["rm", "-f", "--", page_path])
    timer.done("unchanged (already so)" if new == text else "nginx -t passed, reloaded, answering so")
    return MaintenanceResult(conn.host, state is not None, new != text)


def _wait_served(conn, proxy: HostProxy, listen_port: int, *, on: bool) -> None:  # type: ignore[no-untyped-def]
    """Until the proxy answers as the new state says: a reload is asynchronous (nginx's
    master starts new workers after the command returned, and the old ones accept for a
    moment still), so `on` returns once requests get nginx's own 503 (no release stamp) and
    `off` once they reach a release, for RELOAD_SETTLE in a row: a WebSocket opened right
    after `on` returned got an old worker's upgrade under load."""
    port = proxy.port(listen_port)

    def asked() -> bool:
        answer = conn.http_get("127.0.0.1", port, "/", timeout=2.0, headers={NO_REDIRECT_HEADER: "1"})
        stamped = bool(answer.headers.get(RELEASE_HEADER.lower()))
        return (answer.status == 503 and not stamped) if on else stamped

    if port is not None and answers_settled(asked, poll=0.05):
        return
    raise DeployError(f"{conn.host}: the proxy took the maintenance change (nginx -t passed, reloaded) but did not "
                      f"answer {'with maintenance' if on else 'from the release'} within {SERVED_WAIT:g}s")


def maintenance_of(config: bytes | None) -> str | None:
    """What `status` shows: "on since ..." or None."""
    state = plan.state_of(config)
    return f"on since {state.since} (Retry-After {state.retry_after}s)" if state is not None else None
