"""The switch sequence on a Swarm, as data: start -> health -> route -> verify -> retire,
the order of plan/lifecycle/switch_plan.py with Swarm's verbs. services/swarm/swarm_deploy.py runs exactly
these argvs: its jobs' steps carry each phase's rows (`*_rows()`) beside the action that runs
it, and `--dry-run` prints the rows of the same steps.

Deploy creates the target release's services beside the live ones; rollback scales the
kept (scaled to 0) services of an earlier release back to the counts it ran with. Either
way the proxy moves only once every task runs and passed its health check, and the release
it replaced is scaled to 0 after the drain: kept, so a rollback needs no registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..lifecycle import docker_commands as dc
from . import services as sw
from . import swarm_health as sh
from ..lifecycle.names import Names
from ..edge.proxy_config import CONFIG_FILE, LIVE_COPY, PROXY_MOUNT, STAGED_FILE, Shadow, Standby
from ..lifecycle.release_spec import HealthProbe, ReleaseSpec
from ..lifecycle.steps import Argv, PlannedStep
from .swarm_proxy import render_swarm_proxy_config, standby_address, tasks_address
from ..lifecycle.switch_plan import (CANARY_FIRED, WATCHDOG_ROLE, GuardSpec, VerifyCheck, proxy_move, proxy_swap,
                                     verify_check)

if TYPE_CHECKING:  # as plan/lifecycle/switch_plan.py: a rollback never imports the judging modules
    from ..judging.canary import CanarySpec
    from ..judging.shadow import ShadowSpec

# Where the watchdog's argv names the nginx it joins: each node's own proxy task, found on
# the node when the canary splits (SwarmPlan.watchdog_on).
NODE_PROXY_TASK = "<the node's proxy task>"

READY_MARGIN = 30.0  # on top of the longest health timeout: pulling the image on each node


@dataclass(frozen=True)
class SwarmPlan:
    target: ReleaseSpec
    create: bool  # deploy: services created; rollback: kept ones scaled back up
    services: tuple[sw.SwarmService, ...]
    secrets: tuple[tuple[str, str, str], ...]  # (Docker secret name, service, secret) to create
    start: tuple[Argv, ...]
    undo: tuple[Argv, ...]  # a failure before the switch: remove (deploy) or scale to 0 (rollback)
    migrations: tuple[tuple[str, Argv], ...]  # (job name, argv): deploys only
    proxy_config: str
    checker: Argv  # on the manager, for deployctl's own http/tcp checks of each task; () when none
    proxy_service: Argv  # created only where missing
    reload: Argv  # on each node, in its proxy task: the staged file tested, renamed, reloaded (a put-back)
    move: Argv  # on each node: the route's staged file, tested already in the DNS wait, renamed, reloaded
    verify: VerifyCheck
    drain: float
    ready_timeout: float
    guard: GuardSpec | None = None  # deploys only: the error-rate guard over every node's proxy log
    network: Argv = ()  # deploys: the release's own overlay network, created before its services
    tls_port: int | None = None  # HTTPS on: the proxy publishes it on every node too (docs/tls.md)
    shadow: ShadowSpec | None = None  # deploys only: copies of live requests first (services/swarm/swarm_judges.py)
    canary: CanarySpec | None = None  # deploys only: a share of the traffic first (services/swarm/swarm_judges.py)
    watchdog: Argv | None = None  # the canary's watchdog on each node, joined to NODE_PROXY_TASK

    def watchdog_on(self, nginx: str) -> Argv:
        """The canary's watchdog as one node starts it: joined to that node's proxy task."""
        assert self.watchdog is not None
        return tuple(f"container:{nginx}" if arg == f"container:{NODE_PROXY_TASK}" else arg for arg in self.watchdog)

    @property
    def wanted(self) -> dict[str, int]:
        return {s.name: s.replicas for s in self.services}

    @property
    def probes(self) -> dict[str, HealthProbe]:
        """Swarm service -> its health check (deployctl runs the http/tcp ones itself)."""
        return {s.name: s.health for s in self.services}

    def retire(self, others: list[str]) -> Argv:
        return tuple(sw.scale({name: 0 for name in others}))

    # The rows `--dry-run` prints for each of a Swarm job's steps (services/swarm/swarm_deploy.py
    # pairs each with the action that runs it, in the order it runs them).

    def secret_create(self, names: Names, name: str, service: str) -> Argv:
        """One Docker secret of this release (its value on stdin)."""
        return tuple(sw.create_secret(name, names.labels("secret", self.target.release, service)))

    def secret_rows(self, names: Names) -> list[PlannedStep]:
        return [PlannedStep("secrets", f"docker secret {name} ({service}: {secret}) from stdin, if missing",
                            self.secret_create(names, name, service))
                for name, service, secret in self.secrets]

    def network_rows(self) -> list[PlannedStep]:
        if not self.network:
            return []
        return [PlannedStep("network", "the release's own overlay network (its services' deploy.toml names as "
                                       "aliases), if missing", self.network)]

    def migration_rows(self, name: str, argv: Argv) -> list[PlannedStep]:
        # Before the new tasks start, as on hosts: a release never runs on a schema it does
        # not know, and a failed migration leaves no task of it to remove.
        leftover = tuple(sw.remove_services([name]))
        return [PlannedStep("migrate", f"once, as a replicated job ({name}); a failure stops here", argv),
                PlannedStep("migrate", "only if its name is taken: a leftover of a killed run, removed (then the "
                                       "job created again)", leftover),
                PlannedStep("migrate", f"on the manager: until its task ended, asked there every {sw.JOB_POLL:g}s "
                                       f"(one command, answering within {sw.JOB_WAIT:g}s; asked again until the "
                                       "deploy's bound); a failed one's last 20 log lines kept",
                            tuple(sw.wait_job(name))),
                PlannedStep("migrate", "the job goes, whatever it ended with", leftover)]

    def start_rows(self) -> list[PlannedStep]:
        return [PlannedStep("start", "", argv) for argv in self.start]

    def health_rows(self) -> list[PlannedStep]:
        counts = ", ".join(f"{s.name}={s.replicas}" for s in self.services)
        rows = [PlannedStep("health", f"every task running and past its health check ({counts}; Swarm keeps a "
                                      f"task `starting` until then), up to {self.ready_timeout:g}s",
                            tuple(sw.service_tasks([s.name for s in self.services])))]
        if self.checker:
            checks = "; ".join(f"{p.container}: {p.describe()}" for p in sh.checked(self.probes).values())
            rows.append(PlannedStep("health", "deployctl's own check of every task, over the app's network from a "
                                              f"checker (the proxy image) on the manager, removed after: {checks}",
                                    self.checker))
        return rows

    def shadow_rows(self) -> list[PlannedStep]:
        return _shadow_rows(self, self.shadow) if self.shadow is not None else []

    def canary_rows(self) -> list[PlannedStep]:
        return _canary_rows(self, self.canary) if self.canary is not None else []

    def route_rows(self) -> list[PlannedStep]:
        routed = self.target.routed
        return [
            PlannedStep("route", f"on every ready node: stage the proxy's {STAGED_FILE} (upstream "
                                 f"{tasks_address(routed.container)}:{routed.port} by Docker's DNS, "
                                 f"stamp {self.target.release})"),
            PlannedStep("route", "the proxy as a global service, only if it is missing", self.proxy_service),
            PlannedStep("route", f"on every node, before any node swaps (one command per node, once its staged file "
                                 f"is written): until Docker's DNS there resolves every service of "
                                 f"{self.target.release} (its gossip reaches nodes apart), at most {sw.RESOLVE_WAIT:g}s, "
                                 "then routed anyway (the verify judges); then nginx -t of the staged file: refused on "
                                 "any node, no node swaps",
                        tuple(sw.wait_resolved_and_test(NODE_PROXY_TASK, [tasks_address(s.name) for s in self.services],
                                                        f"{PROXY_MOUNT}/{STAGED_FILE}"))),
            PlannedStep("route", f"on every node at once, once every node's test passed: the staged file renamed "
                                 f"over {CONFIG_FILE}, nginx HUPed (one command, no `docker exec`; a node whose proxy "
                                 f"starts now gets the file as {CONFIG_FILE} directly and tests it as it reloads)",
                        self.move),
        ]

    def verify_rows(self) -> list[PlannedStep]:
        return [PlannedStep("verify", "on every node: " + self.verify.describe()),
                PlannedStep("verify", "if it fails (or a signal comes): the previous nginx.conf back on every node "
                                      "(staged, tested, renamed, reloaded), until every node answers from the "
                                      "previous release; then the drain, this release's services removed, "
                                      "recorded `reverted`; exit 6", self.reload)]

    def record_rows(self) -> list[PlannedStep]:
        return [PlannedStep("record", "on the manager: append to releases.jsonl (with this release's spec and "
                                      "replicas); write current")]

    def guard_rows(self) -> list[PlannedStep]:
        if self.guard is None:
            return []
        return [PlannedStep("guard", f"{self.guard.describe()}; read from every node's proxy task, one "
                                     "verdict over all of them (the replaced release keeps its tasks meanwhile)",
                            tuple(dc.logs_since("<the node's proxy task>", "<switch time>"))),
                PlannedStep("guard", f"if it crosses: put the previous nginx.conf back on every node (staged as "
                                     f"{STAGED_FILE}, tested, renamed, reloaded); wait until every node "
                                     "answers from the previous release, then the drain; remove this "
                                     "release's services; record `reverted` with the numbers; exit 6",
                            self.reload)]

    def retire_rows(self) -> list[PlannedStep]:
        return [PlannedStep("drain", f"wait {self.drain:g}s for requests the releases about to stop still hold "
                                     "(what is left of it for one that left the proxies when it went warm: "
                                     "warm.json's since)"),
                PlannedStep("stop", "scale the other releases' services to 0 (kept for rollback), but the "
                                    "replaced release's while its warm window lasts (rollout.warm_window: a "
                                    "rollback until then is a proxy switch; recorded in the manager's warm.json)",
                            self.retire(["<other releases' services>"]))]


def _shadow_rows(plan: SwarmPlan, spec: ShadowSpec) -> list[PlannedStep]:
    return [
        PlannedStep("shadow", f"on every ready node: stage the proxy's {STAGED_FILE}: the live release answers, "
                              f"`mirror` copies {'/'.join(spec.methods)} requests to the tasks of "
                              f"{tasks_address(plan.target.routed.container)}; tested, renamed, reloaded (as the "
                              "route below)", plan.reload),
        PlannedStep("shadow", spec.describe().replace("on every host", "on every node"),
                    tuple(dc.logs_since("<the node's proxy task>", "<mirror time>"))),
        PlannedStep("shadow", "stop: put the live nginx.conf back on every node (staged, tested, renamed, reloaded); "
                              "remove this release's services; record `aborted` with the numbers; exit 6"),
        PlannedStep("shadow", "pass: the route below replaces the mirroring nginx.conf"),
    ]


def _canary_rows(plan: SwarmPlan, spec: CanarySpec) -> list[PlannedStep]:
    watchdog = plan.watchdog or ()
    name = watchdog[watchdog.index("--name") + 1] if "--name" in watchdog else "<the watchdog>"
    return [
        PlannedStep("canary", "the proxy service on this release's proxy image first, still live-only (as the route "
                              "below: one node at a time), only if it runs another image"),
        PlannedStep("canary", "on the manager: record canary.json (release, live release, share, deadline); on every "
                              f"ready node: copy the live nginx.conf to {LIVE_COPY}"),
        PlannedStep("canary", f"on every ready node: a watchdog that restores the live-only proxy "
                              f"{spec.watchdog_seconds}s from now unless removed first (a killed deployctl leaves 100% "
                              "on the live release)", watchdog),
        PlannedStep("canary", f"on every ready node: stage the proxy's {STAGED_FILE}: split_clients on $request_id, "
                              f"{spec.share}% to the tasks of {tasks_address(plan.target.routed.container)}, the rest "
                              "to the live release's; tested, renamed, reloaded (as the route below)", plan.reload),
        PlannedStep("canary", spec.describe().replace("on every host", "on every node"),
                    tuple(dc.logs_since(NODE_PROXY_TASK, "<split time>"))),
        PlannedStep("canary", "`deploy --promote` / `--abort` from another shell decide early (the manager's "
                              "canary-decision file, read every second)"),
        PlannedStep("canary", "abort: put the live nginx.conf back on every node (staged, tested, renamed, reloaded); "
                              "remove the watchdogs and this release's services; record `aborted` with the numbers; "
                              "exit 6"),
        PlannedStep("canary", "promote: the route below (100%), the watchdogs armed until it is verified, then "
                              "removed on every node (had one fired in between: route again)",
                    tuple(dc.remove([name]))),
    ]


def canary_config_for(target: ReleaseSpec, live: ReleaseSpec, share: int) -> str:
    """The canary's split on every node: `share` percent to `target`'s routed service's tasks,
    the rest to `live`'s; the target's proxy settings, as the switch's (plan/lifecycle/
    switch_plan.canary_config on a host)."""
    routed, new = live.routed, target.routed
    return render_swarm_proxy_config(target.proxy, live.release, routed.container, routed.port,
                                     canary=(target.release, share, new.container, new.port))


def node_watchdog(target: ReleaseSpec, names: Names, proxy_dir: str, spec: CanarySpec) -> Argv:
    """The host's watchdog (plan/lifecycle/docker_commands.run_canary_watchdog) on a node's
    engine: the proxy's image, joined to the node's proxy task (nginx is its process 1),
    the node's proxy directory (what the task mounts) its only mount."""
    return tuple(dc.run_canary_watchdog(
        names.canary_watchdog, target.proxy.image, proxy_dir, NODE_PROXY_TASK, spec.watchdog_seconds,
        config=CONFIG_FILE, live_copy=LIVE_COPY, fired=CANARY_FIRED, labels=names.labels(WATCHDOG_ROLE, target.release)))


