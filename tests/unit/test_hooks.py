"""[hooks] (docs/hooks.md): the schema, the hook's environment, and where each runs in the
transaction, pinned on the scripted fake host (tests/support/fake_host.py) as the lifecycle
rules are: a real process runs for each hook (a tiny Python or sh), the host is fake."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from deployctl.config import LoadedConfig, parse_config
from deployctl.errors import BuildError, ConfigError, DeployError, ExitCode
from deployctl.events import Message, Recorder, StepFailed, StepProgress, StepSkipped, StepStarted
from deployctl.plan.operate import hooks as plan
from deployctl.plan.lifecycle.releases import FAILED, LIVE
from deployctl.secrets import Secret, redactor
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.lifecycle.deploy_result import DeployOptions
from deployctl.services.operate.hooks import HookRunner
from deployctl.services.lifecycle.rollback import rollback
from deployctl.services.env import Env
from tests.support.fake_host import FakeHost, Fault, failing_access_log, wrong_release
from tests.unit.test_lifecycle_rules import (CONFIG, PROXY, PROXY_IMAGE, T0, current, locked, records,
                                             virtual_time)  # noqa: F401 - virtual_time: an autouse fixture

BASE = """app = "a"
[services.web]
context = "."
routed = true
[environments.local]
target = "local"
"""
SECRETS = {"DB_PASSWORD": Secret("s3cret"), "SLACK_WEBHOOK": Secret("https://hooks.example/T0K3N-abcdef")}
RECORD = ("import json, os, sys, time; open(sys.argv[1], 'a').write(json.dumps("
          "{**dict(os.environ), 'at': time.time()}) + '\\n')")


def record_hook(out: Path, *, fail: bool = False) -> list[str]:
    """argv of a hook that appends its environment (one JSON line) to `out`, then exits 0 or 3."""
    code = RECORD + ("; sys.exit(3)" if fail else "")
    return [sys.executable, "-c", code, str(out)]


def seen(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def loaded_with(hooks: str, tmp_path: Path) -> LoadedConfig:
    return LoadedConfig(tmp_path / "deploy.toml", parse_config(CONFIG + "\n" + hooks))


def toml_argv(argv: list[str]) -> str:
    return json.dumps(argv)


class Local:
    """The lifecycle rules' `local` environment on one fake host, R1 live, with [hooks]."""

    def __init__(self, loaded: LoadedConfig) -> None:
        images = [f"sha256:{s}{n}" for s in ("back", "front") for n in range(1, 7)] + [PROXY_IMAGE]
        self.loaded, self.host, self.emit, self.n = loaded, FakeHost("local", images=images), Recorder(), 0
        self.r1 = self.deploy(options=DeployOptions(hooks=False))
        self.emit.events.clear()

    def deploy(self, **kwargs) -> str:  # type: ignore[no-untyped-def]
        from deployctl.services.lifecycle.release_images import ReleaseImages

        self.n += 1
        images = ReleaseImages({"backend": f"sha256:back{self.n}", "frontend": f"sha256:front{self.n}"},
                               f"{self.n:07d}")
        kwargs.setdefault("now", T0 + 60 * self.n)
        return deploy(Env.resolve(self.loaded, "local"), images, SECRETS, self.emit, connectors=[self.host], **kwargs).release

    def failing_deploy(self, error=DeployError, **kwargs):  # type: ignore[no-untyped-def]
        with pytest.raises(error) as info:
            self.deploy(**kwargs)
        return info.value

    def warnings(self) -> list[str]:
        return [m.text for m in self.emit.of(Message) if m.level == "warning"]


# -- the schema ------------------------------------------------------------------------------------


def test_a_hook_is_a_list_or_a_table_with_secrets_and_timeout():
    config = parse_config(BASE + '[hooks]\npre_deploy = ["make", "check"]\n'
                                 '[hooks.post_deploy]\ncommand = ["curl", "-d", "x"]\nsecrets = ["SLACK_WEBHOOK"]\n'
                                 'timeout = 30\n')
    assert config.hooks.pre_deploy.command == ["make", "check"] and config.hooks.pre_deploy.timeout == 60
    assert config.hooks.post_deploy.secrets == ["SLACK_WEBHOOK"] and config.hooks.post_deploy.timeout == 30
    assert config.hooks.on_revert is None


