"""After a switch by the standby flag (a warm rollback, on a host or on a Swarm): the
target's own configuration, so that what nginx loads next (a reload, a restart, the anchor's
fallback, a restarted task) is what serves; both route to the target.

One way on every target, with the same commands (plan/lifecycle/switch_plan.proxy_test_staged,
proxy_move): staged beside the live file and tested (`nginx -t`, the slowest part: a
`docker exec`) while the verify runs, since a staged file changes nothing nginx serves;
renamed over nginx.conf and reloaded (one command, a HUP, no exec) only once the verify
passed, beside the record and retire, with the earlier flags cleared beside it (not the one
raised: the replaced workers may still read it); dropped when the verify failed. `settle`
waits for all of it: the caller releases the lock only after that, so no other command reads
or writes the proxy's files meanwhile. A failure after the verify only warns: the target
serves, verified, through the flag, and the next switch writes its own file.

What differs per target is where the files are, which a `Staging` says: one host's proxy
(`HostStaging`, below), or every node's (services/swarm/swarm_deploy.SwarmStaging).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Generic, Protocol, TypeVar

from ...events import Emit, Message
from ...plan.edge.proxy_containers import ProxyContainers
from ...plan.lifecycle.switch_plan import SwitchPlan
from ..edge.proxy import HostProxy, Staged
from .host_calls import why as _why

S = TypeVar("S")


class Staging(Protocol[S]):
    """The target's own configuration on one target's proxies. `stage` writes and tests it
    (a refused or failed staging raises, with what it wrote removed); `make_live` swaps in
    what `stage` returned; `clear_flags` runs beside that; `drop` removes what a switch that
    then failed had staged."""

    where: str  # the host (or manager) the warning names

    def stage(self) -> S: ...  # None: nothing staged (make_live does it all)

    def make_live(self, staged: S) -> None: ...

    def clear_flags(self) -> None: ...

    def drop(self) -> None: ...


class OwnConfig(Generic[S]):
    def __init__(self, staging: Staging[S], release: str, emit: Emit) -> None:
        self.staging, self.release, self.emit = staging, release, emit
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="own-config")
        self._staged: Future[S] | None = None
        self._after: Future[None] | None = None

    def stage(self) -> None:
        """Beside the flag and the verify (the flag is up: nothing staged changes what serves)."""
        self._staged = self._pool.submit(self.staging.stage)

    def finish(self) -> None:
        """The verified switch: the swap and the flags' clean-up, in the background."""
        self._then(self._finish)

    def abandon(self) -> None:
        """The switch failed: nothing is swapped in, and the staged file goes once the staging ended."""
        self._then(self._abandon)

    def _then(self, work) -> None:  # type: ignore[no-untyped-def]
        if self._after is None:
            self._after = self._pool.submit(work)
            self._pool.shutdown(wait=False)

    def _finish(self) -> None:
        staging = self.staging
        try:
            assert self._staged is not None, "finish() before stage()"
            staged = self._staged.result()
            # Independent: the earlier renders' flags are no file the new configuration
            # names, and the one raised stays.
            with ThreadPoolExecutor(max_workers=1) as beside:
                flags = beside.submit(staging.clear_flags)
                staging.make_live(staged)
            flags.result()
        except Exception as exc:  # noqa: BLE001 - the target serves, verified, through the flag
            self.emit(Message(f"{self.release} serves through the standby flag, but writing its own proxy "
                              f"configuration failed ({_why(exc)}); the next deploy or rollback writes it",
                              level="warning", host=staging.where))

    def _abandon(self) -> None:
        if self._staged is None:
            return
        try:
            staged = self._staged.result()
        except BaseException:  # noqa: BLE001 - a refused or failed staging removed its file itself
            return
        if staged is None:  # nothing was staged (a host's proxy that needs the whole route)
            return
        try:
            self.staging.drop()
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


class HostStaging:
    """One host's proxy. Where it needs more than a reload (another image, the anchor missing
    or publishing otherwise: HostProxy.stage returns None), nothing is staged and the whole
    route runs once verified, as a switch's. `look`: the proxy's listing, taken during the
    bring-up (a flag changes no container)."""

    def __init__(self, proxy: HostProxy, plan: SwitchPlan, previous: bytes | None,
                 look: "Future[ProxyContainers] | None") -> None:
        assert plan.flag is not None
        self.proxy, self.plan, self.previous, self.look = proxy, plan, previous, look
        self.where = proxy.conn.host
        self._seen: ProxyContainers | None = None

    def stage(self) -> Staged | None:
        self._seen = self.look.result() if self.look is not None else self.proxy.containers()
        return self.proxy.stage(self.plan.proxy, self.plan.proxy_config, self.previous, self._seen)

    def make_live(self, staged: Staged | None) -> None:
        if staged is None:
            self.proxy.route(self.plan.proxy, self.plan.proxy_config, self._seen)
        else:
            self.proxy.swap_staged(staged)

    def clear_flags(self) -> None:
        self.proxy.clear_flags(keep=self.plan.flag)  # type: ignore[arg-type]

    def drop(self) -> None:
        self.proxy.drop_staged()