def _proxy_argvs(target: ReleaseSpec, names: Names, proxy_dir: str, proxy_port: int,
                 tls_port: int | None) -> tuple[Argv, Argv, Argv]:
    service = sw.proxy_service(names, target.proxy.image, proxy_dir, proxy_port, target.proxy.listen_port,
                               names.labels("proxy"), tls_port)
    return tuple(service), proxy_swap(NODE_PROXY_TASK, proxy_dir), proxy_move(NODE_PROXY_TASK, proxy_dir)


def _checker(target: ReleaseSpec, names: Names, services: list[sw.SwarmService] | tuple[sw.SwarmService, ...]) -> Argv:
    probes = {s.name: s.health for s in services}
    if not sh.checked(probes):
        return ()
    return tuple(sh.run_checker(names, target.release, target.proxy.image, sh.checker_attempt(probes)))


def proxy_config_for(target: ReleaseSpec, standby: ReleaseSpec | None = None, flag: str = "") -> str:
    """`standby`: the release this switch replaces, left warm (rollout.warm_window): the
    configuration routes to its tasks instead while `flag` exists in the node's proxy
    directory, so a rollback to it inside the window is a flag raised on every node, with no
    reload (plan/swarm/swarm_proxy.py)."""
    routed = target.routed
    back = None
    if standby is not None and flag:
        kept = standby.routed
        back = (Standby(standby.release, standby_address(kept.container, kept.port), flag), kept.container, kept.port)
    return render_swarm_proxy_config(target.proxy, target.release, routed.container, routed.port, standby=back)


