"""After a host's switch by the standby flag (a warm rollback: services/lifecycle/switch.py):
the target's own configuration, so that what nginx loads next (a reload, a restart, the
anchor's fallback) is what serves; both route to the target.

Split as a Swarm's (services/swarm/swarm_deploy._OwnConfig), with the same commands
(plan/lifecycle/switch_plan.proxy_test_staged, proxy_move): staged beside the live file and
tested (`nginx -t`, the slowest part: a `docker exec`) while the verify runs, since a staged
file changes nothing nginx serves; renamed over nginx.conf and reloaded (one command, a HUP,
no exec) only once the verify passed, beside the record and retire; dropped when the verify
failed. Where the proxy needs more than a reload (another image, the anchor missing or
publishing otherwise), nothing is staged and the whole route runs once verified, as before.
`settle` waits for all of it: the caller releases the lock only after that, so no other
command reads or writes the proxy's files meanwhile. A failure after the verify only warns:
the target serves, verified, through the flag, and the next switch writes its own file.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait

from ...events import Emit, Message
from ...plan.edge.proxy_containers import ProxyContainers
from ...plan.lifecycle.switch_plan import SwitchPlan
from ..edge.proxy import HostProxy, Staged
from .host_calls import why as _why


class OwnConfig:
    def __init__(self, proxy: HostProxy, plan: SwitchPlan, previous: bytes | None,
                 look: "Future[ProxyContainers] | None", emit: Emit) -> None:
        assert plan.flag is not None
        self.proxy, self.plan, self.previous, self.look, self.emit = proxy, plan, previous, look, emit
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="own-config")
        self._staging: Future[Staged | None] | None = None
        self._after: Future[None] | None = None
        self._seen: ProxyContainers | None = None

    def stage(self) -> None:
        """Beside the flag and the verify: the proxy's listing (taken during the bring-up),
        then the file staged and tested."""
        self._staging = self._pool.submit(self._stage)

    def _stage(self) -> Staged | None:
        self._seen = self.look.result() if self.look is not None else self.proxy.containers()
        return self.proxy.stage(self.plan.proxy, self.plan.proxy_config, self.previous, self._seen)

    def finish(self) -> None:
        """The verified switch: the swap (or the whole route) and the flags' clean-up."""
        self._then(self._finish)

    def abandon(self) -> None:
        """The switch failed: nothing is swapped in, and the staged file goes once the staging ended."""
        self._then(self._abandon)

    def _then(self, work) -> None:  # type: ignore[no-untyped-def]
        if self._after is None:
            self._after = self._pool.submit(work)
            self._pool.shutdown(wait=False)

    def _finish(self) -> None:
        plan, proxy = self.plan, self.proxy
        try:
            staged = self._staging.result() if self._staging is not None else None
            if staged is None:  # the proxy needs more than a reload: the route as a switch's
                proxy.route(plan.proxy, plan.proxy_config, self._seen)
                proxy.clear_flags(keep=plan.flag)  # type: ignore[arg-type]
            else:
                # Independent: the earlier renders' flags are no file the new configuration
                # names, and the one raised stays (the replaced workers may still read it).
                with ThreadPoolExecutor(max_workers=1) as beside:
                    flags = beside.submit(proxy.clear_flags, plan.flag)
                    proxy.swap_staged(staged)
                flags.result()
        except Exception as exc:  # noqa: BLE001 - the target serves, verified, through the flag
            self.emit(Message(f"{plan.target.release} serves through the standby flag, but writing its own proxy "
                              f"configuration failed ({_why(exc)}); the next deploy or rollback writes it",
                              level="warning", host=proxy.conn.host))

    def _abandon(self) -> None:
        try:
            staged = self._staging.result() if self._staging is not None else None
        except BaseException:  # noqa: BLE001 - a refused or failed staging removed its file itself
            return
        if staged is not None:
            try:
                self.proxy.drop_staged()
            except Exception:  # noqa: BLE001 - best effort: the next route stages its own (the failure is said)
                pass

    def settle(self) -> None:
        """Until everything above ended (a switch that never got to finish or abandon:
        abandoned). A signal while waiting (the CLI's handler raises it here, then ignores
        the next ones) still waits for it before going on."""
        self.abandon()  # a no-op once finish or abandon ran
        after = self._after
        assert after is not None
        try:
            after.result()
        except BaseException:
            futures_wait([after])
            raise
