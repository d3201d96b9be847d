"""Issue 25's new steps, failing once under traffic on the local target: the hooks around the
deploy (a pre_deploy hook that fails, hangs past its timeout, is killed; deployctl itself
interrupted while one runs) and backups of an
accessory (cut midway, taken by hand or by the host's scheduler; S3 gone between the dump's
upload and its manifest's).

Real parts: the hooks are real processes on this machine (a real exit code, a real timeout
and process-group kill, a real SIGKILL from outside, a real SIGTERM to a `deployctl deploy`
subprocess); the accessory is a real container whose `docker exec` dump is cut by a real
`docker kill` after its first bytes arrived; the scheduled backup is the real job script run
by the real scheduler container; S3 is moto's server over HTTP, its endpoint switched to a
closed port between the two uploads. The accessory's dump is its `backup.command` (a slow
stream of bytes), not MariaDB's: the rule under test is what is stored when a dump is cut,
which does not depend on the database (tests/integration/test_backups.py dumps MariaDB).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from deployctl.adapters.local import LocalConnector
from deployctl.config import load_config
from deployctl.errors import DeployctlError
from deployctl.events import Recorder
from deployctl.plan.data import backup_schedule
from deployctl.services.data import backups
from deployctl.services.hosts import layout_for
from deployctl.services.operate.jobs import job_runs, run_job
from deployctl.services.env import Env
from tests.integration.deploy_fixtures import PROXY_STANDIN, docker, free_port, write_probe_artifacts
from tests.support.moto_server import start_moto_server
from tests.support.traffic import Traffic

from .cells import WORKERS, SETTLE_REQUESTS, Attempt, Site, attempt, local_site, next_revision, run_cell, signalled_at
from .conftest import RESULTS

pytestmark = pytest.mark.integration

ACCESSORY = "store"
# ~1 MB in 20 pieces over ~2 s: a dump long enough to be cut after its first bytes.
SLOW_DUMP = 'for i in $(seq 1 20); do head -c 50000 /dev/urandom; sleep 0.1; done'
# Odd durations mark the hooks' processes, so a cell can prove none outlived its hook.
HANG, HANG_CHILD = "3017", "3019"


@pytest.fixture(scope="module")
def site(tmp_path_factory, probe_images, scheduler_image):
    """The probe app with an accessory whose backup is scheduled (so the deploy starts the
    scheduler and writes the job backup-store), deployed once."""
    def with_accessory(tmp: Path) -> None:
        config = tmp / "deploy.toml"
        text = config.read_text().replace("[environments.local.rollout]",
                                          f'accessories = ["{ACCESSORY}"]\n[environments.local.rollout]')
        config.write_text(text + f"""
[accessories.{ACCESSORY}]
image = "{PROXY_STANDIN}"
[accessories.{ACCESSORY}.backup]
command = ["sh", "-c", "{SLOW_DUMP}"]
restore_command = ["sh", "-c", "cat >/dev/null"]
schedule = "0 4 * * *"
keep = 3
[scheduler]
image = "{scheduler_image}"
""")

    yield from local_site(tmp_path_factory, probe_images, "hook-backup-faults", drain=0.3,
                          rollout={"warm_window": 0}, prepare=with_accessory)


def hooked(site: Site, name: str, table: str) -> Site:
    """The site with a deploy.toml beside its own that adds `table` (its [hooks])."""
    path = site.config.parent / f"{name}.toml"
    path.write_text(site.config.read_text() + "\n" + table)
    return dataclasses.replace(site, config=path)


def processes(marker: str) -> list[int]:
    """Pids of this machine's processes whose command line holds `marker` (a hook's sleep)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker.encode() in argv:
                found.append(int(entry.name))
    return found


