"""One cell of the fault table: under continuous traffic through the proxy, a deploy with a
fault, then the next deploy without one; the checks every cell makes, and its row."""

from __future__ import annotations

import itertools
import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from deployctl.adapters.local import LocalConnector
from deployctl.config import LoadedConfig, load_config
from deployctl.errors import DeployctlError
from deployctl.events import Recorder
from deployctl.secrets import Secret
from deployctl.services.deploy import deploy
from deployctl.services.host_state import HostState
from deployctl.services.hosts import layout_for
from deployctl.services.release_images import ReleaseImages
from tests.integration.deploy_fixtures import ProbeImages
from tests.support.traffic import Traffic

from .conftest import RESULTS

SECRETS = {"PROBE_DB_PASSWORD": Secret("probe-password-value")}
WORKERS = 4
_revisions = itertools.count(1)


def next_revision() -> str:
    return f"{next(_revisions):07x}f00d"


@dataclass
class Site:
    app: str
    port: int
    config: Path
    probe: ProbeImages

    @property
    def loaded(self) -> LoadedConfig:
        return load_config(self.config)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/version"

    def images(self, revision: str | None = None, frontend: str | None = None) -> ReleaseImages:
        return ReleaseImages({"backend": self.probe.good, "frontend": frontend or self.probe.good,
                              "proxy": self.probe.proxy}, revision or next_revision())

    def state(self) -> HostState:
        return HostState(LocalConnector(), layout_for(self.loaded, "local"))

    def deploy(self, conn=None, loaded: LoadedConfig | None = None, **kwargs) -> str:  # type: ignore[no-untyped-def]
        return deploy(loaded or self.loaded, "local", kwargs.pop("images", None) or self.images(), SECRETS,
                      Recorder(), connectors=[conn or LocalConnector()], **kwargs).release

    def serving(self) -> str:
        """Which release answers through the proxy now (every release field agrees)."""
        body = json.loads(urllib.request.urlopen(self.url, timeout=5).read())
        releases = {body["frontend"]["release"], body["backend"]["release"]}
        assert len(releases) == 1, body
        return releases.pop()


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


def run_cell(site: Site, fault: str, step: str, faulty: Callable[[], Attempt], *, exit: int, outcome: str | None,
             live: str, serving_killed: bool = False, max_failed: int = 0, note: str = "",
             before: Callable[[], None] | None = None, converge: Callable[[], str] | None = None,
             after: Callable[[str], None] | None = None) -> dict:
    """`live`: "previous" or "new" (the release the faulty run tried). `outcome`: its history
    record's outcome (None: it must record none). `before`: done under traffic first (a
    hand-made fault on the host). `after(tried)`: checks made before the next deploy."""
    state = site.state()
    previous = state.current()
    assert previous, "every cell starts with a live release"
    known = {r.release for r in state.history().records}
    with Traffic(site.url, workers=WORKERS, max_seconds=120, timeout=5) as traffic:
        time.sleep(0.3)
        if before is not None:
            before()
        result = faulty()
        returned = time.time()
        time.sleep(0.3)
        new = [r for r in state.history().records if r.release not in known]
        tried = result.release or (new[-1].release if new else None)
        live_now = site.serving()
        current = state.current()
        unlocked = not state.locked()
        if after is not None:
            after(tried)
        nxt = (converge or site.deploy)()
        time.sleep(0.3)
    report = traffic.report
    record = next((r for r in reversed(state.history().records) if r.release == tried), None)
    row = {
        "id": f"{fault}/{step}", "fault": fault, "step": step, "requests": report.total,
        "failed": len(report.failures), "live": "new" if live_now == tried else
        ("previous" if live_now == previous else live_now),
        "outcome": record.outcome if record else "(none)", "exit": result.exit, "unlocked": unlocked,
        "next": "succeeded" if state.current() == nxt and site.serving() == nxt else "DIVERGED",
        "serving_killed": serving_killed, "note": note,
    }
    RESULTS.append(row)
    detail = f"{row} {report.summary()} error={result.error!r} failures={[s.error for s in report.failures[:3]]}"
    assert report.total > 20, detail
    assert len(report.failures) <= max_failed, detail
    if serving_killed:  # the deploy brought the proxy back: nothing fails once it returned
        assert [s for s in report.failures if s.started >= returned] == [], detail
    assert result.exit == exit, detail
    assert row["live"] == live, detail
    assert current == (tried if live == "new" else previous) or (live == "new" and outcome == "uncertain"), detail
    assert row["outcome"] == (outcome or "(none)"), detail
    assert unlocked, detail
    assert row["next"] == "succeeded", detail
    last = state.history().records[-1]
    assert (last.release, last.outcome) == (nxt, "succeeded"), detail
    assert not state.locked()
    return row
