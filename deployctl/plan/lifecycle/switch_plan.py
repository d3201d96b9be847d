"""The one switch sequence, as data: start -> health -> route -> verify, then retire.

Deploy and rollback differ only in how the target release's containers come up (created
from images, or started again from the stopped ones a deploy kept) and in what a failure
before the switch undoes (remove them, or stop them again). Everything else, and the
order, is this one plan, run by services/lifecycle/switch.py; its `*_rows()` are what `--dry-run`
prints for each step the run takes (paired with its action in services/lifecycle/: the
run walks those Steps and the dry run prints their rows).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from . import docker_commands as dc
from .containers import ContainerSpec
from .names import Names, StateLayout
from ..edge.proxy_config import ANCHOR_MARKER, CONFIG_FILE, CONFIG_PATH, LIVE_COPY, PROXY_MOUNT, RELEASE_HEADER, STAGED_FILE, STANDBY_FLAG_PREFIX, Shadow, Standby, config_tag, render_proxy_config
from .release_spec import HealthProbe, ReleaseSpec
from .steps import Argv, PlannedStep
from ..edge.tls_config import TLS_LISTEN_PORT

if TYPE_CHECKING:  # a rollback never has a canary or a shadow window: their modules (and the access log's) are not imported for it
    from ..judging.canary import CanarySpec
    from ..judging.shadow import ShadowSpec

Chain = tuple[Argv, ...]  # argvs run in order; the chains of a step run at once
ANCHOR_ROLE = "proxy-anchor"  # io.deployctl.role of the proxy's containers
NGINX_ROLE = "proxy-nginx"
WATCHDOG_ROLE = "canary-watchdog"
CANARY_FIRED = "canary-fired"  # in the proxy directory (StateLayout.canary_fired): the watchdog's report


@dataclass(frozen=True)
class VerifyCheck:
    """Through the proxy, after the switch: `path` answers from the target release (the
    proxy's per-upstream stamp), `streak` times in a row. With `body_names_release` (the
    app's own verify_path) the body must name the release too; `want_ok`: 200 is needed
    (the routed service's HTTP health path), else any answer not made by the proxy."""

    release: str
    path: str
    header: str = RELEASE_HEADER
    body_names_release: bool = False
    want_ok: bool = True
    streak: int = 3
    timeout: float = 15.0
    # The answers of a streak 50 ms apart: after a reload, nginx's old workers may still
    # accept for tens of ms. A standby's flag reloads nothing (every worker tests the file on
    # every request): its streak is asked back to back, and only a wrong answer waits.
    spaced: bool = True

    def describe(self) -> str:
        expect = "200" if self.want_ok else "an answer from the app (not 502/504)"
        extra = f", the body naming {self.release}" if self.body_names_release else ""
        pace = "" if self.spaced else ", back to back"
        return (f"GET http://127.0.0.1:<proxy port>{self.path} through the proxy: {expect} with "
                f"{self.header}: {self.release}{extra}, {self.streak} times in a row{pace} (up to {self.timeout:g}s)")


@dataclass(frozen=True)
class GuardSpec:
    """The error-rate guard after the switch (services/judging/watch.py): `window` seconds reading the
    proxy's access log, a switch back above `max_error_rate` once `min_requests` were seen."""

    window: float
    max_error_rate: float
    min_requests: int

    def describe(self) -> str:
        return (f"{self.window:g}s reading the proxy's access log every second: switch back when the new "
                f"release's 5xx rate crosses {self.max_error_rate:.1%} (from {self.min_requests} requests), "
                "while the previous release still runs")


def guard_spec(rollout, no_guard: bool = False) -> GuardSpec | None:  # type: ignore[no-untyped-def]
    """From `[environments.<env>.rollout]`; None when off (guard_window = 0, or --no-guard)."""
    if no_guard or rollout.guard_window <= 0:
        return None
    return GuardSpec(rollout.guard_window, rollout.guard_max_error_rate, rollout.guard_min_requests)


@dataclass(frozen=True)
class ProxyStart:
    """How the proxy comes up where it does not run yet (or not with this image): the
    anchor that publishes the port, and nginx in its namespace. services/edge/proxy.py runs
    exactly these."""

    anchor: Argv
    nginx_name: str
    nginx: Argv
    listen_port: int
    swap: Argv  # where nginx runs: the staged configuration tested, renamed into place, reloaded
    tls_port: int | None = None  # HTTPS: the host port the anchor publishes for it (docs/tls.md)
    # Behind a host's shared proxy, HTTPS takes its PROXY protocol (the client's address), so
    # it is published on the host's loopback only: nobody else can connect and forge one.
    tls_loopback: bool = False
    # Behind a host's shared proxy: over HTTP the client's address is taken from its
    # X-Forwarded-For (plan/edge/client_address.py, added by services/edge/proxy.py), so HTTP
    # too is published on the host's loopback only: from anywhere else a connection would
    # reach nginx from the same gateway (Docker's proxy) and could forge the header.
    shared: bool = False


LOOPBACK = "127.0.0.1"


def proxy_start(target: ReleaseSpec, names: Names, proxy_dir: str, port: int, tls_port: int | None = None,
                tls_loopback: bool = False, shared: bool = False) -> ProxyStart:
    proxy = target.proxy
    name = names.proxy_nginx(config_tag(proxy.image))
    return ProxyStart(
        anchor=tuple(dc.run_proxy_anchor(names, proxy.image, port, proxy.listen_port, names.labels(ANCHOR_ROLE),
                                         proxy_dir, PROXY_MOUNT, CONFIG_PATH,
                                         f"{PROXY_MOUNT}/{ANCHOR_MARKER}",
                                         tls=(tls_port, TLS_LISTEN_PORT) if tls_port else None,
                                         tls_address=LOOPBACK if tls_port and tls_loopback else None,
                                         address=LOOPBACK if shared else None)),
        nginx_name=name,
        nginx=tuple(dc.run_proxy_nginx(names, name, proxy.image, proxy_dir, PROXY_MOUNT, CONFIG_PATH,
                                       names.labels(NGINX_ROLE))),
        listen_port=proxy.listen_port,
        swap=proxy_swap(name, proxy_dir),
        tls_port=tls_port,
        tls_loopback=bool(tls_port) and tls_loopback,
        shared=shared,
    )


def background_placeholder() -> Argv:
    """The dry run's row for plan/lifecycle/docker_commands.in_background: only the run knows its list."""
    return ("sh", "-c", f"trap '' HUP; (<the stops and removals>{dc.BACKGROUND_TAIL}")


def proxy_swap(nginx: str, proxy_dir: str) -> Argv:
    """The staged configuration made live in `nginx` (the switch's, or whichever nginx runs
    when the previous configuration goes back)."""
    return tuple(dc.nginx_swap_and_reload(nginx, proxy_dir, PROXY_MOUNT, CONFIG_FILE, STAGED_FILE))


def proxy_test_staged(nginx: str) -> Argv:
    """`proxy_swap`'s test alone, ahead of the rename (plan/lifecycle/docker_commands.nginx_test_staged)."""
    return tuple(dc.nginx_test_staged(nginx, PROXY_MOUNT, STAGED_FILE))


def proxy_move(nginx: str, proxy_dir: str) -> Argv:
    """`proxy_swap` once its test passed: rename and reload (docker_commands.nginx_move_and_reload)."""
    return tuple(dc.nginx_move_and_reload(nginx, proxy_dir, CONFIG_FILE, STAGED_FILE))


@dataclass(frozen=True)
class SwitchPlan:
    target: ReleaseSpec
    create: bool  # deploy: containers created from images; rollback: the kept ones started
    start: tuple[Chain, ...]
    undo: Chain  # a failure before the switch: remove (deploy) or stop (rollback) what started
    probes: tuple[HealthProbe, ...]
    proxy_config: str
    proxy: ProxyStart
    verify: VerifyCheck
    drain: float
    guard: GuardSpec | None = None  # deploys only: a rollback is itself the way back
    canary: CanarySpec | None = None  # deploys only: a share of the traffic first (services/judging/canary.py)
    watchdog: Argv | None = None  # the canary's watchdog, as services/judging/canary.py starts it
    shadow: ShadowSpec | None = None  # deploys only: copies of live requests first (services/judging/shadow.py)
    # A rollback to the live configuration's standby (plan/edge/proxy_config.Standby): the switch
    # creates this flag file in the proxy directory, and `proxy_config` is written and
    # reloaded only after the verify (both then route to the target).
    flag: str | None = None
    standby: str | None = None  # the release proxy_config can switch back to by its flag
    # Deploys: the rendered env files (secrets) go once the containers exist, which keep
    # their env in their own config (docs/security.md, "Env files").
    forget_env: Argv | None = None
    # stop_first workers: (service, the argv listing its running containers). Those not of
    # the target release are stopped before anything starts, and started again by an undo.
    stop_first: tuple[tuple[str, Argv], ...] = ()
    proxy_dir: str = ""  # the host's proxy directory (the flags of earlier configurations go from there)

    # -- the rows `--dry-run` prints for each step of the switch (services/lifecycle/switch.py
    # and the deploy and rollback around it pair them with the action that runs) ----------

    def start_rows(self) -> list[PlannedStep]:
        """stop_first workers of other releases, then every container's chain."""
        rows = [PlannedStep("stop first", f"{service} (stop_first): its running containers of other releases, "
                                          "stopped before the new one starts (started again if this fails "
                                          "before the switch)", listing)
                for service, listing in self.stop_first]
        return rows + [PlannedStep("start", "created while the migration runs (not started)"
                                   if self.create and argv is not chain[-1] else "", argv)
                       for chain in self.start for argv in chain]

    def forget_env_rows(self) -> list[PlannedStep]:
        if self.forget_env is None:
            return []
        return [PlannedStep("secrets", "remove the env files once the containers exist (they keep their env "
                                       "in their own config)", self.forget_env)]

    def health_rows(self) -> list[PlannedStep]:
        return [PlannedStep("health", probe.describe()) for probe in self.probes]

    def shadow_rows(self) -> list[PlannedStep]:
        return self._shadow_steps(self.shadow) if self.shadow is not None else []

    def canary_rows(self) -> list[PlannedStep]:
        return self._canary_steps(self.canary) if self.canary is not None else []

    def switch_rows(self) -> list[PlannedStep]:
        """The route and the verify; to the standby (`flag`): the flag, the target's own
        configuration staged and tested beside the verify, then swapped in
        (services/lifecycle/own_config.py)."""
        routed = self.target.routed
        standby = f"; standby {self.standby} (its warm window), switched to by a flag file" if self.standby else ""
        written = (f"upstream {routed.container}:{routed.port}, {RELEASE_HEADER}: {self.target.release}{standby}")
        if self.flag is not None:
            nginx = self.proxy.nginx_name
            return [
                PlannedStep("switch", f"create {PROXY_MOUNT}/{self.flag} (the proxy directory): the live nginx.conf "
                                      f"sends every request to its standby {self.target.release} while it exists; "
                                      "no reload"),
                PlannedStep("route", f"beside the flag and the verify: the target's own nginx.conf staged as "
                                     f"{STAGED_FILE} ({written}) and tested in the running nginx (nothing reloads "
                                     "it); a file it refuses is removed and never made live (a warning)",
                            proxy_test_staged(nginx)),
                PlannedStep("verify", self.verify.describe()),
                PlannedStep("route", f"once verified, beside the record and retire (the lock is released once it "
                                     f"ended): {STAGED_FILE} renamed over nginx.conf and nginx reloaded (one command; "
                                     "a failure only warns: the flag serves the target); a failed verify removes "
                                     f"{STAGED_FILE} instead", proxy_move(nginx, self.proxy_dir)),
                PlannedStep("route", "beside that: the flags of earlier configurations go (not this one: the "
                                     "replaced workers may still read it)", clear_flags(self.proxy_dir, self.flag)),
                PlannedStep("route", f"where the proxy needs more than a reload (nginx {self.target.proxy.image} not "
                                     "running, the anchor missing or publishing otherwise): nothing is staged "
                                     "beside the verify, and once verified the whole route below runs instead"),
                *self._route_rows(),
            ]
        return [PlannedStep("route", f"write the proxy's nginx.conf (as {STAGED_FILE} where nginx runs): {written}"),
                *self._route_rows(), PlannedStep("verify", self.verify.describe())]

    def _route_rows(self) -> list[PlannedStep]:
        return [PlannedStep("route", "the proxy's anchor (its published port), only if it is missing", self.proxy.anchor),
                PlannedStep("route", f"nginx {self.target.proxy.image} beside the running one (which then quits "
                                     "gracefully), only if it is not running this image yet", self.proxy.nginx),
                PlannedStep("route", f"else: test {STAGED_FILE}, rename it over nginx.conf, reload the running "
                                     "nginx (one command on the host)", self.proxy.swap)]

    def record_rows(self) -> list[PlannedStep]:
        """A deploy's record carries the release's spec; a rollback's names its target (whose
        spec is in its own deploy record)."""
        what = "with this release's spec" if self.create else "the rollback to this release"
        return [PlannedStep("record", f"append to releases.jsonl ({what}); write current")]

    def guard_rows(self) -> list[PlannedStep]:
        if self.guard is None:
            return []
        return [PlannedStep("guard", self.guard.describe(), tuple(dc.logs_since(self.proxy.nginx_name, "<switch time>"))),
                PlannedStep("guard", f"if it crosses: put the previous nginx.conf back (staged as {STAGED_FILE}, "
                                     "tested, renamed, reloaded); "
                                     "wait until the proxy answers from the previous release, then the "
                                     "drain; remove this release's containers; record `reverted` with the numbers; "
                                     "exit 6", self.proxy.swap)]

    def retire_rows(self, keep: int) -> list[PlannedStep]:
        """What follows the verified switch (services/lifecycle/retire.py): drain, stop, prune."""
        return [
            PlannedStep("drain", f"before stopping a release that served within the last {self.drain:g}s "
                                 "(the one replaced, without a warm window): wait for the requests it holds"),
            PlannedStep("stop", "the other releases' running containers still draining (kept for rollback), "
                                "but the previous release's while its warm window lasts (never its workers)",
                        tuple(dc.stop(["<other releases' containers>"]))),
            PlannedStep("stop", "those out of the proxy long enough (an older warm release), then prune's "
                                "removals: by the host after this command returns, nothing waits for them",
                        background_placeholder()),
            PlannedStep("prune", f"keep {keep} releases (never the live or previous good)"),
        ]

    def _shadow_steps(self, spec: ShadowSpec) -> list[PlannedStep]:
        return [
            PlannedStep("shadow", f"copy the live nginx.conf to {LIVE_COPY}; write the proxy's nginx.conf: the live "
                                  f"release answers, `mirror` copies {'/'.join(spec.methods)} requests to "
                                  f"{self.target.release} (staged as {STAGED_FILE}, tested, renamed, reloaded)",
                        self.proxy.swap),
            PlannedStep("shadow", spec.describe(), tuple(dc.logs_since(self.proxy.nginx_name, "<mirror time>"))),
            PlannedStep("shadow", "stop: put the live nginx.conf back, test and reload; remove this release's "
                                  "containers; record `aborted` with the numbers; exit 6"),
            PlannedStep("shadow", "pass: the switch below replaces the mirroring nginx.conf"),
        ]

    def _canary_steps(self, spec: CanarySpec) -> list[PlannedStep]:
        nginx = self.proxy.nginx_name
        return [
            PlannedStep("canary", "record canary.json (release, live release, share, deadline); copy the live "
                                  "nginx.conf to nginx.live.conf"),
            PlannedStep("canary", "the proxy on this release's image first, still live-only (as the route "
                                  "below: a new nginx beside the old, or a reload)"),
            PlannedStep("canary", f"a watchdog that restores the live-only proxy {spec.watchdog_seconds}s from now "
                                  "unless removed first (a killed deployctl leaves 100% on the live release)",
                        self.watchdog),
            PlannedStep("canary", f"write the proxy's nginx.conf: split_clients on $request_id, {spec.share}% to "
                                  f"{self.target.release}, the rest to the live release (staged as {STAGED_FILE}, "
                                  "tested, renamed, reloaded)", self.proxy.swap),
            PlannedStep("canary", spec.describe(), tuple(dc.logs_since(nginx, "<split time>"))),
            PlannedStep("canary", "`deploy --promote` / `--abort` from another shell decide early (the host's "
                                  "canary-decision file, read every second)"),
            PlannedStep("canary", "abort: put the live-only nginx.conf back, test and reload; remove the watchdog "
                                  "and this release's containers; record `aborted` with the numbers; exit 6"),
            PlannedStep("canary", "promote: the switch below (100%), the watchdog armed until it is verified, then "
                                  "removed (had it fired in between: route again)",
                        tuple(dc.remove([self.watchdog[self.watchdog.index("--name") + 1]]))
                        if self.watchdog else None),
        ]


def clear_flags(proxy_dir: str, keep: str) -> Argv:
    """The standby flags in the proxy directory but `keep` (services/edge/proxy.clear_flags)."""
    return ("find", proxy_dir, "-maxdepth", "1", "-name", f"{STANDBY_FLAG_PREFIX}*", "!", "-name", keep, "-delete")


def canary_clears(layout: StateLayout) -> tuple[Argv, ...]:
    """Before a split: the decision and the watchdog's mark an earlier canary left."""
    return tuple(("rm", "-f", path) for path in (layout.canary_decision, layout.canary_fired))


def canary_leftovers(layout: StateLayout) -> tuple[Argv, ...]:
    """Once the watchdog is gone (promoted, aborted, recovered): the canary's record, its
    decision, the watchdog's mark and the live-only copy."""
    return tuple(("rm", "-f", path) for path in (layout.canary, layout.canary_decision, layout.canary_fired,
                                                 f"{layout.proxy_dir}/{LIVE_COPY}"))


def canary_file_rows(layout: StateLayout) -> list[PlannedStep]:
    """The canary's own files on the host, as services/judging/canary.HostCanary removes them."""
    return ([PlannedStep("canary", "before the split: a decision and a watchdog's mark left from an earlier canary "
                                   "go", argv) for argv in canary_clears(layout)]
            + [PlannedStep("canary", "once the watchdog is gone: the canary's record, decision, the watchdog's mark "
                                     "and the live-only copy", argv) for argv in canary_leftovers(layout)])


def canary_watchdog(target: ReleaseSpec, names: Names, proxy: ProxyStart, proxy_dir: str,
                    spec: CanarySpec) -> Argv:
    """In the proxy's own image, joined to the nginx of this release's image (the canary
    brings the proxy to it before the split); paths inside the host's state directory."""
    return tuple(dc.run_canary_watchdog(
        names.canary_watchdog, target.proxy.image, proxy_dir, proxy.nginx_name, spec.watchdog_seconds,
        config=CONFIG_FILE, live_copy=LIVE_COPY, fired=CANARY_FIRED,
        labels=names.labels(WATCHDOG_ROLE, target.release)))


def canary_config(target: ReleaseSpec, live: ReleaseSpec, share: int) -> str:
    """The split: the live release keeps its upstream and the rest of the traffic, the target
    gets `share` percent; the target's proxy settings (its image runs the proxy from now)."""
    upstreams = {r.release: f"{r.routed.container}:{r.routed.port}" for r in (live, target)}
    return render_proxy_config(target.proxy, live.release, upstreams, canary=(target.release, share))


def shadow_config(target: ReleaseSpec, live: ReleaseSpec, methods: tuple[str, ...], timeout: float = 1.0) -> str:
    """The live release answers every request; copies of `methods` go to the target too.
    The target's proxy settings, as the canary's split (its image runs the proxy from now)."""
    upstreams = {r.release: f"{r.routed.container}:{r.routed.port}" for r in (live, target)}
    return render_proxy_config(target.proxy, live.release, upstreams, shadow=Shadow(target.release, methods, timeout))


def verify_check(target: ReleaseSpec) -> VerifyCheck:
    routed = target.routed
    if routed.verify_path:
        return VerifyCheck(target.release, routed.verify_path, body_names_release=True)
    if routed.health.kind == "http":
        return VerifyCheck(target.release, routed.health.path)
    return VerifyCheck(target.release, "/", want_ok=False)


def proxy_config_for(target: ReleaseSpec, standby: Standby | None = None) -> str:
    routed = target.routed
    return render_proxy_config(target.proxy, target.release, {target.release: f"{routed.container}:{routed.port}"},
                               standby=standby)


def stop_first_listings(target: ReleaseSpec, names: Names) -> tuple[tuple[str, Argv], ...]:
    return tuple((service, tuple(dc.running_of_service(names, service))) for service in target.stop_first)


def deploy_plan(target: ReleaseSpec, containers: list[ContainerSpec], names: Names, proxy_dir: str, *,
                proxy_port: int, drain: float, guard: GuardSpec | None = None,
                canary: CanarySpec | None = None, tls_port: int | None = None,
                shadow: ShadowSpec | None = None, tls_loopback: bool = False, shared: bool = False) -> SwitchPlan:
    """New containers from images, each on the release's network and the app's. `shared`:
    behind a host's shared proxy (ProxyStart.shared)."""
    proxy = proxy_start(target, names, proxy_dir, proxy_port, tls_port, tls_loopback, shared)
    env_files = [spec.env_file for spec in containers if spec.env_file]
    return SwitchPlan(
        target=target, create=True,
        start=tuple(tuple(tuple(argv) for argv in dc.start_service(spec, target.network, names.network))
                    for spec in containers),
        undo=(tuple(dc.remove(target.containers)),),
        probes=tuple(target.probes()), proxy_config=proxy_config_for(target),
        proxy=proxy, verify=verify_check(target), drain=drain, guard=guard, canary=canary,
        watchdog=canary_watchdog(target, names, proxy, proxy_dir, canary) if canary is not None else None,
        forget_env=("rm", "-f", "--", *env_files) if env_files else None,
        shadow=shadow,
        stop_first=stop_first_listings(target, names), proxy_dir=proxy_dir,
    )


def rollback_plan(target: ReleaseSpec, names: Names, proxy_dir: str, *, proxy_port: int, drain: float,
                  running: frozenset[str] | set[str] = frozenset(), flag: str | None = None,
                  standby: Standby | None = None, tls_port: int | None = None,
                  tls_loopback: bool = False, shared: bool = False) -> SwitchPlan:
    """The target's kept containers started again; a failure stops them again. Containers
    already `running` (a release inside its warm window, as an inspect found it) are neither
    started nor stopped: a rollback to a warm release is a proxy switch only, and with
    `flag` (the target is the live configuration's standby, at the address it names) the
    switch is that file created, the reload after the verify. `standby`: the release this
    rollback leaves warm, in the target's configuration."""
    stopped = [name for name in target.containers if name not in running]
    flag = flag if not stopped else None
    verify = verify_check(target)
    return SwitchPlan(
        target=target, create=False,
        start=tuple((tuple(dc.start([name])),) for name in stopped),
        undo=(tuple(dc.stop(stopped)),) if stopped else (),
        probes=tuple(target.probes()), proxy_config=proxy_config_for(target, standby),
        proxy=proxy_start(target, names, proxy_dir, proxy_port, tls_port, tls_loopback, shared),
        verify=verify if flag is None else replace(verify, spaced=False),
        drain=drain,
        flag=flag, standby=standby.release if standby else None,
        stop_first=stop_first_listings(target, names), proxy_dir=proxy_dir,
    )