@pytest.mark.parametrize("hooks, problem", [
    ('post_deploy = "curl https://x"', "hooks.post_deploy: a hook is an argv list, never a shell string"),
    ("post_deploy = []", "hooks.post_deploy.command: list should have at least 1 item"),
    ('pre_deploy = ["a", 3]', "hooks.pre_deploy.command[1]: expected a string"),
    ('post_deplo = ["a"]', "hooks.post_deplo: unknown key (did you mean 'post_deploy'?)"),
    ('post_deploy = { command = ["a"], timeout = 0 }', "hooks.post_deploy.timeout: 0 is out of range"),
    ('post_deploy = { command = ["a"], secrets = ["no-such"] }', "hooks.post_deploy.secrets[0]: 'no-such' is not"),
    ('pre_build = { command = ["a"], secrets = ["X"] }', "hooks: pre_build.secrets: a build has no environment"),
])
def test_a_bad_hook_is_refused_naming_its_key(hooks, problem):
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + "[hooks]\n" + hooks + "\n")
    assert any(problem in p for p in info.value.problems), info.value.problems


def test_the_hooks_environment_holds_the_deploy_and_only_the_secrets_it_lists():
    config = parse_config(BASE + '[hooks.post_deploy]\ncommand = ["notify"]\nsecrets = ["SLACK_WEBHOOK"]\n')
    context = plan.HookContext("a", "prod", "deploy", "R2", "R1", "abc123", ("h1", "h2"), outcome="succeeded")
    base = {"PATH": "/usr/bin", "HOME": "/home/ci", "DB_PASSWORD": "leak", "AWS_SECRET_ACCESS_KEY": "leak"}
    env = plan.hook_environment("post_deploy", config.hooks.post_deploy, context, base,
                                {"SLACK_WEBHOOK": "https://hooks.example/T"})
    assert env == {"PATH": "/usr/bin", "HOME": "/home/ci", "DEPLOYCTL_HOOK": "post_deploy",
                   "DEPLOYCTL_ACTION": "deploy", "DEPLOYCTL_APP": "a", "DEPLOYCTL_ENV": "prod",
                   "DEPLOYCTL_RELEASE": "R2", "DEPLOYCTL_PREVIOUS": "R1", "DEPLOYCTL_REVISION": "abc123",
                   "DEPLOYCTL_HOSTS": "h1,h2", "DEPLOYCTL_OUTCOME": "succeeded",
                   "SLACK_WEBHOOK": "https://hooks.example/T"}
    pre = plan.hook_environment("pre_deploy", config.hooks.post_deploy.model_copy(update={"secrets": []}), context,
                                base, {})
    assert "DEPLOYCTL_OUTCOME" not in pre and "SLACK_WEBHOOK" not in pre


@pytest.mark.parametrize("outcomes, name, back", [
    (["succeeded", "already live"], "succeeded", False),
    (["failed", "skipped"], "failed", False),
    (["switched back"], "reverted", True),
    (["reverted", "failed"], "reverted", True),
    (["aborted"], "reverted", True),
    (["succeeded", "uncertain"], "uncertain", True),
    (["succeeded", "failed"], "partial", False),
])
def test_the_outcome_a_post_hook_is_told(outcomes, name, back):
    assert plan.rollout_outcome(outcomes) == name and plan.went_back(outcomes) is back


def test_the_dry_run_rows_name_each_hook_where_it_runs_and_never_a_secret_value():
    config = parse_config(BASE + '[hooks]\npre_deploy = ["check"]\n'
                                 '[hooks.post_deploy]\ncommand = ["notify"]\nsecrets = ["SLACK_WEBHOOK"]\n')
    rows = plan.hook_rows(config.hooks, ["pre_deploy", "pre_migrate", "post_deploy"])
    assert [(r.step, r.argv) for r in rows] == [("hook pre_deploy", ("check",)), ("hook post_deploy", ("notify",))]
    assert "BEFORE the lock" in rows[0].detail and "AFTER the lock is released" in rows[1].detail
    assert "secrets in its environment: SLACK_WEBHOOK" in rows[1].detail
    skipped = plan.hook_rows(config.hooks, ["pre_deploy"], enabled=False)
    assert [(r.step, r.detail, r.argv) for r in skipped] == [("hook pre_deploy", "SKIPPED (--no-hooks)", None)]


# -- where each runs in the transaction (the fake host) ----------------------------------------------


