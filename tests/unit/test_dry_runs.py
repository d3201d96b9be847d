"""services/lifecycle/dry_runs.py: the plan `deploy --dry-run` prints, chosen by the environment's
target in one place (the CLI only renders it). Host plans are compared with a real deploy's
argvs in tests/unit/test_dry_run_matches_run.py; here, the choice and the entries."""

from __future__ import annotations

from pathlib import Path

from deployctl.config import load_config
from deployctl.services.lifecycle.deploy_result import DeployOptions
from deployctl.services.lifecycle.dry_runs import deploy_plan
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.env import Env

CONFIG = """
app = "shop"
[registry]
server = "registry.example:5000"
[services.web]
context = "web"
routed = true
migrate = ["python", "-m", "migrate"]
[hooks]
post_deploy = ["curl", "-fsS", "https://hooks.example/deployed"]
[environments.laptop]
target = "local"
[environments.prod]
target = "swarm"
manager = "10.0.0.1"
"""


def loaded(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "web").mkdir(exist_ok=True)
    (tmp_path / "deploy.toml").write_text(CONFIG)
    return load_config(tmp_path / "deploy.toml")


IMAGES = ReleaseImages({"web": "registry.example:5000/shop/web@sha256:" + "a" * 64}, "abcdef1234")


def test_a_swarm_environment_plans_on_its_manager_and_a_local_one_on_its_host(tmp_path):
    config = loaded(tmp_path)
    release, swarm = deploy_plan(Env.resolve(config, "prod"), IMAGES, None, DeployOptions())
    assert release.endswith("-abcdef1")
    assert list(swarm) == ["swarm manager 10.0.0.1", "hooks (on this machine)"]
    steps = swarm["swarm manager 10.0.0.1"]
    assert [s.step for s in steps[:2]] == ["preflight", "lock"]
    assert any(s.argv and "migrate" in s.argv for s in steps), "the migration is in the Swarm plan"

    _, local = deploy_plan(Env.resolve(config, "laptop"), IMAGES, None, DeployOptions())
    assert list(local) == ["localhost", "hooks (on this machine)"]
    assert [s.step for s in local["localhost"]][0] == "preflight"


def test_the_hooks_entry_names_the_hooks_the_deploy_would_run_and_says_when_they_are_skipped(tmp_path):
    _, plans = deploy_plan(Env.resolve(loaded(tmp_path), "laptop"), IMAGES, None, DeployOptions())
    assert [(r.step, r.argv) for r in plans["hooks (on this machine)"]] == [
        ("hook post_deploy", ("curl", "-fsS", "https://hooks.example/deployed"))]
    _, skipped = deploy_plan(Env.resolve(loaded(tmp_path), "laptop"), IMAGES, None, DeployOptions(), hooks=False)
    [row] = skipped["hooks (on this machine)"]
    assert (row.step, row.argv, row.detail) == ("hook post_deploy", None, "SKIPPED (--no-hooks)")
