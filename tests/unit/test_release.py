"""`release` as orchestration: stages in order, the first failure stops it with that stage's
exit code, push skipped on the local target, tests skipped only on request and loudly, and
secrets checked before anything is built. The stage services are replaced by recorders
here (each is tested for real in tests/integration); the CLI parsing is the real one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deployctl.artifacts import Artifacts
from deployctl.cli.main import main
from deployctl.config.load import LoadedConfig, parse_config
from deployctl.errors import BuildError, ConfigError, ConnectError, DeployctlError, ExitCode, TestsFailedError
from deployctl.events import Message, Recorder, StepDone, StepFailed, StepSkipped, StepStarted
from deployctl.services.lifecycle import release as release_service
from deployctl.services.pipeline.build import BuildRequest, BuildResult
from deployctl.services.lifecycle.deploy import DeployResult, HostOutcome
from deployctl.services.lifecycle.deploy_inputs import DeployInputs
from deployctl.services.env import Env
from deployctl.services.lifecycle.release import ReleaseRequest, run_release
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.pipeline.testing import TestRequest

CONFIG = """
app = "shop"
[registry]
server = "registry.example.internal:5000"
[services.web]
context = "web"
routed = true
secrets = ["WEB_KEY"]
[environments.local]
target = "local"
[environments.staging]
target = "ssh"
hosts = ["10.0.1.10"]
"""


class Stages:
    """Stand-ins for the stage services that record calls and fail where told."""

    def __init__(self, monkeypatch, fail: dict[str, DeployctlError] | None = None) -> None:
        self.calls: list[str] = []
        self.fail = fail or {}
        import deployctl.services.lifecycle.deploy as deploy_mod
        import deployctl.services.lifecycle.deploy_inputs as inputs_mod
        import deployctl.services.pipeline.push as push_mod

        monkeypatch.setattr(release_service, "build_images", self.stage("build", self._built))
        monkeypatch.setattr(release_service, "run_tests", self.stage("test", lambda *a, **k: []))
        monkeypatch.setattr(push_mod, "push_images", self.stage("push", lambda *a, **k: type("P", (), {"pushed": []})()))
        monkeypatch.setattr(inputs_mod, "deploy_inputs", self.stage("secrets", self._inputs))
        monkeypatch.setattr(inputs_mod, "release_images", lambda *a, **k: ReleaseImages({"web": "img"}, "abc"))
        monkeypatch.setattr(deploy_mod, "deploy", self.stage("deploy", lambda *a, **k: DeployResult(
            "20261127-101500-abc1234", "abc", [HostOutcome("10.0.1.10", "20261127-101500-abc1234", None, "succeeded", 1.0)])))
        monkeypatch.setattr(release_service, "app_urls", lambda *a, **k: ["http://127.0.0.1:8080/"])

    def stage(self, name, result):  # type: ignore[no-untyped-def]
        def run(*args, **kwargs):  # type: ignore[no-untyped-def]
            self.calls.append(name)
            if name in self.fail:
                raise self.fail[name]
            return result(*args, **kwargs)
        return run

    @staticmethod
    def _built(loaded, request, **_):  # type: ignore[no-untyped-def]
        return BuildResult(Artifacts("shop", "abc", False, "abc", "2026-11-27T10:15:00Z", {}), request.artifacts_path)

    @staticmethod
    def _inputs(env):  # type: ignore[no-untyped-def]
        return DeployInputs(env, {}, None)


def request(tmp_path: Path, *, tests: bool = True) -> ReleaseRequest:
    return ReleaseRequest(BuildRequest(artifacts_path=tmp_path / "build.json"),
                          TestRequest(reports_dir=tmp_path / "reports") if tests else None)


@pytest.fixture
def loaded(tmp_path):
    return LoadedConfig(tmp_path / "deploy.toml", parse_config(CONFIG))


def stage_events(recorder: Recorder) -> list[tuple[str, str]]:
    kinds = {StepStarted: "started", StepDone: "done", StepFailed: "failed", StepSkipped: "skipped"}
    return [(e.step, kinds[type(e)]) for e in recorder.events
            if type(e) in kinds and e.step.startswith("stage ")]


def test_local_release_builds_tests_and_deploys_without_pushing(monkeypatch, tmp_path, loaded):
    stages, recorder = Stages(monkeypatch), Recorder()
    result = run_release(Env.resolve(loaded, "local"), request(tmp_path), engine=None, emit=recorder)
    assert stages.calls == ["secrets", "build", "test", "deploy"]
    assert stage_events(recorder) == [("stage build", "started"), ("stage build", "done"),
                                      ("stage test", "started"), ("stage test", "done"),
                                      ("stage push", "skipped"),
                                      ("stage deploy", "started"), ("stage deploy", "done")]
    assert [(s.stage, s.outcome) for s in result.stages] == [("build", "ok"), ("test", "ok"), ("push", "skipped"),
                                                             ("deploy", "ok")]
    assert result.release == "20261127-101500-abc1234" and result.urls == ["http://127.0.0.1:8080/"]


def test_ssh_release_pushes_between_test_and_deploy(monkeypatch, tmp_path, loaded):
    stages = Stages(monkeypatch)
    run_release(Env.resolve(loaded, "staging"), request(tmp_path), engine=None, emit=Recorder())
    assert stages.calls == ["secrets", "build", "test", "push", "deploy"]


@pytest.mark.parametrize("stage, error, code", [
    ("build", BuildError("step 7: pip failed"), ExitCode.BUILD_OR_TEST),
    ("test", TestsFailedError("tests failed for web"), ExitCode.BUILD_OR_TEST),
    ("push", ConnectError("cannot reach the registry"), ExitCode.CONNECT),
])
def test_the_first_failed_stage_stops_the_release_with_its_exit_code(monkeypatch, tmp_path, loaded, stage, error, code):
    stages, recorder = Stages(monkeypatch, fail={stage: error}), Recorder()
    with pytest.raises(DeployctlError) as info:
        run_release(Env.resolve(loaded, "staging"), request(tmp_path), engine=None, emit=recorder)
    assert info.value.exit_code == code
    order = ["secrets", "build", "test", "push", "deploy"]
    assert stages.calls == order[:order.index(stage) + 1]  # nothing after the failed stage ran
    assert stage_events(recorder)[-1] == (f"stage {stage}", "failed")


def test_a_missing_secret_fails_before_the_build(monkeypatch, tmp_path, loaded):
    stages = Stages(monkeypatch, fail={"secrets": ConfigError(["secret 'WEB_KEY' is missing"])})
    with pytest.raises(ConfigError):
        run_release(Env.resolve(loaded, "local"), request(tmp_path), engine=None, emit=Recorder())
    assert stages.calls == ["secrets"]


def test_skipped_tests_are_said_loudly(monkeypatch, tmp_path, loaded):
    stages, recorder = Stages(monkeypatch), Recorder()
    result = run_release(Env.resolve(loaded, "local"), request(tmp_path, tests=False), engine=None, emit=recorder)
    assert "test" not in stages.calls and result.tests_skipped
    warning = recorder.of(Message)[0]
    assert warning.level == "warning" and "TESTS SKIPPED" in warning.text
    assert ("stage test", "skipped") in stage_events(recorder)


def test_cli_json_ends_with_the_result_and_its_url(monkeypatch, tmp_path, capsys):
    (tmp_path / "deploy.toml").write_text(CONFIG)
    Stages(monkeypatch)
    monkeypatch.setattr("deployctl.adapters.docker_engine.DockerEngine.connect", classmethod(lambda cls, **k: None))
    code = main(["--config", str(tmp_path / "deploy.toml"), "release", "--skip-tests", "--json",
                 "--build-arg", "BASE_IMAGE=standin/python", "--build-arg", "proxy:BASE_IMAGE=standin/nginx"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    result = json.loads(out[-1])
    assert (result["command"], result["url"], result["tests_skipped"]) == ("release", "http://127.0.0.1:8080/", True)
    assert [s["stage"] for s in result["stages"]] == ["build", "test", "push", "deploy"]


def test_cli_exit_code_is_the_failed_stages(monkeypatch, tmp_path, capsys):
    (tmp_path / "deploy.toml").write_text(CONFIG)
    Stages(monkeypatch, fail={"test": TestsFailedError("tests failed for web")})
    monkeypatch.setattr("deployctl.adapters.docker_engine.DockerEngine.connect", classmethod(lambda cls, **k: None))
    code = main(["--config", str(tmp_path / "deploy.toml"), "release", "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert code == ExitCode.BUILD_OR_TEST
    assert lines[-1] == {"event": "error", "exit_code": 5, "problems": ["tests failed for web"]}
    assert {"event": "step_failed", "step": "stage test"}.items() <= lines[-2].items()