def test_pre_deploy_runs_before_the_lock_and_post_deploy_after_it_is_released_with_the_env(tmp_path):
    out = tmp_path / "hooks.jsonl"
    lock_seen = tmp_path / "locked"
    loaded = loaded_with(f"[hooks]\npre_deploy = {toml_argv(record_hook(out))}\n"
                         f"[hooks.post_deploy]\ncommand = {toml_argv(record_hook(out))}\n"
                         'secrets = ["SLACK_WEBHOOK"]\n', tmp_path)
    site = Local(loaded)
    # Whether the lock is held while each hook runs: read from the fake host when it starts.
    site_emit = site.emit

    def watch(event):  # type: ignore[no-untyped-def]
        if isinstance(event, StepStarted) and event.step.startswith("hook "):
            with lock_seen.open("a") as f:
                f.write(f"{event.step} {locked(site.host)}\n")
        site_emit(event)

    site.emit = watch  # type: ignore[assignment]
    r2 = site.deploy()
    pre, post = seen(out)
    assert pre["DEPLOYCTL_HOOK"] == "pre_deploy" and post["DEPLOYCTL_HOOK"] == "post_deploy"
    assert pre["at"] <= post["at"]
    for env in (pre, post):
        assert (env["DEPLOYCTL_APP"], env["DEPLOYCTL_ENV"], env["DEPLOYCTL_RELEASE"], env["DEPLOYCTL_PREVIOUS"],
                env["DEPLOYCTL_HOSTS"], env["DEPLOYCTL_REVISION"], env["DEPLOYCTL_ACTION"]) == (
            "shop", "local", r2, site.r1, "local", "0000002", "deploy")
        assert "DB_PASSWORD" not in env  # a secret the hook does not list never reaches it
    assert "DEPLOYCTL_OUTCOME" not in pre and post["DEPLOYCTL_OUTCOME"] == "succeeded"
    assert post["SLACK_WEBHOOK"] == "https://hooks.example/T0K3N-abcdef" and "SLACK_WEBHOOK" not in pre
    assert lock_seen.read_text().splitlines() == ["hook pre_deploy False", "hook post_deploy False"]
    assert current(site.host) == r2


def test_a_failing_pre_deploy_stops_the_deploy_exit_6_nothing_changed_output_shown_redacted(tmp_path):
    argv = ["sh", "-c", "echo checking; echo the webhook is $LEAK; echo not ready >&2; exit 3"]
    loaded = loaded_with(f"[hooks]\npre_deploy = {toml_argv(argv)}\n", tmp_path)
    site = Local(loaded)
    redactor.add(SECRETS["SLACK_WEBHOOK"])
    before = list(site.host.files), records(site.host)
    os.environ["LEAK"] = SECRETS["SLACK_WEBHOOK"].reveal()  # inherited? never: only INHERITED names
    try:
        error = site.failing_deploy()
    finally:
        del os.environ["LEAK"]
    assert error.exit_code == ExitCode.DEPLOY_FAILED
    assert "hook pre_deploy (sh -c" in error.message and "exited 3" in error.message
    assert "not ready" in error.message and "nothing was changed" in (error.hint or "")
    assert current(site.host) == site.r1 and site.host.serving() == site.r1 and not locked(site.host)
    assert (list(site.host.files), records(site.host)) == before  # not even a record: the lock was never taken
    failed = [e for e in site.emit.of(StepFailed) if e.step == "hook pre_deploy"]
    assert failed and failed[0].output[-1] == "not ready"


def test_a_pre_deploy_output_is_redacted(tmp_path):
    token = SECRETS["SLACK_WEBHOOK"].reveal()
    argv = ["sh", "-c", 'echo "posting to $SLACK_WEBHOOK"; exit 1']
    loaded = loaded_with(f"[hooks.pre_deploy]\ncommand = {toml_argv(argv)}\nsecrets = ['SLACK_WEBHOOK']\n", tmp_path)
    site = Local(loaded)
    redactor.add(SECRETS["SLACK_WEBHOOK"])  # as fetch_secrets registers every fetched secret
    error = site.failing_deploy()
    lines = [e.detail for e in site.emit.of(StepProgress) if e.step == "hook pre_deploy"]
    assert lines == ["posting to ***"] and token not in error.message and "posting to ***" in error.message


