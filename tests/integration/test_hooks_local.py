"""[hooks] on a real local-engine deploy of the probe app, through the console script: the
dry run lists them without running them; the deploy runs pre_deploy before the lock and
post_deploy after it is released, each with its DEPLOYCTL_* environment, and a secret the
hook lists is in its environment but never in deployctl's output."""

from __future__ import annotations

import json
import sys

import pytest

from deployctl.config import load_config
from deployctl.services.hosts import layout_for
from tests.integration.deploy_fixtures import free_port, probe_config, remove_app, unique_app, write_probe_artifacts
from tests.integration.test_deploy_local import run_cli

pytestmark = pytest.mark.integration
SECRET = "probe-hook-secret-value"
# Appends {its env, whether the lock directory exists now} as one JSON line, and prints the secret.
RECORD = ("import json, os, sys; lock = sys.argv[2]; open(sys.argv[1], 'a').write(json.dumps({**dict(os.environ), "
          "'locked': os.path.isdir(lock)}) + '\\n'); print('secret is', os.environ.get('PROBE_DB_PASSWORD'))")


def test_hooks_run_around_a_real_local_deploy_in_order_with_their_env(tmp_path, probe_images):
    app, port = unique_app(), free_port()
    config = probe_config(tmp_path, app, port=port)
    lock_dir = layout_for(load_config(config), "local").lock_dir
    out = tmp_path / "hooks.jsonl"
    argv = json.dumps([sys.executable, "-c", RECORD, str(out), lock_dir])
    with config.open("a") as f:
        f.write(f"\n[hooks]\npre_deploy = {argv}\n"
                f"[hooks.post_deploy]\ncommand = {argv}\nsecrets = [\"PROBE_DB_PASSWORD\"]\ntimeout = 30\n")
    write_probe_artifacts(config, app, "7777777aaaa", probe_images.good, probe_images.good, probe_images.proxy)
    env = {"PROBE_DB_PASSWORD": SECRET}
    try:
        dry = run_cli(config, "deploy", "--env", "local", "--dry-run", env=env)
        assert dry.returncode == 0, dry.stderr
        assert "hooks (on this machine):" in dry.stdout and "hook pre_deploy" in dry.stdout
        assert "secrets in its environment: PROBE_DB_PASSWORD" in dry.stdout and SECRET not in dry.stdout
        assert not out.exists(), "the dry run ran a hook"

        done = run_cli(config, "--json", "deploy", "--env", "local", env=env)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout.strip().splitlines()[-1])
        release = result["release"]
        pre, post = [json.loads(line) for line in out.read_text().splitlines()]
        assert (pre["DEPLOYCTL_HOOK"], post["DEPLOYCTL_HOOK"]) == ("pre_deploy", "post_deploy")
        assert not pre["locked"] and not post["locked"]  # before the lock is taken; after it is released
        for hook_env in (pre, post):
            assert (hook_env["DEPLOYCTL_APP"], hook_env["DEPLOYCTL_ENV"], hook_env["DEPLOYCTL_RELEASE"],
                    hook_env["DEPLOYCTL_PREVIOUS"], hook_env["DEPLOYCTL_REVISION"], hook_env["DEPLOYCTL_HOSTS"]) == (
                app, "local", release, "", "7777777aaaa", "localhost")  # LocalConnector.host
        assert post["DEPLOYCTL_OUTCOME"] == "succeeded" and post["PROBE_DB_PASSWORD"] == SECRET
        assert "PROBE_DB_PASSWORD" not in pre
        events = [json.loads(line) for line in done.stdout.splitlines()]
        steps = [e["step"] for e in events if e.get("event") == "step_done"]
        assert steps.index("hook pre_deploy") < steps.index("deploy") < steps.index("hook post_deploy")
        assert SECRET not in done.stdout + done.stderr and "secret is ***" in done.stdout

        again = run_cli(config, "deploy", "--env", "local", "--no-hooks", env=env)
        assert again.returncode == 0, again.stderr
        assert "HOOKS SKIPPED (--no-hooks)" in again.stdout + again.stderr
        assert len(out.read_text().splitlines()) == 2
    finally:
        remove_app(app)
