"""The Swarm site's lifecycle rules on a scripted fake Swarm (tests/support/fake_swarm.py, a
FakeHost manager and one FakeHost per node), in milliseconds: for each phase x failure, the
outcome, the history record, the exit code and the lock state, and that they are the ones
a host gives for the same failure (tests/unit/test_lifecycle_rules.py's local site, run
here side by side: the same ExitCode, the same record, the lock released the same way).
tests/faults/test_swarm_faults.py proves the same rows on the real 3-node Swarm.

Only the entry points are driven (services/swarm/swarm_deploy.deploy_env and rollback_env, with the
fake manager and nodes), with virtual time (a 15 s verify costs nothing)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deployctl.adapters.connector import HttpResponse
from deployctl.config import LoadedConfig, parse_config
from deployctl.errors import DeployctlError, ExitCode, LockHeldError
from deployctl.events import Message, Recorder
from deployctl.plan.edge.proxy_config import RELEASE_HEADER, live_release
from deployctl.plan.lifecycle.lock import LockRecord
from deployctl.plan.swarm import services as sw
from deployctl.plan.lifecycle.releases import FAILED, LIVE, REVERTED, UNCERTAIN, History, ReleaseRecord
from deployctl.secrets import Secret
from deployctl.services.hosts import layout_for, names_for
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.swarm import swarm_deploy
from deployctl.services.env import Env
from tests.support.fake_host import Fault, failing_access_log, wrong_release
from tests.support.fake_swarm import FakeSwarm
from tests.support.virtual_time import virtual_time
from tests.unit import test_lifecycle_rules as host_rules

CONFIG = """
app = "shop"
registry = { server = "registry.example" }
[services.backend]
context = "backend"
migrate = ["python", "-m", "migrate"]
secrets = ["DB_PASSWORD"]
replicas = 2
[services.backend.healthcheck]
type = "docker"
timeout = 2
[services.frontend]
context = "frontend"
routed = true
verify_path = "/version"
replicas = 3
[services.frontend.healthcheck]
type = "docker"
timeout = 2
[services.frontend.env]
BACKEND_URL = "{{ backend.url }}"

[environments.swarm]
target = "swarm"
manager = "manager"
proxy_port = 8080
state_dir = "/srv/state"
[environments.swarm.rollout]
drain = 0
guard_window = 0
warm_window = 0
canary_window = 10
"""
LOADED = LoadedConfig(Path("/project/deploy.toml"), parse_config(CONFIG))
SECRETS = {"DB_PASSWORD": Secret("s3cret")}
LAYOUT = layout_for(LOADED, "swarm")
NAMES = names_for(LOADED, "swarm")
T0 = host_rules.T0
PROXY = r"^127\.0\.0\.1:8080/"  # a node's http_get through its proxy (the verify, the switch back's wait)
SWAP = host_rules.SWAP  # a node's staged swap: `nginx -t` of nginx.conf.next, rename, reload in one sh -c
# The route's own two commands per node: its DNS wait, which tests nginx.conf.next in the same
# `docker exec` (before any node swaps), then the swap, a rename and a HUP (plan/swarm/services.py).
TEST_IN_WAIT = r"^docker exec \S+ sh -c r=0; if command -v getent .* nginx -t -q -c \S+/nginx\.conf\.next "
MOVE = r"^sh -c mv -f \S+/nginx\.conf\.next "

virtual_time = pytest.fixture(autouse=True)(virtual_time)  # tests/support/virtual_time.py


class Site:
    """The Swarm environment on a fake Swarm, with the releases deployed so far."""

    def __init__(self, swarm: FakeSwarm, loaded: LoadedConfig | None = None) -> None:
        self.swarm, self.emit, self.n = swarm, Recorder(), 0
        self.loaded = loaded or LOADED  # the same environment "swarm", its rollout settings changed

    def deploy(self, **kwargs) -> str:  # type: ignore[no-untyped-def]
        self.n += 1
        images = ReleaseImages({s: f"registry.example/shop/{s}@sha256:{self.n:064d}" for s in ("backend", "frontend")},
                               f"{self.n:07d}")
        return swarm_deploy.deploy_env(Env.resolve(self.loaded, "swarm"), images, SECRETS, self.emit, manager=self.swarm,
                                   nodes=self.swarm.node, now=T0 + 60 * self.n, **kwargs).release

    def failing_deploy(self, **kwargs) -> DeployctlError:  # type: ignore[no-untyped-def]
        with pytest.raises(DeployctlError) as info:
            self.deploy(**kwargs)
        return info.value

    def rollback(self, **kwargs):  # type: ignore[no-untyped-def]
        return swarm_deploy.rollback_env(Env.resolve(self.loaded, "swarm"), self.emit, manager=self.swarm, nodes=self.swarm.node,
                                     **kwargs)

    def failing_rollback(self, **kwargs) -> DeployctlError:  # type: ignore[no-untyped-def]
        with pytest.raises(DeployctlError) as info:
            self.rollback(**kwargs)
        return info.value

    def warnings(self) -> list[str]:
        return [m.text for m in self.emit.of(Message) if m.level == "warning"]

    # -- the manager's state ----------------------------------------------------------------------

    def records(self) -> list[ReleaseRecord]:
        return list(History.parse(self.swarm.text(LAYOUT.history) or "").records)

    def current(self) -> str | None:
        return (self.swarm.text(LAYOUT.current) or "").strip() or None

    def locked(self) -> bool:
        return LAYOUT.lock_dir in self.swarm.dirs

    def tried(self) -> str:
        return self.records()[-1].release

    def on_disk(self) -> set[str | None]:
        """The release each node's nginx.conf names (what a restarted proxy task would load)."""
        return {live_release(n.text(f"{LAYOUT.proxy_dir}/nginx.conf")) for n in self.swarm.nodes.values()}


@pytest.fixture
def swarm():
    fake = FakeSwarm(NAMES)
    site = Site(fake)
    site.r1 = site.deploy()
    yield site, fake
    assert not fake.unknown and not any(n.unknown for n in fake.nodes.values()), fake.unknown