def none_left(*markers: str):  # type: ignore[no-untyped-def]
    """The hook's processes are gone within seconds of the command's exit (its hang is ~50
    minutes): the group's SIGKILL is sent before deployctl exits, but a killed process stays
    in /proc until the kernel has torn it down (a CI rehearsal saw one pid there at once)."""
    def check(tried: str | None) -> None:
        deadline = time.monotonic() + 5
        while any(processes(m) for m in markers) and time.monotonic() < deadline:
            time.sleep(0.1)
        for marker in markers:
            assert processes(marker) == [], f"a process of the hook (sleep {marker}) outlived it by 5 s"
    return check


def deploy_with(variant: Site):  # type: ignore[no-untyped-def]
    return lambda: attempt(lambda: variant.deploy(images=variant.images()))


# -- hooks -------------------------------------------------------------------------------------

def test_pre_deploy_hook_fails(site):
    variant = hooked(site, "fails", '[hooks]\npre_deploy = ["sh", "-c", "echo checking the release; exit 3"]\n')
    row = run_cell(site, "`pre_deploy` hook exits 3", "hook pre_deploy", deploy_with(variant),
                   exit=6, outcome=None, live="previous",
                   note="before the lock: no host touched, no history line; the error quotes the hook's output")
    assert row["exit"] == 6


def test_pre_deploy_hook_hangs_past_its_timeout(site):
    variant = hooked(site, "hangs", "[hooks.pre_deploy]\n"
                                    f'command = ["sh", "-c", "sleep {HANG_CHILD} & sleep {HANG}"]\ntimeout = 1\n')
    run_cell(site, "`pre_deploy` hook hangs (timeout = 1)", "hook pre_deploy", deploy_with(variant),
             exit=6, outcome=None, live="previous", after=none_left(HANG, HANG_CHILD),
             note="killed after 1 s with its whole process group (its background child too); nothing changed")


def test_pre_deploy_hook_killed(site, tmp_path):
    pidfile = tmp_path / "hook.pid"
    variant = hooked(site, "killed", "[hooks.pre_deploy]\n"
                                     f'command = ["sh", "-c", "echo $$ > {pidfile}; exec sleep {HANG}"]\n'
                                     "timeout = 60\n")

    def kill_it() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if pidfile.exists() and pidfile.read_text().strip():
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
                return
            time.sleep(0.05)

    def faulty() -> Attempt:
        killer = threading.Thread(target=kill_it, daemon=True)
        killer.start()
        result = deploy_with(variant)()
        killer.join()
        assert "killed by SIGKILL" in result.error, result.error
        return result

    run_cell(site, "`pre_deploy` hook killed (SIGKILL from outside)", "hook pre_deploy", faulty,
             exit=6, outcome=None, live="previous", after=none_left(HANG),
             note="a hook killed is a failed hook: \"killed by SIGKILL\"; nothing changed")


def test_sigterm_to_deployctl_during_its_pre_deploy_hook(site):
    variant = hooked(site, "interrupted", "[hooks.pre_deploy]\n"
                                          f'command = ["sh", "-c", "sleep {HANG_CHILD} & sleep {HANG}"]\n'
                                          "timeout = 60\n")

    def faulty() -> Attempt:
        probe = site.probe
        write_probe_artifacts(variant.config, site.app, next_revision(), probe.good, probe.good, probe.proxy)
        return signalled_at(variant, "deploy", "hook pre_deploy", signal.SIGTERM)

    run_cell(site, "SIGTERM to `deployctl deploy` while its `pre_deploy` hook runs", "hook pre_deploy", faulty,
             exit=6, outcome=None, live="previous", after=none_left(HANG, HANG_CHILD),
             note="the hook's process group killed with it; the lock was never taken")


# -- backups -----------------------------------------------------------------------------------