def test_a_failing_post_deploy_is_a_warning_and_the_deploy_succeeds(tmp_path):
    loaded = loaded_with('[hooks]\npost_deploy = ["sh", "-c", "echo boom; exit 9"]\n', tmp_path)
    site = Local(loaded)
    r2 = site.deploy()  # no exception: exit 0
    assert current(site.host) == r2 and records(site.host)[-1].outcome == LIVE and not locked(site.host)
    assert any(w.startswith("hook post_deploy exited 9: the deploy itself is not affected") for w in site.warnings())


def test_a_pre_deploy_past_its_timeout_is_killed_with_its_process_group_and_the_lock_is_free(tmp_path):
    pid_file = tmp_path / "child.pid"
    argv = ["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"]
    loaded = loaded_with(f"[hooks.pre_deploy]\ncommand = {toml_argv(argv)}\ntimeout = 0.5\n", tmp_path)
    site = Local(loaded)
    started = time.perf_counter()
    error = site.failing_deploy()
    assert time.perf_counter() - started < 10
    assert "killed after its timeout of 0.5s (its whole process group)" in error.message
    child = int(pid_file.read_text())
    deadline = time.perf_counter() + 5
    while _alive(child) and time.perf_counter() < deadline:
        time.sleep(0.01)
    assert not _alive(child), "the hook's background child outlived it"
    assert current(site.host) == site.r1 and not locked(site.host)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (not reaped: its parent, the killed sh, is gone and init reaps it) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_a_failing_pre_migrate_is_the_migrations_failure_cleaned_up_and_recorded(tmp_path):
    out = tmp_path / "hooks.jsonl"
    loaded = loaded_with(f"[hooks]\npre_migrate = {toml_argv(record_hook(out, fail=True))}\n", tmp_path)
    site = Local(loaded)
    error = site.failing_deploy()
    assert error.exit_code == ExitCode.DEPLOY_FAILED and "hook pre_migrate" in error.message
    [env] = seen(out)
    assert env["DEPLOYCTL_HOOK"] == "pre_migrate"
    tried = records(site.host)[-1]
    migration = f"shop-local-migrate-{tried.release}"
    assert not any(text.startswith("docker start") and migration in text for _, text in site.host.calls)
    assert tried.outcome == FAILED and tried.release != site.r1 and site.host.of_release(tried.release) == []
    assert current(site.host) == site.r1 and not locked(site.host)


def test_on_revert_fires_when_the_verify_switches_back_then_post_deploy_says_reverted(tmp_path):
    out = tmp_path / "hooks.jsonl"
    loaded = loaded_with(f"[hooks]\non_revert = {toml_argv(record_hook(out))}\n"
                         f"post_deploy = {toml_argv(record_hook(out))}\n", tmp_path)
    site = Local(loaded)
    site.host.faults.append(Fault("http_get", PROXY, times=0, effect=wrong_release))
    error = site.failing_deploy()
    assert error.exit_code == ExitCode.DEPLOY_FAILED
    revert, post = seen(out)
    assert (revert["DEPLOYCTL_HOOK"], revert["DEPLOYCTL_OUTCOME"]) == ("on_revert", "reverted")
    assert (post["DEPLOYCTL_HOOK"], post["DEPLOYCTL_OUTCOME"]) == ("post_deploy", "reverted")
    assert revert["DEPLOYCTL_PREVIOUS"] == site.r1 and not locked(site.host)


def test_on_revert_fires_when_the_guard_switches_back(tmp_path):
    from deployctl.services.hosts import layout_for

    out = tmp_path / "hooks.jsonl"
    loaded = loaded_with(f"[hooks]\non_revert = {toml_argv(record_hook(out))}\n", tmp_path)
    images = [f"sha256:{s}{n}" for s in ("back", "front") for n in range(1, 7)] + [PROXY_IMAGE]
    host, emit = FakeHost("local", images=images), Recorder()
    layout = layout_for(loaded, "guarded")

    failing_log = failing_access_log(host, layout.lock_info)

    from deployctl.services.lifecycle.release_images import ReleaseImages

    def images_of(n: int) -> ReleaseImages:
        return ReleaseImages({"backend": f"sha256:back{n}", "frontend": f"sha256:front{n}"}, f"{n:07d}")

    r1 = deploy(Env.resolve(loaded, "guarded"), images_of(1), SECRETS, emit, connectors=[host], now=T0).release
    host.faults.append(Fault("run", r"^docker logs --timestamps --since ", times=0, effect=failing_log))
    with pytest.raises(DeployError) as info:
        deploy(Env.resolve(loaded, "guarded"), images_of(2), SECRETS, emit, connectors=[host], now=T0 + 60)
    assert "guard:" in info.value.message
    [revert] = seen(out)
    assert (revert["DEPLOYCTL_HOOK"], revert["DEPLOYCTL_OUTCOME"], revert["DEPLOYCTL_PREVIOUS"]) == (
        "on_revert", "reverted", r1)
    assert not locked(host, layout)


