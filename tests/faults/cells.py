"""One cell of the fault table: under continuous traffic through the proxy, a deploy with a
fault, then the next deploy without one; the checks every cell makes, and its row."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from deployctl.adapters.local import LocalConnector
from deployctl.config import LoadedConfig, load_config
from deployctl.errors import DeployctlError
from deployctl.events import Recorder
from deployctl.secrets import Secret
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.lifecycle.host_state import HostState
from deployctl.services.hosts import layout_for
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.lifecycle.rollback import rollback
from deployctl.services.env import Env
from tests.integration.deploy_fixtures import DEPLOYCTL, ROOT, ProbeImages, free_port, probe_config, remove_app, \
    unique_app, write_probe_artifacts
from tests.support.traffic import Traffic

from .conftest import RESULTS

SECRETS = {"PROBE_DB_PASSWORD": Secret("probe-password-value")}
WORKERS = 4
SETTLE_REQUESTS = 2 * WORKERS  # seen through the proxy before the fault and after each run
# The commands that make nginx load a configuration: a switch's swap on the host (`sh -c
# "docker exec N nginx -t -q -c .../nginx.conf.next && mv ... && docker exec N nginx -s
# reload ..."`) and a put-back's reload (`docker exec N sh -c "nginx -t ... && nginx -s reload"`).
RELOADS = r"docker exec \S+ (sh -c )?nginx -t"
_revisions = itertools.count(1)


def local_site(tmp_path_factory, probe_images: ProbeImages, name: str,  # type: ignore[no-untyped-def]
               prepare: Callable[[Path], None] | None = None, **config) -> Iterator[Site]:
    """A module's site on this machine's engine: the probe app under a fresh name and port,
    deployed once (every cell starts with a live release), removed afterwards. `config`:
    probe_config's settings beside the 4 s health timeout. `prepare(dir)`: edits the
    deploy.toml it wrote in `dir` before the first deploy (an accessory, say)."""
    tmp = tmp_path_factory.mktemp(name)
    app, port = unique_app(), free_port()
    site = Site(app, port, probe_config(tmp, app, port=port, health_timeout=4, **config), probe_images)
    if prepare is not None:
        prepare(tmp)
    site.deploy()
    yield site
    remove_app(app)


def next_revision() -> str:
    return f"{next(_revisions):07x}f00d"


@dataclass
class Site:
    """An app deployed on one host. `env`/`target`: the local engine, or the ssh target
    (the repo's sshd in front of this machine: its state directory is on this machine, so
    it is read directly). `pinned`: the images by digest an ssh host pulls. `port`: where
    the proxy answers on this machine (a stand-in host's: a load balancer in front of it)."""

    app: str
    port: int
    config: Path
    probe: ProbeImages
    env: str = "local"
    connector: Callable[[], object] = LocalConnector
    pinned: dict | None = None
    remote_state: bool = False  # the state directory is on the host: read it over `connector`

    @property
    def target(self) -> str:
        return "ssh" if self.env != "local" else "local"

    @property
    def loaded(self) -> LoadedConfig:
        return load_config(self.config)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/version"

    def images(self, revision: str | None = None, frontend: str | None = None) -> ReleaseImages:
        if self.pinned is not None:
            return ReleaseImages(dict(self.pinned), revision or next_revision())
        return ReleaseImages({"backend": self.probe.good, "frontend": frontend or self.probe.good,
                              "proxy": self.probe.proxy}, revision or next_revision())

    def state(self) -> HostState:
        conn = LocalConnector()
        if self.remote_state:  # one connection, kept: state() is read many times per cell
            if "_state_conn" not in self.__dict__:
                self.__dict__["_state_conn"] = self.connector().connect()
            conn = self.__dict__["_state_conn"]
        return HostState(conn, layout_for(self.loaded, self.env))

    def deploy(self, conn=None, loaded: LoadedConfig | None = None, **kwargs) -> str:  # type: ignore[no-untyped-def]
        emit = kwargs.pop("emit", None)
        return deploy(Env.resolve(loaded or self.loaded, self.env), kwargs.pop("images", None) or self.images(), SECRETS,
                      Recorder() if emit is None else emit, connectors=[conn or self.connector()], **kwargs).release

    def rollback(self, conn=None, **kwargs) -> str:  # type: ignore[no-untyped-def]
        """A plain `deployctl rollback` (to the previous good release); the release now live."""
        [outcome] = rollback(Env.resolve(self.loaded, self.env), Recorder(), connectors=[conn or self.connector()], **kwargs)
        return outcome.release

    def write_artifacts(self) -> None:
        """A new build's build.json for a deploy run as the CLI (the probe's images)."""
        probe = self.probe
        write_probe_artifacts(self.config, self.app, next_revision(), probe.good, probe.good, probe.proxy)

    def serving(self) -> str:
        """Which release answers through the proxy now (every release field agrees)."""
        body = json.loads(urllib.request.urlopen(self.url, timeout=5).read())
        releases = {body["frontend"]["release"], body["backend"]["release"]}
        assert len(releases) == 1, body
        return releases.pop()


def settled_serving(site, agree: int = 6, bound: float = 10.0) -> str:  # type: ignore[no-untyped-def]
    """Which release answers once `agree` answers in a row name the same one (each may come
    from another node behind the balancer), or the last answer after `bound` seconds. A run
    killed between its proxies' reload and its verify leaves nginx's old workers answering
    for a moment: one answer read then (`SETTLE_REQUESTS` is a few tens of ms) says where the
    reload was, not what the proxies serve (the Swarm's SIGKILL-after-the-switch cell read
    the previous release once, at load, and the new one on every node when rerun)."""
    deadline = time.monotonic() + bound
    last, streak = site.serving(), 1
    while streak < agree and time.monotonic() < deadline:
        time.sleep(0.1)
        now = site.serving()
        streak = streak + 1 if now == last else 1
        last = now
    return last


@dataclass
class Attempt:
    exit: int
    release: str | None = None  # the release the faulty run tried (None: it recorded nothing)
    error: str = ""


def attempt(call: Callable[[], str]) -> Attempt:
    """In-process deploy: the exit code the CLI would map its exception to."""
    try:
        return Attempt(0, call())
    except DeployctlError as exc:
        return Attempt(int(exc.exit_code), None, exc.message)


def signalled_at(site: Site, verb: str, step: str, sig: signal.Signals) -> Attempt:
    """A real `deployctl VERB --env ENV --json` subprocess (deploy: the release build.json
    names), sent `sig` as soon as its events say `step` started."""
    env = {**os.environ, "PROBE_DB_PASSWORD": SECRETS["PROBE_DB_PASSWORD"].reveal()}
    proc = subprocess.Popen([DEPLOYCTL, "--config", str(site.config), verb, "--env", site.env, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sent = False
    for line in proc.stdout:  # type: ignore[union-attr]
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not sent and event.get("event") == "step_started" and event.get("step") == step:
            proc.send_signal(sig)
            sent = True
    rc = proc.wait(timeout=120)
    assert sent, f"the {verb} never reached {step}"
    return Attempt(rc, None, proc.stderr.read().strip()[-400:])  # type: ignore[union-attr]


def killed_at(site: Site, step: str, sig: signal.Signals):  # type: ignore[no-untyped-def]
    """A deploy subprocess, sent `sig` as soon as its events say `step` started."""
    def run() -> Attempt:
        site.write_artifacts()
        return signalled_at(site, "deploy", step, sig)
    return run


def killed_before(site: Site, call: str, pattern: str, sig: signal.Signals):  # type: ignore[no-untyped-def]
    """A deploy subprocess that signals itself right before its first connector `call`
    matching `pattern` (tests/faults/killing_deployctl.py): a moment no event marks."""
    def run() -> Attempt:
        site.write_artifacts()
        env = {**os.environ, "PROBE_DB_PASSWORD": SECRETS["PROBE_DB_PASSWORD"].reveal()}
        proc = subprocess.run([sys.executable, "-m", "tests.faults.killing_deployctl", call, pattern, sig.name,
                               "--config", str(site.config), "deploy", "--env", site.env, "--json"],
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=180)
        assert f"killing_deployctl: {sig.name} before {call}" in proc.stderr, proc.stderr[-2000:]
        return Attempt(proc.returncode, None, proc.stderr.strip()[-400:])
    return run


def shown_stale(site: Site):  # type: ignore[no-untyped-def]
    """A cell's `after`: the lock a killed deployctl left names its dead process."""
    def check(tried: str | None) -> None:
        text = site.state().holder_text() or ""
        assert "[STALE: its process" in text and "is gone" in text, text
    return check


def run_cell(site: Site, fault: str, step: str, faulty: Callable[[], Attempt], *, exit: int,
             outcome: str | None | tuple,
             live: str, serving_killed: bool = False, failed_because: str = "", max_failed: int = 0, note: str = "",
             before: Callable[[], None] | None = None, converge: Callable[[], str] | None = None,
             after: Callable[[str | None], None] | None = None, lock_left: bool = False,
             action: str = "deploy", failed_before_return: bool = True) -> dict:
    """`action`: what the faulty run is, "deploy" or "rollback" (its target is then an earlier
    release: "new" names that target). `live`: "previous" or "new" (the release the faulty run tried). `outcome`: its history
    record's outcome (None: it must record none). `before`: done under traffic first (a
    hand-made fault on the host). `after(tried)`: checks made before the next deploy (a
    host made unreachable is reachable again after it). `lock_left`: the host was gone when
    the lock was to be released: it must still name this deploy as its holder, and the next
    deploy converges with --force-unlock. `failed_because`: why this cell may fail requests
    (`serving_killed`: the serving process itself is killed); they must all come before the
    faulty run returned (`failed_before_return=False`: before `after` returned, which waits
    for the host to be whole again), and the table counts them under that reason."""
    state = site.state()
    previous = state.current()
    assert previous, "every cell starts with a live release"
    known = {r.release for r in state.history().records}
    before_count = len(state.history().records)
    with Traffic(site.url, workers=WORKERS, max_seconds=120, timeout=5) as traffic:
        traffic.wait_for(SETTLE_REQUESTS)  # the traffic flows before the fault, and after each run
        if before is not None:
            before()
        result = faulty()
        returned = time.time()
        traffic.wait_for(SETTLE_REQUESTS, since=returned)
        records = state.history().records[before_count:]  # what the faulty run recorded
        new = [r for r in records if r.release not in known or r.action == action != "deploy"]
        holder = state.holder()
        tried = result.release or (new[-1].release if new else None) or (
            holder.release if lock_left and holder is not None else None)
        live_now = settled_serving(site)
        current = state.current()
        unlocked = not state.locked()
        # its own record, read before the next run (a rollback's converging run records the same release)
        record = next((r for r in reversed(records) if r.release == tried and r.action == action), None)
        if after is not None:
            after(tried)
        settled = returned if failed_before_return else time.time()
        nxt = (converge or site.deploy)()
        traffic.wait_for(SETTLE_REQUESTS)
    report = traffic.report
    row = {
        "id": f"{site.target}/{action}/{fault}/{step}", "target": site.target, "action": action,
        "fault": fault, "step": step,
        "requests": report.total,
        "failed": len(report.failures), "live": "new" if live_now == tried else
        ("previous" if live_now == previous else live_now),
        "outcome": record.outcome if record else "(none)", "exit": result.exit, "unlocked": unlocked, "lock_left": lock_left,
        "next": "succeeded" if state.current() == nxt and site.serving() == nxt else "DIVERGED",
        "serving_killed": serving_killed, "note": note,
        "failed_because": failed_because or ("the serving process itself is killed" if serving_killed else ""),
    }
    RESULTS.append(row)
    detail = f"{row} {report.summary()} error={result.error!r} failures={[s.error for s in report.failures[:3]]}"
    assert report.total > 20, detail
    assert len(report.failures) <= max_failed, detail
    if row["failed_because"]:  # the faulty run put things right: nothing fails once it returned
        late = [s.started - settled for s in report.failures if s.started >= settled]
        assert late == [], f"{len(late)} failed after it settled, from +{late[0]:.2f}s to +{late[-1]:.2f}s: {detail}" \
            if late else detail
    assert result.exit == exit, detail
    assert row["live"] == live, detail
    # uncertain (exit 7) or killed after the switch (-9): `current` may name either release;
    # the proxy's answer is what counts
    assert current == (tried if live == "new" else previous) or (live == "new" and exit in (7, -9)), detail
    allowed = outcome if isinstance(outcome, tuple) else (outcome,)  # a tuple: any of these
    assert row["outcome"] in tuple(o or "(none)" for o in allowed), detail
    if lock_left:
        assert not unlocked and holder is not None and holder.action == action, detail
        assert tried is None or holder.release == tried, detail
    else:
        assert unlocked, detail
    assert row["next"] == "succeeded", detail
    last = state.history().records[-1]
    assert (last.release, last.outcome) == (nxt, "succeeded"), detail
    assert not state.locked()
    return row