class CutAfterFirstBytes:
    """This machine's connector whose dump (`docker exec`) has its container killed for real
    (`docker kill`) as soon as its first bytes arrived."""

    def __init__(self, container: str) -> None:
        self.inner, self.container, self.cut = LocalConnector(), container, False

    def __getattr__(self, name):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)

    def stream(self, argv, *, on_stdout, on_stderr) -> int:  # type: ignore[no-untyped-def]
        def first(data: bytes) -> None:
            if not self.cut:
                self.cut = True
                subprocess.run(["docker", "kill", self.container], capture_output=True, check=True)
            on_stdout(data)
        return self.inner.stream(argv, on_stdout=first, on_stderr=on_stderr)


def run_backup_cell(site: Site, action: str, fault: str, step: str, faulty, converge, *, exit: int | None,  # type: ignore[no-untyped-def]
                    listed, note: str) -> dict:
    """A backup cell, in the fault table's shape: under traffic through the proxy, one backup
    with the fault, then one without. `listed()`: the complete backups (ids) where it stores
    them. `exit`: the faulty run's (None: any but 0, the dump's own). The faulty run must list nothing new; the next must list exactly one more. A backup
    takes no lock and writes no history line: "history" is what the release history got
    (nothing), "live after" what serves (the release live before)."""
    state = site.state()
    previous, records = state.current(), len(state.history().records)
    before = listed()
    with Traffic(site.url, workers=WORKERS, max_seconds=120, timeout=5) as traffic:
        traffic.wait_for(SETTLE_REQUESTS)
        result = faulty()
        traffic.wait_for(SETTLE_REQUESTS, since=time.time())
        after_fault = listed()
        live, unlocked = site.serving(), not state.locked()
        history = state.history().records[records:]
        converge()
        after_next = listed()
        traffic.wait_for(SETTLE_REQUESTS)
    report = traffic.report
    row = {"id": f"{site.target}/{action}/{fault}/{step}", "target": site.target, "action": action, "fault": fault,
           "step": step, "requests": report.total, "failed": len(report.failures),
           "live": "previous" if live == previous else live, "outcome": "(none)" if not history else history[-1].outcome,
           "exit": result.exit, "unlocked": unlocked, "lock_left": False,
           "next": "succeeded" if len(after_next) == len(after_fault) + 1 and set(after_fault) <= set(after_next)
           else "DIVERGED", "serving_killed": False, "note": note, "failed_because": ""}
    RESULTS.append(row)
    detail = f"{row} {report.summary()} error={result.error!r} before={before} after={after_fault} next={after_next}"
    assert report.total > 20 and not report.failures, detail
    assert (result.exit == exit if exit is not None else result.exit != 0) and row["live"] == "previous" and row["outcome"] == "(none)" and unlocked, detail
    assert after_fault == before, detail  # nothing listed as a good backup
    assert row["next"] == "succeeded", detail
    return row


def container(site: Site) -> str:
    return f"{site.app}-local-{ACCESSORY}"


def boot_again(site: Site) -> None:
    docker("start", container(site))


def test_backup_cut_midway(site, tmp_path):
    folder = tmp_path / "backups"
    target = backups.target(Env.resolve(site.loaded, "local"), ACCESSORY, str(folder))
    stored = folder / f"{site.app}-local" / ACCESSORY

    def faulty() -> Attempt:
        conn = CutAfterFirstBytes(container(site))
        result = attempt(lambda: backups.take(Env.resolve(site.loaded, "local"), conn, target, Recorder()).id)
        assert conn.cut, "the dump never sent a byte"
        return result

    def converge() -> None:
        boot_again(site)
        backups.take(Env.resolve(site.loaded, "local"), LocalConnector(), target, Recorder())

    def listed() -> list[str]:
        return backups.list_ids(target.store)

    run_backup_cell(site, "backup", "the accessory killed (`docker kill`) after the dump's first bytes",
                    "dump", faulty, converge, exit=6, listed=listed,
                    note="the dump's exit code named; nothing stored (no file at all in the folder), the earlier "
                         "backups untouched; the next backup after `docker start` is listed")
    assert sorted(p.name for p in stored.iterdir()) == sorted(f"{i}{s}" for i in listed() for s in (".json", ".sql.gz"))