def test_no_hooks_skips_every_hook_saying_so(tmp_path):
    out = tmp_path / "hooks.jsonl"
    loaded = loaded_with(f"[hooks]\npre_deploy = {toml_argv(record_hook(out, fail=True))}\n"
                         f"post_deploy = {toml_argv(record_hook(out))}\n", tmp_path)
    site = Local(loaded)
    r2 = site.deploy(options=DeployOptions(hooks=False))
    assert current(site.host) == r2 and not out.exists()
    assert [e.step for e in site.emit.of(StepSkipped)] == ["hook pre_deploy", "hook post_deploy"]
    assert sum("SKIPPED (--no-hooks)" in w for w in site.warnings()) == 2


def test_a_rollback_runs_pre_deploy_then_post_rollback_after_the_lock(tmp_path):
    out = tmp_path / "hooks.jsonl"
    loaded = loaded_with(f"[hooks]\npre_deploy = {toml_argv(record_hook(out))}\n"
                         f"post_rollback = {toml_argv(record_hook(out))}\n", tmp_path)
    site = Local(loaded)
    r2 = site.deploy(options=DeployOptions(hooks=False))
    rollback(Env.resolve(loaded, "local"), site.emit, connectors=[site.host])
    pre, post = seen(out)
    assert (pre["DEPLOYCTL_HOOK"], pre["DEPLOYCTL_ACTION"], pre["DEPLOYCTL_RELEASE"], pre["DEPLOYCTL_PREVIOUS"]) == (
        "pre_deploy", "rollback", site.r1, r2)
    assert (post["DEPLOYCTL_HOOK"], post["DEPLOYCTL_OUTCOME"], post["DEPLOYCTL_REVISION"]) == (
        "post_rollback", "succeeded", "0000001")
    assert current(site.host) == site.r1 and not locked(site.host)


def test_a_failing_pre_deploy_stops_a_rollback_exit_6(tmp_path):
    loaded = loaded_with('[hooks]\npre_deploy = ["false"]\n', tmp_path)
    site = Local(loaded)
    r2 = site.deploy(options=DeployOptions(hooks=False))
    with pytest.raises(DeployError) as info:
        rollback(Env.resolve(loaded, "local"), site.emit, connectors=[site.host])
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED and current(site.host) == r2 and not locked(site.host)


def test_a_failing_pre_build_is_exit_5(tmp_path):
    config = parse_config(BASE + '[hooks]\npre_build = ["sh", "-c", "echo lint failed; exit 2"]\n')
    runner = HookRunner(config.hooks, Recorder(), root=tmp_path)
    with pytest.raises(BuildError) as info:
        runner.run("pre_build", plan.HookContext("a", "", "build", "tag1"))
    assert info.value.exit_code == ExitCode.BUILD_OR_TEST and "lint failed" in info.value.message


def test_a_hook_that_cannot_start_is_named(tmp_path):
    config = parse_config(BASE + '[hooks]\npre_deploy = ["/no/such/program"]\n')
    with pytest.raises(DeployError) as info:
        HookRunner(config.hooks, Recorder(), root=tmp_path).run("pre_deploy", plan.HookContext("a", "l", "deploy"))
    assert "cannot run /no/such/program" in info.value.message


def test_a_hook_killed_by_a_signal_says_which(tmp_path):
    config = parse_config(BASE + '[hooks]\npre_deploy = ["sh", "-c", "echo before; kill -KILL $$"]\n')
    with pytest.raises(DeployError) as info:
        HookRunner(config.hooks, Recorder(), root=tmp_path).run("pre_deploy", plan.HookContext("a", "l", "deploy"))
    assert "killed by SIGKILL" in info.value.message and "before" in info.value.message