def assert_previous_serves(site: Site, fake: FakeSwarm, tried: str, outcome: str) -> None:
    """A failed Swarm deploy's whole contract, as a host's (test_lifecycle_rules.
    assert_previous_serves): every node's proxy serves the previous release and its
    nginx.conf names it, `current` names it, the tried release is recorded with `outcome`
    and its services, secrets and own network are gone, the lock is released."""
    assert fake.serving_nodes() == {site.r1} and site.on_disk() == {site.r1}
    assert site.current() == site.r1
    last = site.records()[-1]
    assert (last.release, last.action, last.outcome, last.previous) == (tried, "deploy", outcome, site.r1)
    assert fake.of_release(tried) == [] and NAMES.release_network(tried) not in fake.networks
    assert not [s for s, labels in fake.secrets.items() if labels.get("io.deployctl.release") == tried]
    assert fake.running(NAMES.container("frontend", site.r1)) == 3
    assert not site.locked()


def test_a_clean_deploy_goes_live_on_every_node_records_and_releases_the_lock(swarm):
    site, fake = swarm
    r2 = site.deploy()
    assert fake.serving_nodes() == {r2} and site.on_disk() == {r2} and site.current() == r2
    last = site.records()[-1]
    assert (last.release, last.action, last.outcome, last.previous) == (r2, "deploy", LIVE, site.r1)
    assert last.spec["release"] == r2 and last.extra["replicas"] == {"backend": 2, "frontend": 3}
    assert not site.locked()
    # the replaced release scaled to 0 (warm_window = 0), kept for rollback
    assert fake.services[NAMES.container("frontend", site.r1)].replicas == 0
    assert fake.running(NAMES.container("frontend", r2)) == 3


# -- each phase x failure, on the Swarm and on a host side by side ------------------------------------
#
# A row: what fails (arranged on the fake Swarm, and the same failure on a local fake host),
# then both sites must give the same ExitCode, the same history outcome and serve the same
# side ("previous": the release live before; "new": the one tried), each lock released.
# The Swarm patterns name a node's calls (its staged swap, its verify) or the manager's.

def _verify_wrong(site, fake) -> None:  # type: ignore[no-untyped-def]
    fake.faults.append(Fault("http_get", PROXY, times=0, effect=wrong_release))


def _swap_fails(nth: int, times: int = 1):  # type: ignore[no-untyped-def]
    return lambda site, fake: fake.faults.append(Fault("run", SWAP, nth=nth, times=times))


def _both(*arrange):  # type: ignore[no-untyped-def]
    def run(site, fake) -> None:  # type: ignore[no-untyped-def]
        for step in arrange:
            step(site, fake)
    return run


def _sigterm_at(pattern: str, call: str = "run"):  # type: ignore[no-untyped-def]
    """SIGTERM as the CLI's handler delivers it (host_rules.interrupt), right before the
    first call matching `pattern`; the call itself is then made."""
    def arrange(site, fake) -> None:  # type: ignore[no-untyped-def]
        if call == "run":
            fake.faults.append(Fault("run", pattern, effect=lambda argv: (host_rules.interrupt(site)(),
                                                                         fake._run(argv))[1]))
        else:
            fake.faults.append(Fault("http_get", pattern, effect="raise", action=host_rules.interrupt(site)))
    return arrange


# On the Swarm, the put-back's swaps come after the 3 nodes' route swaps.
SWITCH_BACK_FAILS = ("verify fails, then every switch-back swap exits 1 | verify + switch back",
                     _both(_verify_wrong, _swap_fails(1, times=0)), _both(_verify_wrong, _swap_fails(2)),
                     ExitCode.ROLLBACK_FAILED, UNCERTAIN, "new")
SIGTERM_AT_HEALTH = ("SIGTERM | health",
                     _sigterm_at(r"^docker service ps .*-frontend-"), _sigterm_at(host_rules.CONTAINER, call="http_get"),
                     ExitCode.DEPLOY_FAILED, FAILED, "previous")
ROWS = [  # id, on the Swarm, on the host, exit, outcome, serves
    ("bring-up: `docker service create` fails | start",
     lambda site, fake: fake.faults.append(Fault("run", r"^docker (\S+ )*service create .*--name \S+-frontend-")),
     lambda site, host: host.faults.append(Fault("run", r"^docker create .*-frontend-")),
     ExitCode.DEPLOY_FAILED, FAILED, "previous"),
    ("bring-up: a task fails as it starts | health",
     lambda site, fake: fake.crashing_services.append(r"-frontend-"),
     lambda site, host: host.crashing.append(r"-frontend-"),
     ExitCode.DEPLOY_FAILED, FAILED, "previous"),
    ("health never reached | health",
     lambda site, fake: fake.starting.append(r"-frontend-"),
     lambda site, host: host.faults.append(Fault("http_get", host_rules.CONTAINER, times=0)),
     ExitCode.DEPLOY_FAILED, FAILED, "previous"),
    ("route: the staged nginx.conf.next cannot be written | route",
     lambda site, fake: fake.faults.append(Fault("put_file", r"/proxy/nginx\.conf\.next$")),
     lambda site, host: host.faults.append(Fault("put_file", r"/proxy/nginx\.conf\.next$")),
     ExitCode.DEPLOY_FAILED, REVERTED, "previous"),
    ("route: `nginx -t` of the staged file refuses it (on a Swarm: on one node, in its DNS wait) | route",
     lambda site, fake: fake.faults.append(Fault("run", TEST_IN_WAIT, effect=sw.STAGED_REFUSED)),
     lambda site, host: host.faults.append(Fault("run", SWAP)),
     ExitCode.DEPLOY_FAILED, REVERTED, "previous"),
    ("route: the swap (on a Swarm: the rename and reload, tested already) exits 1 on one node | route",
     lambda site, fake: fake.faults.append(Fault("run", MOVE)), lambda site, host: host.faults.append(Fault("run", SWAP)),
     ExitCode.DEPLOY_FAILED, REVERTED, "previous"),
    ("verify answered by a wrong release, every time | verify",
     _verify_wrong, _verify_wrong,
     ExitCode.DEPLOY_FAILED, REVERTED, "previous"),
    SWITCH_BACK_FAILS,
    SIGTERM_AT_HEALTH,
    ("SIGTERM (fault point) | switch: config staged, before the swap",
     _sigterm_at(MOVE), _sigterm_at(SWAP),
     ExitCode.DEPLOY_FAILED, REVERTED, "previous"),
    ("SIGTERM (fault point) | switch -> verify",
     lambda site, fake: fake.faults.append(Fault("http_get", PROXY, effect=lambda a, p, path: (
         host_rules.interrupt(site)(), fake.node("10.9.0.1").http_get(a, p, path))[1])),
     lambda site, host: host.faults.append(Fault("http_get", PROXY, effect=lambda a, p, path: (
         host_rules.interrupt(site)(), host._through_proxy(path))[1])),
     ExitCode.DEPLOY_FAILED, REVERTED, "previous"),
    ("SIGTERM | migrate",
     _sigterm_at(r"^docker service create --detach --name \S+ --mode replicated-job"),
     _sigterm_at(r"^docker start --attach "),
     ExitCode.DEPLOY_FAILED, FAILED, "previous"),
    ("the migration fails | migrate",
     lambda site, fake: fake.failing_jobs.append(r"-migrate-"),
     lambda site, host: host.faults.append(Fault("run", r"^docker start --attach ", effect=3)),
     ExitCode.DEPLOY_FAILED, FAILED, "previous"),
]