def shadow_config_for(target: ReleaseSpec, live: ReleaseSpec, methods: tuple[str, ...], timeout: float) -> str:
    """The shadow window on every node (plan/judging/shadow.py): `live` answers every user,
    copies of `methods` go to `target`'s routed service; the target's proxy settings, as the
    switch's (plan/lifecycle/switch_plan.shadow_config on a host)."""
    routed, new = live.routed, target.routed
    return render_swarm_proxy_config(target.proxy, live.release, routed.container, routed.port,
                                     shadow=(Shadow(target.release, methods, timeout), new.container, new.port))


def ready_timeout(services: list[sw.SwarmService] | tuple[sw.SwarmService, ...]) -> float:
    return max(s.health.timeout for s in services) + READY_MARGIN


def deploy_plan(target: ReleaseSpec, services: list[sw.SwarmService], names: Names, proxy_dir: str, *,
                proxy_port: int, drain: float, migrations: dict[str, list[str]],
                registry_auth: bool | str = False, guard: GuardSpec | None = None,
                tls_port: int | None = None, shadow: ShadowSpec | None = None,
                canary: CanarySpec | None = None) -> SwarmPlan:
    """`migrations`: service -> command, run once as a job of that service's new image.
    `registry_auth`: the manager is logged in to the registry (a str: in that client config
    directory; plan/swarm/services.py: create_service)."""
    by_service = {s.service: s for s in services}
    jobs = tuple((f"{names.migration(target.release)}-{service}",
                  tuple(sw.migration_job(by_service[service], names.network,
                                         f"{names.migration(target.release)}-{service}", command,
                                         names.labels("migrate", target.release, service))))
                 for service, command in migrations.items())
    proxy_service, reload, move = _proxy_argvs(target, names, proxy_dir, proxy_port, tls_port)
    return SwarmPlan(
        target=target, create=True, services=tuple(services),
        secrets=tuple((name, s.service, secret) for s in services for name, secret in s.secrets),
        start=tuple(tuple(sw.create_service(s, names.network, registry_auth, names.release_network(target.release)))
                    for s in services),
        network=tuple(sw.create_release_network(names, target.release)),
        undo=(tuple(sw.remove_services([s.name for s in services])),),
        migrations=jobs, proxy_config=proxy_config_for(target), checker=_checker(target, names, services),
        proxy_service=proxy_service, reload=reload, move=move,
        verify=verify_check(target), drain=drain, ready_timeout=ready_timeout(services), tls_port=tls_port, guard=guard,
        shadow=shadow, canary=canary,
        watchdog=node_watchdog(target, names, proxy_dir, canary) if canary is not None else None,
    )


def rollback_plan(target: ReleaseSpec, services: list[sw.SwarmService], names: Names, proxy_dir: str, *,
                  proxy_port: int, drain: float, tls_port: int | None = None) -> SwarmPlan:
    """The target's kept services back to the counts it ran with; a failure scales them to
    0 again. Nothing is pulled or created. A warm target (its tasks still run at those
    counts: services/swarm/swarm_deploy.rollback_env) gets this plan without `start` and `undo`."""
    proxy_service, reload, move = _proxy_argvs(target, names, proxy_dir, proxy_port, tls_port)
    return SwarmPlan(
        target=target, create=False, services=tuple(services), secrets=(),
        start=(tuple(sw.scale({s.name: s.replicas for s in services})),),
        undo=(tuple(sw.scale({s.name: 0 for s in services})),),
        migrations=(), proxy_config=proxy_config_for(target), checker=_checker(target, names, services),
        proxy_service=proxy_service, reload=reload, move=move,
        verify=verify_check(target), drain=drain, ready_timeout=ready_timeout(services), tls_port=tls_port,
    )