def test_a_stopped_command_kills_its_hook(tmp_path):
    config = parse_config(BASE + '[hooks]\npre_migrate = ["sleep", "60"]\n')
    started = time.perf_counter()
    runner = HookRunner(config.hooks, Recorder(), root=tmp_path,
                        stopped=lambda: time.perf_counter() - started > 0.3)
    with pytest.raises(DeployError) as info:
        runner.run("pre_migrate", plan.HookContext("a", "l", "deploy"))
    assert "the command was interrupted" in info.value.message and time.perf_counter() - started < 5


def test_a_credential_written_into_a_hooks_argv_is_refused_naming_it():
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + '[hooks]\npost_deploy = ["curl", "https://bot:hunter22@chat.example/hook"]\n')
    [problem] = info.value.problems
    assert "hooks.post_deploy.command[1]: looks like a URL with a password" in problem
    assert "list NAME in hooks.post_deploy.secrets" in problem and "hunter22" not in problem


def test_a_post_hook_whose_secret_was_not_given_is_a_warning_not_a_crash(tmp_path):
    config = parse_config(BASE + '[hooks.post_rollback]\ncommand = ["true"]\nsecrets = ["SLACK_WEBHOOK"]\n')
    emit = Recorder()
    ran = HookRunner(config.hooks, emit, root=tmp_path).run(
        "post_rollback", plan.HookContext("a", "l", "rollback", outcome="succeeded"))
    assert ran is False
    assert any("its secrets were not fetched (SLACK_WEBHOOK)" in m.text for m in emit.of(Message))


class NoEngine:
    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        raise AssertionError(f"the engine was used ({name}) although pre_build failed")


def test_a_failing_pre_build_stops_the_build_before_the_engine_is_touched_exit_5(tmp_path):
    from deployctl.services.pipeline.build import BuildRequest, build_images

    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    out = tmp_path / "hooks.jsonl"
    loaded = LoadedConfig(tmp_path / "deploy.toml",
                          parse_config(BASE + f"[hooks]\npre_build = {toml_argv(record_hook(out, fail=True))}\n"))
    request = BuildRequest(artifacts_path=tmp_path / "build.json", tag="t1", env_name="staging")
    with pytest.raises(BuildError) as info:
        build_images(loaded, request, engine=NoEngine(), emit=Recorder())
    assert info.value.exit_code == ExitCode.BUILD_OR_TEST and "hook pre_build" in info.value.message
    [env] = seen(out)
    assert (env["DEPLOYCTL_ACTION"], env["DEPLOYCTL_RELEASE"], env["DEPLOYCTL_ENV"]) == ("build", "t1", "staging")
    assert not (tmp_path / "build.json").exists()


def test_on_revert_fires_once_after_a_fleet_rollout_reverts_and_every_lock_is_free(tmp_path):
    from deployctl.errors import RolloutError
    from deployctl.services.hosts import layout_for
    from deployctl.services.lifecycle.release_images import ReleaseImages

    out = tmp_path / "hooks.jsonl"
    loaded = loaded_with(f"[hooks]\non_revert = {toml_argv(record_hook(out))}\n"
                         f"pre_deploy = {toml_argv(record_hook(out))}\n", tmp_path)
    hosts, emit, layout = [FakeHost(name) for name in ("h1", "h2", "h3")], Recorder(), layout_for(loaded, "prod")

    def images(n: int) -> ReleaseImages:
        return ReleaseImages({s: f"registry.example/shop/{s}@sha256:{n:064d}" for s in ("backend", "frontend")},
                             f"{n:07d}")

    r1 = deploy(Env.resolve(loaded, "prod"), images(1), SECRETS, emit, connectors=list(hosts), now=T0,
                options=DeployOptions(hooks=False)).release
    hosts[1].faults.append(Fault("http_get", PROXY, times=0))
    with pytest.raises(RolloutError) as info:
        deploy(Env.resolve(loaded, "prod"), images(2), SECRETS, emit, connectors=list(hosts), now=T0 + 60)
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED
    pre, revert = seen(out)
    assert pre["DEPLOYCTL_HOSTS"] == "h1,h2,h3" and pre["DEPLOYCTL_PREVIOUS"] == r1
    assert (revert["DEPLOYCTL_HOOK"], revert["DEPLOYCTL_OUTCOME"]) == ("on_revert", "reverted")
    assert not any(locked(h, layout) for h in hosts)
