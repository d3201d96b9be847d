"""Issue 22 on the real 3-node Swarm of stand-in hosts (tests/support/swarm.py): the fault
cells a local site has (route fails, verify fails, switch back fails, SIGTERM at health,
SIGKILL after the switch), each under traffic through a load balancer in front of every
node's proxy, checked by the same run_cell as the local ones (tests/faults/cells.py): the
exit code, the history record, the lock, what serves, 0 failed requests, and that the next
deploy converges. Their outcomes and exit codes must be the local rows' (docs/faults.md);
tests/unit/test_swarm_lifecycle_rules.py pins the same rules on a fake Swarm.

One Swarm site for the module (a Swarm deploy takes 10-20 s here): each cell's converging
deploy is the next cell's previous release. Faults in the connector are given to the
manager's and every node's connector (services/swarm/swarm_deploy.deploy_env's `manager=` and
`nodes=`); signals go to a real `deployctl deploy` subprocess."""

from __future__ import annotations

import re
import signal
import time

import pytest

from deployctl.adapters.connector import HttpResponse
from deployctl.events import Recorder, StepDone, StepFailed
from deployctl.plan.edge.proxy_config import RELEASE_HEADER
from deployctl.services.hosts import manager_connector, ssh_connector
from deployctl.services.lifecycle.deploy_result import DeployOptions
from deployctl.services.swarm import swarm_deploy
from deployctl.services.env import Env
from tests.integration.swarm.site import ENV, SwarmSite
from tests.support.swarm import wait_for

from .cells import RELOADS, SECRETS, Site, attempt, killed_at, killed_before, next_revision, run_cell, shown_stale
from .fault_connector import Fault, FaultConnector, wrong_release

pytestmark = pytest.mark.integration