@pytest.fixture
def local():
    yield from host_rules.local_site("local")


@pytest.mark.parametrize("on_swarm,on_host,exit,outcome,serves", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_a_failure_gives_the_swarm_what_it_gives_a_host(swarm, local, on_swarm, on_host, exit, outcome, serves):
    site, fake = swarm
    on_swarm(site, fake)
    error = site.failing_deploy()
    fake.faults.clear()
    fake.crashing_services.clear()
    fake.starting.clear()
    fake.failing_jobs.clear()
    tried = site.tried()
    assert (error.exit_code, site.records()[-1].outcome) == (exit, outcome), error.message
    if serves == "previous":
        assert_previous_serves(site, fake, tried, outcome)
    else:  # uncertain: the new release serves on every node, `current` still names the previous one
        assert fake.serving_nodes() == {tried} and site.current() == site.r1 and not site.locked()

    host_site, host = local
    on_host(host_site, host)
    host_error = host_site.failing_deploy()
    host.faults.clear()
    host.crashing.clear()
    host_tried = host_rules.tried_release(host)
    assert (host_error.exit_code, host_rules.records(host)[-1].outcome) == (exit, outcome), host_error.message
    assert host.serving() == (host_tried if serves == "new" else host_site.r1)
    assert host_rules.locked(host) == site.locked() == False  # noqa: E712 - both released
    # the same words in the record where the host's say why (a migration that ran, then a stop)
    said = "the migrations ran here, then the deploy stopped"
    assert (said in site.records()[-1].error) == (said in host_rules.records(host)[-1].error)

    # and the next deploy goes live on both
    r3, host_r3 = site.deploy(), host_site.deploy()
    assert fake.serving_nodes() == {r3} and not site.locked() and site.current() == r3
    assert host.serving() == host_r3


def test_a_lock_held_by_another_deploy_refuses_naming_it_and_changes_nothing(swarm, local):
    # faults.md: ... | lock | one refused (exit 8) naming the holder (who, machine, pid, release)
    site, fake = swarm
    holder = LockRecord(who="ann@ci", when="2026-12-06T00:00:00Z", action="deploy", release="20990101-000000-other",
                        pid=1, host="elsewhere")
    fake.mkdir(LAYOUT.lock_dir, exclusive=True)
    fake.put_file(LAYOUT.lock_info, holder.to_json().encode(), 0o644)
    services, history = dict(fake.services), fake.text(LAYOUT.history)
    error = site.failing_deploy()
    assert isinstance(error, LockHeldError) and error.exit_code == ExitCode.LOCK_HELD
    assert "ann@ci" in error.message and "20990101-000000-other" in error.message and "elsewhere" in error.message
    assert fake.services == services and fake.text(LAYOUT.history) == history
    assert LockRecord.parse(fake.read_file(LAYOUT.lock_info)) == holder  # still theirs
    host_site, host = local
    host.mkdir(host_rules.LOCAL.lock_dir, exclusive=True)
    host.put_file(host_rules.LOCAL.lock_info, holder.to_json().encode(), 0o644)
    assert host_site.failing_deploy().exit_code == error.exit_code


def test_the_lock_records_pid_and_machine_so_a_dead_holder_is_shown_stale(swarm):
    """The Swarm's lock used to record no pid or host (issue 22): its stale locks could only
    be broken blind. A holder whose process is gone on this machine is STALE."""
    from deployctl.services.hosts import machine
    from deployctl.services.lifecycle.deploy_result import DeployOptions

    site, fake = swarm
    dead = LockRecord(who="bob@ci", when="2026-12-06T00:00:00Z", action="deploy", release="x", pid=2 ** 22 + 7,
                      host=machine())
    fake.mkdir(LAYOUT.lock_dir, exclusive=True)
    fake.put_file(LAYOUT.lock_info, dead.to_json().encode(), 0o644)
    error = site.failing_deploy()
    assert error.exit_code == ExitCode.LOCK_HELD and "STALE" in error.message, error.message
    r2 = site.deploy(options=DeployOptions(force_unlock=True))
    assert fake.serving_nodes() == {r2} and not site.locked()
    assert any("broke a stale lock held by bob@ci" in w for w in site.warnings())


# SIGKILL, modelled as the manager and every node out of reach from the kill point on (as
# test_lifecycle_rules.KILLS): what the Swarm is left with is what a killed deployctl leaves.
KILLS = [  # step, the call the kill comes before, what serves after, whether the release was recorded live
    ("health", ("run", r"^docker service ps .*-frontend-"), "previous", False),
    ("switch -> verify (after the switch)", ("http_get", PROXY), "new", False),
    ("stop (after the record)", ("run", r"^docker service scale --detach \S+=0"), "new", True),
]


@pytest.mark.parametrize("call,pattern,serves,recorded", [k[1] + k[2:] for k in KILLS], ids=[k[0] for k in KILLS])
def test_a_killed_deploy_leaves_its_lock_and_the_next_forced_one_converges(swarm, call, pattern, serves, recorded):
    from deployctl.services.lifecycle.deploy_result import DeployOptions

    site, fake = swarm
    count = len(site.records())
    everything = [fake, *fake.nodes.values()]
    fake.faults.append(Fault(call, pattern, action=lambda: [setattr(h, "gone", True) for h in everything]))
    try:  # in-process, the deploy goes on (killed: -9); only what reached the Swarm matters here
        site.deploy()
    except DeployctlError:
        pass
    for h in everything:
        h.gone = False
    fake.faults.clear()
    tried = LockRecord.parse(fake.read_file(LAYOUT.lock_info)).release  # the lock names the dead deploy
    assert fake.serving_nodes() == {tried if serves == "new" else site.r1}
    assert site.current() == (tried if recorded else site.r1)
    assert [r.outcome for r in site.records()[count:]] == ([LIVE] if recorded else [])
    assert site.on_disk() == fake.serving_nodes()  # staged and swapped in one command: never a half switch
    r3 = site.deploy(options=DeployOptions(force_unlock=True))
    assert fake.serving_nodes() == {r3} and not site.locked()
    assert fake.running(NAMES.container("frontend", tried)) == 0  # the leftovers scaled to 0 or removed


# -- a rollback: the same rows ----------------------------------------------------------------------


def test_a_rollback_without_an_earlier_release_is_refused_as_on_a_host(swarm, local):
    """Issue 22: "no earlier good release" exited 2 on a Swarm and 6 elsewhere."""
    site, fake = swarm
    count = len(site.records())
    error = site.failing_rollback()
    host_error = local[0].failing_rollback()
    assert error.exit_code == host_error.exit_code == ExitCode.DEPLOY_FAILED
    assert error.message.startswith("no earlier good release"), error.message
    assert len(site.records()) == count and fake.serving_nodes() == {site.r1} and not site.locked()


def _target_500(site, fake) -> None:  # type: ignore[no-untyped-def]
    fake.faults.append(Fault("http_get", PROXY, times=0, effect=lambda a, p, path: HttpResponse(
        500, b"boom", {RELEASE_HEADER.lower(): site.r1})))


ROLLBACK_ROWS = [  # id, arranged on both sites, exit, outcome, serves
    ("the target's tasks never healthy | health",
     lambda site, fake: fake.starting.append(rf"-frontend-{site.r1}"),
     lambda site, host: host.faults.append(Fault("http_get", host_rules.CONTAINER, times=0,
                                                 effect=lambda a, p, path: HttpResponse(503, b"starting", {}))),
     ExitCode.DEPLOY_FAILED, FAILED, "previous"),
    ("the target answers /version 500 through the proxy | verify", _target_500, _target_500,
     ExitCode.DEPLOY_FAILED, REVERTED, "previous"),
    ("the swap exits 1 | route", lambda site, fake: fake.faults.append(Fault("run", MOVE)),
     lambda site, host: host.faults.append(Fault("run", SWAP)),
     ExitCode.DEPLOY_FAILED, REVERTED, "previous"),
    SWITCH_BACK_FAILS,
    SIGTERM_AT_HEALTH,
]


@pytest.mark.parametrize("on_swarm,on_host,exit,outcome,serves", [r[1:] for r in ROLLBACK_ROWS],
                         ids=[r[0] for r in ROLLBACK_ROWS])
def test_a_rollback_failure_gives_the_swarm_what_it_gives_a_host(swarm, local, on_swarm, on_host, exit, outcome,
                                                                   serves):
    site, fake = swarm
    site.r2 = site.deploy()
    on_swarm(site, fake)
    error = site.failing_rollback()
    fake.faults.clear()
    fake.starting.clear()
    last = site.records()[-1]
    assert (error.exit_code, last.action, last.release, last.outcome, last.previous) == (
        exit, "rollback", site.r1, outcome, site.r2), error.message
    assert fake.serving_nodes() == {site.r1 if serves == "new" else site.r2} and site.current() == site.r2
    assert not site.locked()
    if serves == "previous":  # the target's services back to 0 tasks (kept), r2's untouched
        assert fake.running(NAMES.container("frontend", site.r1)) == 0 and site.on_disk() == {site.r2}
        assert fake.running(NAMES.container("frontend", site.r2)) == 3

    host_site, host = local
    host_site.r2 = host_site.deploy()
    on_host(host_site, host)
    host_error = host_site.failing_rollback()
    host.faults.clear()
    host_last = host_rules.records(host)[-1]
    assert (host_error.exit_code, host_last.action, host_last.outcome) == (exit, "rollback", outcome)
    assert host.serving() == (host_site.r1 if serves == "new" else host_site.r2) and not host_rules.locked(host)

    [done] = site.rollback()  # and the same rollback without the fault converges
    assert done.release == site.r1 and fake.serving_nodes() == {site.r1} and site.current() == site.r1


def test_a_rollback_whose_record_fails_after_its_verified_switch_is_uncertain_as_on_a_host(swarm, local):
    # services/lifecycle/switch_failures.record_live, a rollback's too: the target serves, verified, the
    # history does not say so (exit 7). SwarmRollbackJob let it through as `failed` (exit 6).
    from deployctl.errors import UncertainError

    site, fake = swarm
    site.r2 = site.deploy()
    count = len(site.records())
    fake.faults.append(Fault("append_file", r"releases\.jsonl$"))  # the rollback's `live` line
    error = site.failing_rollback()
    fake.faults.clear()
    assert isinstance(error, UncertainError) and error.exit_code == ExitCode.ROLLBACK_FAILED, error.message
    assert "recording the release (it was verified live)" in error.message
    assert fake.serving_nodes() == {site.r1} and site.current() == site.r1 and len(site.records()) == count
    assert not site.locked()

    host_site, host = local
    host_site.r2 = host_site.deploy()
    host.faults.append(Fault("append_file", r"releases\.jsonl$"))
    host_error = host_site.failing_rollback()
    host.faults.clear()
    assert (type(host_error), host_error.exit_code) == (type(error), error.exit_code)
    assert host.serving() == host_site.r1 and not host_rules.locked(host)


def test_a_rollback_whose_manager_went_before_its_switch_fails_naming_it_as_on_a_host(swarm, local):
    # As a host's (test_lifecycle_rules: a rollback whose host went before its switch): `failed`,
    # exit 6, the error naming the manager and the step, the lock left. SwarmRollbackJob raised
    # the scale-down's bare "connection lost" instead, its undo not best effort.
    site, fake = swarm
    site.r2 = site.deploy()
    count = len(site.records())
    fake.faults.append(Fault("run", r"^docker service ps .*-frontend-", action=lambda: setattr(fake, "gone", True)))
    error = site.failing_rollback()
    fake.gone = False
    fake.faults.clear()
    assert error.exit_code == ExitCode.DEPLOY_FAILED, error.message
    assert "manager: connection failed during rollback (health)" in error.message, error.message
    assert any("clean-up after the failure did not finish" in w for w in site.warnings())
    assert fake.serving_nodes() == {site.r2} and site.current() == site.r2 and len(site.records()) == count
    assert site.locked()

    host_site, host = local
    host_site.r2 = host_site.deploy()
    host.faults.append(Fault("http_get", host_rules.CONTAINER, action=lambda: setattr(host, "gone", True)))
    host_error = host_site.failing_rollback()
    host.gone = False
    assert host_error.exit_code == error.exit_code and "connection failed during rollback (health)" in host_error.message
    assert host.serving() == host_site.r2 and host_rules.locked(host)


# -- the judges (services/judging/judges.py, the same code a host's deploy runs) ------------------------
#
# The nodes' `docker logs --since` of the proxy answer scripted access logs (the same Fault a
# host's rules use, shared by every node): one verdict over every node's log.

def judged_site(rollout: str):  # type: ignore[no-untyped-def]
    """The Swarm with R1 live, the environment's rollout given `rollout` (TOML lines)."""
    loaded = LoadedConfig(Path("/project/deploy.toml"),
                          parse_config(CONFIG.replace("guard_window = 0\n", rollout)))
    fake = FakeSwarm(NAMES)
    site = Site(fake, loaded)
    site.r1 = site.deploy()
    return site, fake


SHADOW = "guard_window = 0\nshadow_window = 30\nshadow_min_requests = 20\n"


def test_the_guard_over_every_nodes_log_switches_back_as_on_a_host():
    # | guard | previous | reverted | 6, as test_lifecycle_rules' guard row: the revert is the judges' one
    site, fake = judged_site("guard_window = 30\n")
    fake.faults.append(Fault("run", r"^docker logs --timestamps --since ", times=0,
                             effect=failing_access_log(fake, LAYOUT.lock_info)))
    error = site.failing_deploy()
    assert error.exit_code == ExitCode.DEPLOY_FAILED and "guard:" in error.message and "switched back" in error.message
    tried = site.tried()
    assert_previous_serves(site, fake, tried, REVERTED)
    last = site.records()[-1]
    # 30 failed answers in each of the 3 nodes' logs: one verdict over all of them
    assert last.extra["guard"]["whole"]["errors"] == 90 and "switch_back_seconds" in last.extra["guard"]


def test_a_release_whose_copies_fail_is_stopped_by_the_shadow_window_on_every_node():
    # | shadow | previous | aborted | 6, as test_lifecycle_rules' shadow row
    site, fake = judged_site(SHADOW)
    fake.faults.append(host_rules.proxy_log(fake, LAYOUT, copy_errors=10))
    error = site.failing_deploy()
    assert error.exit_code == ExitCode.DEPLOY_FAILED and "shadow window stopped" in error.message
    assert "shadow_max_error_rate" in error.message
    tried = site.tried()
    for node in fake.nodes.values():  # every node mirrored, then had its live-only configuration back
        assert any(f"# shadow: {tried} GET,HEAD" in c and "mirror /.deployctl-shadow;" in c for c in node.configs)
        assert "mirror" not in node.text(f"{LAYOUT.proxy_dir}/nginx.conf")
    assert_previous_serves(site, fake, tried, "aborted")
    last = site.records()[-1]
    assert last.error.startswith("shadow: ")
    assert last.extra["shadow"]["new"]["errors"] == 30 and last.extra["shadow"]["live"]["errors"] == 0
    assert sorted(last.extra["shadow"]["hosts"]) == sorted(fake.nodes)  # one board row per node
    assert error.details["verdicts"]["shadow"]["decision"] == "abort"  # `--json`'s error object, as on hosts


def test_a_release_whose_copies_answer_as_the_live_one_switches_after_the_shadow_window():
    site, fake = judged_site(SHADOW)
    fake.faults.append(host_rules.proxy_log(fake, LAYOUT, copy_errors=0))
    r2 = site.deploy()
    assert fake.serving_nodes() == {r2} and site.on_disk() == {r2} and site.current() == r2
    assert all("mirror" not in n.text(f"{LAYOUT.proxy_dir}/nginx.conf") for n in fake.nodes.values())
    last = site.records()[-1]
    assert (last.release, last.outcome) == (r2, LIVE) and last.extra["shadow"]["decision"] == "promote"


def test_a_verify_failing_after_a_passed_shadow_window_puts_the_live_only_configuration_back():
    # The switch back after the window restores what served users before it, never the mirror.
    site, fake = judged_site(SHADOW)
    fake.faults.append(host_rules.proxy_log(fake, LAYOUT, copy_errors=0))
    _verify_wrong(site, fake)
    error = site.failing_deploy()
    assert error.exit_code == ExitCode.DEPLOY_FAILED
    assert_previous_serves(site, fake, site.tried(), REVERTED)
    assert all("mirror" not in n.text(f"{LAYOUT.proxy_dir}/nginx.conf") for n in fake.nodes.values())


def test_a_mirror_a_killed_deploy_left_on_the_nodes_goes_before_the_next_deploy():
    from deployctl.plan.swarm.swarm_plan import shadow_config_for
    from deployctl.plan.lifecycle.release_spec import ReleaseSpec

    site, fake = judged_site("guard_window = 0\n")
    spec = ReleaseSpec.from_dict(site.records()[-1].spec)
    left = spec.release.replace(spec.release[-7:], "dead000")  # a release id whose services are gone
    from dataclasses import replace as dc_replace
    mirror = shadow_config_for(dc_replace(spec, release=left), spec, ("GET",), 1.0).encode()
    for node in fake.nodes.values():
        node.files[f"{LAYOUT.proxy_dir}/nginx.conf"] = (mirror, 0o644)
    r2 = site.deploy()
    assert any("was not decided" in w for w in site.warnings())
    aborted = [r for r in site.records() if r.release == left]
    assert [(r.outcome, r.previous) for r in aborted] == [("aborted", site.r1)]
    assert fake.serving_nodes() == {r2} and site.current() == r2


# -- the canary (services/judging/judges.py: the one canary a host's deploy runs too) ---------------
#
# Every node's proxy splits, one verdict over every node's log; the same options on a local
# fake host side by side: the same exit code, history outcome, serving side and lock state.

def _canary(share: int = 20):  # type: ignore[no-untyped-def]
    from deployctl.services.lifecycle.deploy_result import DeployOptions

    return DeployOptions(canary=share)


def _watchdogs(fake: FakeSwarm) -> list[str]:
    """The canary's watchdogs left on the nodes' engines."""
    return [f"{n.host}:{c}" for n in fake.nodes.values() for c in n.containers if c == NAMES.canary_watchdog]


def _canary_files(fake: FakeSwarm) -> list[str]:
    from deployctl.plan.edge.proxy_config import LIVE_COPY

    left = [p for p in (LAYOUT.canary, LAYOUT.canary_decision) if fake.read_file(p) is not None]
    return left + [f"{n.host}:{p}" for n in fake.nodes.values()
                   for p in (LAYOUT.canary_fired, f"{LAYOUT.proxy_dir}/{LIVE_COPY}") if n.read_file(p) is not None]


def _split_everywhere(fake: FakeSwarm, tried: str) -> bool:
    """Every node's proxy loaded a split to `tried` at some point (its configs' history)."""
    return all(any(f"# canary: {tried} 20%" in c and "split_clients" in c for c in n.configs)
               for n in fake.nodes.values())


def test_a_canary_whose_share_fails_is_aborted_on_every_node_as_on_a_host(swarm, local):
    # | canary | previous | aborted | 6: the new release fails 10 of its 30 requests on each node
    from deployctl.services.judging.canary import CanaryAborted

    site, fake = swarm
    fake.faults.append(host_rules.proxy_log(fake, LAYOUT, copy_errors=10))
    error = site.failing_deploy(options=_canary())
    fake.faults.clear()
    tried = site.tried()
    assert isinstance(error, CanaryAborted) and error.exit_code == ExitCode.DEPLOY_FAILED, error.message
    assert "canary aborted" in error.message and "canary_max_error_rate" in error.message
    assert _split_everywhere(fake, tried)
    assert_previous_serves(site, fake, tried, "aborted")
    last = site.records()[-1]
    assert last.error.startswith("canary: ")
    assert last.extra["canary"]["new"]["errors"] == 30 and last.extra["canary"]["live"]["errors"] == 0
    assert sorted(last.extra["canary"]["hosts"]) == sorted(fake.nodes)  # one board row per node
    assert error.details["verdicts"]["canary"]["decision"] == "abort"  # `--json`'s error object, as on hosts
    assert _watchdogs(fake) == [] and _canary_files(fake) == []

    host_site, host = local
    host.faults.append(host_rules.proxy_log(host, host_rules.LOCAL, copy_errors=10))
    host_error = host_site.failing_deploy(options=_canary())
    host.faults.clear()
    host_last = host_rules.records(host)[-1]
    assert (type(host_error), host_error.exit_code, host_last.outcome) == (type(error), error.exit_code, "aborted")
    assert host.serving() == host_site.r1 and host_rules.locked(host) == site.locked() == False  # noqa: E712

    r3 = site.deploy()  # and the next deploy goes live
    assert fake.serving_nodes() == {r3} and site.current() == r3


def test_a_healthy_canary_promotes_through_the_route_and_verify_as_on_a_host(swarm, local):
    site, fake = swarm
    fake.faults.append(host_rules.proxy_log(fake, LAYOUT, copy_errors=0))
    r2 = site.deploy(options=_canary())
    fake.faults.clear()
    assert _split_everywhere(fake, r2)
    assert fake.serving_nodes() == {r2} and site.on_disk() == {r2} and site.current() == r2 and not site.locked()
    last = site.records()[-1]
    assert (last.release, last.outcome, last.previous) == (r2, LIVE, site.r1)
    assert last.extra["canary"]["decision"] == "promote" and last.extra["canary"]["new"]["requests"] >= 90
    assert _watchdogs(fake) == [] and _canary_files(fake) == []  # disarmed once the switch was verified
    assert fake.services[NAMES.container("frontend", site.r1)].replicas == 0  # retired as after any switch

    host_site, host = local
    host.faults.append(host_rules.proxy_log(host, host_rules.LOCAL, copy_errors=0))
    host_r2 = host_site.deploy(options=_canary())
    host.faults.clear()
    host_last = host_rules.records(host)[-1]
    assert (host_last.outcome, host_last.extra["canary"]["decision"]) == (LIVE, "promote")
    assert host.serving() == host_r2 and not host_rules.locked(host)


def test_the_watchdog_on_each_node_joins_that_nodes_proxy_task_before_the_split(swarm):
    site, fake = swarm
    order: list[str] = []
    fake.faults.append(host_rules.proxy_log(fake, LAYOUT, copy_errors=0))
    for node in fake.nodes.values():
        task = node.proxy_task().name
        fake.faults.append(Fault("run", rf"^docker run --detach --rm --name {NAMES.canary_watchdog} .*"
                                        rf"--pid container:{task} ", times=0,
                                 effect=lambda argv, node=node: (order.append(f"watchdog {node.host}"),
                                                                 node._run(argv))[1]))
        fake.faults.append(Fault("run", rf"^sh -c docker exec {task} nginx -t", times=0,
                                 effect=lambda argv, node=node: (order.append("swap"), node._run(argv))[1]))
    site.deploy(options=_canary())
    # three watchdogs (one per node, each joined to that node's task; armed at once), then the split's 3 swaps
    assert sorted(order[:3]) == [f"watchdog {n}" for n in sorted(fake.nodes)] and order[3:6] == ["swap"] * 3, order


@pytest.mark.parametrize("decision", ["promote", "abort"])
def test_a_decision_from_another_shell_reaches_the_watching_deploy_as_on_a_host(swarm, local, decision):
    """`deploy --promote` / `--abort` (services/judging/canary.decide, as cli/deploy.py calls it
    with the environment's connectors: a Swarm's is its manager): the watching deploy acts
    on it at its next tick, long before the window's end."""
    from deployctl.services.judging.canary import decide

    def by_hand(host, layout, conns):  # type: ignore[no-untyped-def]
        log = host_rules.proxy_log(host, layout, copy_errors=0, n=3)  # too few to decide alone

        def answer(argv):  # type: ignore[no-untyped-def]
            if host.read_file(layout.canary_decision) is None:
                decide(conns, layout, decision, "ann@laptop", Recorder())
            return log.effect(argv)
        return Fault("run", r"^docker logs --timestamps --since ", times=0, effect=answer)

    site, fake = swarm
    fake.faults.append(by_hand(fake, LAYOUT, [fake]))
    outcomes = []
    if decision == "promote":
        r2 = site.deploy(options=_canary())
        assert fake.serving_nodes() == {r2} and site.current() == r2
    else:
        error = site.failing_deploy(options=_canary())
        assert error.exit_code == ExitCode.DEPLOY_FAILED and "abort by hand (ann@laptop)" in error.message
        assert_previous_serves(site, fake, site.tried(), "aborted")
    fake.faults.clear()
    last = site.records()[-1]
    outcomes.append((last.outcome, last.extra["canary"]["decision"], last.extra["canary"]["by_hand"]))
    assert _watchdogs(fake) == [] and _canary_files(fake) == [] and not site.locked()

    host_site, host = local
    host.faults.append(by_hand(host, host_rules.LOCAL, [host]))
    if decision == "promote":
        host_site.deploy(options=_canary())
    else:
        host_site.failing_deploy(options=_canary())
    host.faults.clear()
    host_last = host_rules.records(host)[-1]
    outcomes.append((host_last.outcome, host_last.extra["canary"]["decision"], host_last.extra["canary"]["by_hand"]))
    assert outcomes[0] == outcomes[1] == (LIVE if decision == "promote" else "aborted", decision, True), outcomes


def test_a_canary_a_killed_deploy_left_is_recovered_by_the_next_deploy_as_on_a_host(swarm, local):
    """SIGKILL during the canary's watch (the manager and every node out of reach from then
    on, as KILLS): the split stays on every node, its watchdogs armed, canary.json names it.
    The next deploy (--force-unlock) says so, puts the live release's configuration back on
    every node, removes the watchdogs and the abandoned release, records it `aborted`."""
    from deployctl.services.lifecycle.deploy_result import DeployOptions

    def killed(site, hosts) -> None:  # type: ignore[no-untyped-def]
        first = hosts[0]
        first.faults.append(Fault("run", r"^docker logs --timestamps --since ",
                                  action=lambda: [setattr(h, "gone", True) for h in hosts]))
        try:  # in-process, the deploy goes on (killed: -9); only what reached the hosts matters here
            site.deploy(options=_canary())
        except DeployctlError:
            pass
        for h in hosts:
            h.gone = False
        first.faults.clear()

    site, fake = swarm
    killed(site, [fake, *fake.nodes.values()])
    tried = LockRecord.parse(fake.read_file(LAYOUT.lock_info)).release
    assert _split_everywhere(fake, tried) and len(_watchdogs(fake)) == 3 and fake.read_file(LAYOUT.canary)
    assert site.current() == site.r1
    from deployctl.services.swarm.swarm_status import status

    shown = status(Env.resolve(site.loaded, "swarm"), manager=fake, nodes=fake.node).canary  # `deployctl status`
    assert shown.startswith(f"canary of {tried} (20% beside {site.r1}) running; if its deployctl is gone"), shown
    r3 = site.deploy(options=DeployOptions(force_unlock=True))
    assert any(f"canary of {tried} (20% beside {site.r1})" in w for w in site.warnings())
    aborted = [r for r in site.records() if r.release == tried]
    assert [(r.outcome, r.previous) for r in aborted] == [("aborted", site.r1)]
    assert aborted[0].error.startswith("canary: deployctl stopped before it was decided")
    assert fake.of_release(tried) == [] and _watchdogs(fake) == [] and _canary_files(fake) == []
    assert fake.serving_nodes() == {r3} and site.current() == r3 and not site.locked()

    host_site, host = local
    killed(host_site, [host])
    host_tried = LockRecord.parse(host.read_file(host_rules.LOCAL.lock_info)).release
    host_r3 = host_site.deploy(options=DeployOptions(force_unlock=True))
    host_aborted = [r for r in host_rules.records(host) if r.release == host_tried]
    assert [r.outcome for r in host_aborted] == [r.outcome for r in aborted]
    assert host_aborted[0].error == aborted[0].error.replace(site.r1, host_site.r1)
    assert host.serving() == host_r3


def test_a_watchdog_that_fired_before_the_next_deploy_leaves_the_live_release_on_every_node(swarm):
    """The watchdog's own way back (modelled: the fake does not run its shell): the live-only
    copy renamed over nginx.conf, nginx reloaded, canary-fired written. The next deploy
    reports when it fired and converges."""
    from deployctl.plan.edge.proxy_config import LIVE_COPY
    from deployctl.services.lifecycle.deploy_result import DeployOptions

    site, fake = swarm
    everything = [fake, *fake.nodes.values()]
    fake.faults.append(Fault("run", r"^docker logs --timestamps --since ",
                             action=lambda: [setattr(h, "gone", True) for h in everything]))
    try:
        site.deploy(options=_canary())
    except DeployctlError:
        pass
    for h in everything:
        h.gone = False
    fake.faults.clear()
    for node in fake.nodes.values():  # what the watchdog's script does at its deadline
        node.files[f"{LAYOUT.proxy_dir}/nginx.conf"] = node.files[f"{LAYOUT.proxy_dir}/{LIVE_COPY}"]
        node.proxy_task().loaded = node.files[f"{LAYOUT.proxy_dir}/nginx.conf"][0]
        node.files[LAYOUT.canary_fired] = (b"2026-12-06T14:00:00Z\n", 0o644)
        node.containers.pop(NAMES.canary_watchdog)  # --rm: gone once its script ended
    assert fake.serving_nodes() == {site.r1}
    from deployctl.services.swarm.swarm_status import status

    shown = status(Env.resolve(site.loaded, "swarm"), manager=fake, nodes=fake.node).canary
    assert shown.endswith(f"its watchdog put {site.r1} back at 100% at 2026-12-06T14:00:00Z"), shown
    r3 = site.deploy(options=DeployOptions(force_unlock=True))
    assert any(f"its watchdog put {site.r1} back at 100% at 2026-12-06T14:00:00Z" in w for w in site.warnings())
    assert fake.serving_nodes() == {r3} and _canary_files(fake) == [] and not site.locked()


def test_a_canary_whose_way_back_fails_is_uncertain_with_its_watchdogs_still_armed_as_on_a_host(swarm, local):
    # | canary abort, then every swap of the way back exits 1 | uncertain | 7: the watchdogs put
    # the live release back at their deadline, so they stay (on a host, its one watchdog).
    site, fake = swarm
    fake.faults.append(host_rules.proxy_log(fake, LAYOUT, copy_errors=10))
    fake.faults.append(Fault("run", SWAP, nth=4, times=0))  # after the split's 3 swaps
    error = site.failing_deploy(options=_canary())
    fake.faults.clear()
    assert error.exit_code == ExitCode.ROLLBACK_FAILED and "going back failed" in error.message, error.message
    assert "watchdog still puts the live release back" in error.message
    assert site.records()[-1].outcome == UNCERTAIN and not site.locked()
    assert len(_watchdogs(fake)) == 3 and fake.read_file(LAYOUT.canary) is not None

    host_site, host = local
    host.faults.append(host_rules.proxy_log(host, host_rules.LOCAL, copy_errors=10))
    host.faults.append(Fault("run", SWAP, nth=2, times=0))  # after the split's swap
    host_error = host_site.failing_deploy(options=_canary())
    host.faults.clear()
    assert (host_error.exit_code, host_rules.records(host)[-1].outcome) == (error.exit_code, UNCERTAIN)
    assert not host_rules.locked(host)


def test_a_watchdog_that_cannot_be_removed_after_the_verified_switch_leaves_the_release_live_and_the_previous_running(
        swarm, local):
    # | promoted, switched, verified, recorded | the watchdog's removal loses its connection |
    # uncertain, exit 7: the new release serves and is recorded live; the previous release is
    # not retired (the armed watchdog puts it back at its deadline), nothing is abandoned.
    site, fake = swarm
    fake.faults.append(host_rules.proxy_log(fake, LAYOUT, copy_errors=0))
    # One removal per node before the split, then one per node once verified: the 4th is a disarm.
    fake.faults.append(Fault("run", rf"^docker rm --force --volumes {NAMES.canary_watchdog}$", nth=4, effect="lost"))
    error = site.failing_deploy(options=_canary())
    fake.faults.clear()
    assert error.exit_code == ExitCode.ROLLBACK_FAILED and "watchdog" in error.message, error.message
    tried = site.records()[-1].release
    assert (site.records()[-1].outcome, site.current()) == (LIVE, tried) and fake.serving_nodes() == {tried}
    assert fake.services[NAMES.container("frontend", site.r1)].replicas > 0  # the previous, kept for the watchdog
    assert fake.services[NAMES.container("frontend", tried)].replicas > 0  # never abandoned
    assert not site.locked()

    host_site, host = local
    host.faults.append(host_rules.proxy_log(host, host_rules.LOCAL, copy_errors=0))
    host.faults.append(Fault("run", r"^docker rm --force --volumes shop-local-canary-watchdog$", nth=2, effect="lost"))
    host_error = host_site.failing_deploy(options=_canary())
    host.faults.clear()
    assert host_error.exit_code == ExitCode.ROLLBACK_FAILED and "watchdog" in host_error.message, host_error.message
    last = host_rules.records(host)[-1]
    assert last.outcome == LIVE and host.serving() == last.release and host.running(last.release)
    assert host.running(last.previous)  # not retired: the watchdog would put it back


def test_a_staged_file_refused_on_one_node_swaps_no_node(swarm):
    """The route tests every node's staged file in its DNS wait before any node swaps: one
    refusal, and no node renamed or reloaded anything (each serves and holds the previous
    release's nginx.conf); exit 6, `reverted` as any failed route."""
    site, fake = swarm
    previous = site.current()
    fake.faults.append(Fault("run", TEST_IN_WAIT, nth=2, effect=sw.STAGED_REFUSED))  # the second node's
    error = site.failing_deploy()
    assert error.exit_code == ExitCode.DEPLOY_FAILED and "nginx -t refused" in error.message, error.message
    moved = [text for node in fake.nodes.values() for call, text in node.calls if re.search(MOVE, text)]
    assert moved == []
    assert fake.serving_nodes() == {previous} and site.on_disk() == {previous}
    assert site.records()[-1].outcome == REVERTED