def test_scheduled_backup_cut_midway(site):
    folder = Path(backup_schedule.folder(layout_for(site.loaded, "local"), ACCESSORY))
    job = backup_schedule.job_name(ACCESSORY)

    def faulty() -> Attempt:
        out: list[bytes] = []
        done: dict[str, int] = {}
        runner = threading.Thread(target=lambda: done.update(
            rc=run_job(Env.resolve(site.loaded, "local"), job, lambda host, stream, data: out.append(data))), daemon=True)
        runner.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(p.stat().st_size > 0 for p in folder.glob(".*.part")):
            time.sleep(0.02)
        subprocess.run(["docker", "kill", container(site)], capture_output=True, check=True)
        runner.join(timeout=60)
        text = b"".join(out).decode(errors="replace")
        assert "nothing was stored" in text, text
        return Attempt(done["rc"], None, text[-300:])

    def converge() -> None:
        boot_again(site)
        assert run_job(Env.resolve(site.loaded, "local"), job, lambda *a: None) == 0

    def listed() -> list[str]:
        conn = LocalConnector()
        scheduled = backups.scheduled_target(Env.resolve(site.loaded, "local"), ACCESSORY, conn)
        assert scheduled is not None
        return backups.list_ids(scheduled.store)

    row = run_backup_cell(site, "scheduled backup (`jobs run`)",
                          "the accessory killed (`docker kill`) while the host's job writes its dump", "dump",
                          faulty, converge, exit=None, listed=listed,
                          note="the job exits with the dump's code (`docker exec`'s for a killed container), recorded in `deployctl jobs`; its `.part` "
                               "deleted, nothing listed; the next run is listed")
    assert not list(folder.glob(".*")), list(folder.iterdir())
    runs = [r for r in job_runs(Env.resolve(site.loaded, "local"), last=2)[0].runs]
    assert [r["exit_code"] for r in runs] == [row["exit"], 0], runs


def test_s3_unreachable_between_the_dump_and_its_manifest(site, tmp_path, monkeypatch):
    moto = start_moto_server(tmp_path)
    try:
        for key, value in moto.environ().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        import boto3

        bucket = f"bk-{site.app}"
        boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
        loaded = load_config(site.config)
        # S3 only by hand: a schedule refuses an s3:// backup.to, so --to names it.
        target = backups.target(Env.resolve(loaded, "local"), ACCESSORY, f"s3://{bucket}/nightly")
        original = type(target.store).put
        closed = f"http://127.0.0.1:{free_port()}"

        def dump_then_gone(store, name, source):  # type: ignore[no-untyped-def]
            original(store, name, source)  # the dump arrives...
            os.environ["DEPLOYCTL_AWS_ENDPOINT_URL"] = closed  # ...then S3 is unreachable
            store._client = None

        def faulty() -> Attempt:
            with monkeypatch.context() as patch:
                patch.setattr(type(target.store), "put", dump_then_gone)
                result = attempt(lambda: backups.take(Env.resolve(loaded, "local"), LocalConnector(), target, Recorder()).id)
            assert "S3 PutObject" in result.error, result.error
            os.environ["DEPLOYCTL_AWS_ENDPOINT_URL"] = moto.endpoint  # reachable again, to list what it holds
            target.store._client = None
            return result

        def converge() -> None:
            backups.take(Env.resolve(loaded, "local"), LocalConnector(), target, Recorder())

        def listed() -> list[str]:
            return backups.list_ids(target.store)

        run_backup_cell(site, "backup", "S3 unreachable after the dump's upload, before its manifest's (moto's "
                                        "endpoint switched to a closed port)", "store", faulty, converge,
                        exit=4, listed=listed,
                        note="exit 4 naming `S3 PutObject`; the uploaded dump has no manifest, so it is never "
                             "listed or restored, and retention did not run; the next backup is listed")
    finally:
        moto.stop()