class Steps(Recorder):
    """Keeps the events and prints each step's end with its seconds: where a cell's time goes
    (pytest shows it with a failure, or with -s)."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label, self.began = label, time.monotonic()

    def __call__(self, event) -> None:  # type: ignore[no-untyped-def]
        super().__call__(event)
        if isinstance(event, (StepDone, StepFailed)):
            print(f"  {self.label} +{time.monotonic() - self.began:5.1f}s {event.kind} {event.step} "
                  f"{getattr(event, 'seconds', None) or 0:.1f}s", flush=True)


class SwarmCells(Site):
    """cells.Site over a Swarm: its state is the manager's (read over SSH), its port the
    load balancer's on 127.0.0.1, its images the fleet's by digest."""

    swarm_site: SwarmSite | None = None

    @property
    def target(self) -> str:
        return "swarm"

    def faulty(self, *faults: Fault, node_fault=None):  # type: ignore[no-untyped-def]
        """An in-process deploy whose manager and nodes go through FaultConnectors sharing
        `faults` (counted across them in call order); `node_fault(inner)`: one more Fault
        per node, made with that node's own connector (to answer from it)."""
        loaded = self.loaded
        environment = loaded.environment(self.env)

        def node(address: str) -> FaultConnector:
            inner = ssh_connector(loaded, environment, address)
            return FaultConnector(inner, *faults, *([node_fault(inner)] if node_fault else []))

        return lambda: attempt(lambda: swarm_deploy.deploy_env(
            Env.resolve(loaded, self.env), self.images(), SECRETS, Steps("faulty"),
            manager=FaultConnector(manager_connector(loaded, self.env), *faults), nodes=node).release)

    def deploy(self, conn=None, loaded=None, **kwargs) -> str:  # type: ignore[no-untyped-def]
        return super().deploy(conn, loaded, emit=kwargs.pop("emit", None) or Steps("deploy"), **kwargs)

    def write_artifacts(self) -> None:
        self.swarm_site.artifacts(next_revision())  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def site(swarm, swarm_http_images, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("swarm-faults")
    # The session's Swarm, shared with tests/integration/swarm (tests/support/swarm_fixtures.py),
    # so a port of its own from the fleet's one sequence (Fleet.proxy_port), and every node in
    # it Ready (a Swarm test before may have stopped and restarted a node). The
    # probe without a HEALTHCHECK, checked by deployctl itself (http, tcp): under load Swarm
    # stopped tasks whose Docker health check timed out ("Complete" during the health wait, a
    # rehearsal at load 40-56), a Swarm limit docs/swarm.md names, not the transaction's rule
    # a cell is about; test_swarm.py covers the image's own checks.
    swarm_images = swarm_http_images
    wait_for(lambda: swarm.ready_nodes() == len(swarm.nodes), 90, "every Swarm node Ready")
    made = SwarmSite.new(swarm, swarm_images, workdir, swarm.fleet.proxy_port())
    # A backend task on every node (Swarm spreads replicas): a frontend task resolves the
    # backend's name from its own node's tasks at once. With one backend task, a frontend on
    # another node got "No address associated with hostname" for a moment after the switch
    # (Swarm's DNS entries reach the other nodes by gossip, slow on this loaded machine) and
    # the verify stopped at the new release's own 503s (docs/swarm.md, "Other limits").
    # No migration: each costs a replicated job (~5 s) and no cell here is about one (the fake
    # Swarm's rows cover SIGTERM at migrate and a failed migration job). warm_window = 0: the
    # replaced release goes to 0 tasks after a short drain at every deploy.
    made.write_config(frontend_replicas=2, backend_replicas=3, warm_window=0, drain=0.3, migrate=False, checks="http")
    balancer = swarm.load_balancer(made.proxy_port)
    pinned = {"backend": swarm_images.probe, "frontend": swarm_images.probe, "proxy": swarm_images.proxy}
    cells = SwarmCells(made.app, balancer.port, made.config, None, env=ENV,  # type: ignore[arg-type]
                       connector=lambda: manager_connector(cells.loaded, ENV), pinned=pinned, remote_state=True)
    cells.swarm_site = made
    try:
        cells.deploy()
        yield cells
    finally:
        balancer.close()
        swarm.remove_app(made.app)


def answers_from_the_tried_release_are_wrong(previous: str):  # type: ignore[no-untyped-def]
    """Each node's verify through its proxy gets a wrong release's stamp whenever the real
    answer is not from `previous`: the verify of the new release fails every time, while the
    switch back's wait (for `previous` again) sees the real answers."""
    def per_node(inner) -> Fault:  # type: ignore[no-untyped-def]
        def answer(address: str, port: int, path: str) -> HttpResponse:
            real = inner.http_get(address, port, path, 2.0, None)
            return real if real.headers.get(RELEASE_HEADER.lower()) == previous else wrong_release(address, port, path)
        return Fault("http_get", r"^127\.0\.0\.1:\d+/", times=0, effect=answer)
    return per_node


# A node's route: its DNS wait, which tests nginx.conf.next in the same `docker exec`, then (every
# node's test passed) the swap, a rename and a HUP (plan/swarm/services.wait_resolved_and_test).
TEST_IN_WAIT = r"^docker exec \S+ sh -c r=0; if command -v getent .* nginx -t -q -c \S+/nginx\.conf\.next "
MOVE = r"^sh -c mv -f \S+/nginx\.conf\.next "


def test_route_test_refused_on_one_node(site):
    """The staged file's `nginx -t` really refuses on one node (its wait's `docker exec` tests
    a file that does not exist there): no node swaps, every node keeps serving the previous
    release's nginx.conf, the put-back finds them so."""
    moved: list[str] = []
    refused: list[str] = []

    def node_fault(inner) -> Fault:  # type: ignore[no-untyped-def]
        first = not refused
        refused.append(inner.host)

        def effect(argv):  # type: ignore[no-untyped-def]
            if re.search(MOVE, " ".join(argv)):
                moved.append(inner.host)
            elif first:  # this node's test, of a file nginx cannot read
                argv = [a.replace("/nginx.conf.next ||", "/nginx.conf.missing ||") for a in argv]
            return inner.run(argv, timeout=60)
        return Fault("run", f"{TEST_IN_WAIT}|{MOVE}", times=0, effect=effect)

    def no_node_swapped(tried: str | None) -> None:
        assert moved == [], f"nodes swapped although one refused the staged file: {moved}"

    run_cell(site, "`nginx -t` of the staged file refuses it on one node (tested in each node's DNS wait, "
                   "before any node swaps)",
             "route", site.faulty(node_fault=node_fault), after=no_node_swapped,
             exit=6, outcome="reverted", live="previous",
             note="a real refusal: one node's proxy task tests a file that does not exist; no node swapped "
                  "(each still served the previous nginx.conf); the put-back (staged, tested, renamed, "
                  "reloaded) and the wait until each answers from it, then the new services go")


def test_verify_answers_a_wrong_release(site):
    previous = site.state().current()
    run_cell(site, "verify through the proxy answers a wrong release, every time (on every node)", "verify",
             site.faulty(node_fault=answers_from_the_tried_release_are_wrong(previous)),
             exit=6, outcome="reverted", live="previous",
             note="simulated at each node's connector: the answers from the new release are replaced; every node is "
                  "switched back and answers from the previous release again before the new services are removed")


def test_switch_back_fails(site):
    previous = site.state().current()
    run_cell(site, "verify fails, then every node's switch-back swap exits 1", "verify + switch back",
             site.faulty(Fault("run", RELOADS, nth=1, times=0),  # the put-back's (the route tests in its DNS wait)
                         node_fault=answers_from_the_tried_release_are_wrong(previous)),
             exit=7, outcome="uncertain", live="new",
             note="simulated at the connector as the verify cell, and each node's put-back swap exits 1: every "
                  "node kept the new config: the new release serves; "
                  "`current` still names the previous one; the next deploy converges")


def test_sigterm_during_health(site):
    run_cell(site, "SIGTERM to `deployctl deploy`", "health", killed_at(site, "health", signal.SIGTERM),
             exit=6, outcome="failed", live="previous",
             note="interrupted while the new tasks start: its services, secrets and network removed, recorded, "
                  "the lock released")


def test_sigkill_after_the_switch(site):
    """Killed at the first verify request (tests/faults/killing_deployctl.py), after every
    node's proxy swapped in the new configuration."""
    run_cell(site, "SIGKILL to `deployctl deploy` (fault point in the process)", "switch -> verify",
             killed_before(site, "http_get", rf"^127\.0\.0\.1:{site.swarm_site.proxy_port}/", signal.SIGKILL),
             exit=-9, outcome=None, live="new", lock_left=True, after=shown_stale(site),
             converge=lambda: site.deploy(options=DeployOptions(force_unlock=True)),
             note="every node serves the new (healthy, unverified) release; `current` and the history still name "
                  "the previous one; the lock names the dead pid (STALE); the next deploy with --force-unlock "
                  "converges and scales the leftovers to 0")
