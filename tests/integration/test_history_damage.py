"""A well-formed but wrong releases.jsonl line on a real `local` site: deploy, rollback
(with prune), `releases` and `stats` keep working and say which line they skipped."""

from __future__ import annotations

import json

import pytest

from deployctl.events import Message, Recorder
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.hosts import layout_for
from deployctl.services.lifecycle.rollback import rollback
from deployctl.services.env import Env
from tests.integration.test_deploy_local import SECRETS, images, run_cli, site  # noqa: F401 - site is a fixture

pytestmark = pytest.mark.integration


def test_a_wrong_history_line_is_skipped_with_its_number_and_nothing_crashes(site):  # noqa: F811
    app, port, loaded, probe = site
    v1 = deploy(Env.resolve(loaded, "local"), images(probe, "1212121aaaa"), SECRETS, Recorder()).release
    v2 = deploy(Env.resolve(loaded, "local"), images(probe, "3434343bbbb"), SECRETS, Recorder()).release
    history = layout_for(loaded, "local").history
    lines = open(history).read().splitlines()
    bad = json.loads(lines[-1]) | {"release": 1}  # the crash from the review: a number for the id
    with open(history, "a") as handle:
        handle.write(json.dumps(bad) + "\n")
    number = len(lines) + 1

    events = Recorder()
    [outcome] = rollback(Env.resolve(loaded, "local"), events)
    assert (outcome.release, outcome.outcome) == (v1, "succeeded")
    said = [e.text for e in events.of(Message) if e.level == "warning"]
    assert f"{history} line {number} skipped: release 1 is not a release id" in said

    events = Recorder()
    v3 = deploy(Env.resolve(loaded, "local"), images(probe, "5656565cccc"), SECRETS, events).release  # prunes too
    assert v3 not in (v1, v2)
    for verb in ("releases", "stats"):
        done = run_cli(loaded.path, verb, "--env", "local")
        assert done.returncode == 0, done.stderr
        assert f"line {number} skipped: release 1 is not a release id" in done.stdout + done.stderr
