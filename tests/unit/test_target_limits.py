"""plan/lifecycle/target_limits.py: what a target lacks is refused by name, the same way everywhere,
and docs/swarm.md's "Not done yet" names every entry of the Swarm's table."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.errors import ExitCode, UsageError
from deployctl.plan.lifecycle.target_limits import LIMITS, SWARM, refuse

DOCS = Path(__file__).resolve().parents[2] / "docs" / "swarm.md"


def test_a_missing_feature_is_refused_with_the_environment_its_target_why_and_what_instead():
    with pytest.raises(UsageError) as info:
        refuse("swarm", "prod", "jobs", "tick, nightly")
    assert info.value.exit_code == ExitCode.USAGE
    assert info.value.message == ('scheduled jobs ([jobs] tables) is not available on environments.prod '
                                  '(target = "swarm") yet (asked by tick, nightly): a Swarm has no one-off container '
                                  'of a release for a job to run in')
    assert info.value.hint == SWARM["jobs"].instead


@pytest.mark.parametrize("target", ["local", "ssh"])
def test_hosts_lack_nothing(target):
    assert target not in LIMITS
    for key in SWARM:
        refuse(target, "prod", key)  # nothing raised


def test_every_swarm_limit_is_in_the_swarm_docs():
    text = DOCS.read_text()
    section = text[text.index("## Not done yet"):]
    for key, missing in SWARM.items():
        assert f"`{key}`" in section, f"docs/swarm.md, Not done yet: no entry for {key} ({missing.feature})"


def test_the_swarm_docs_list_no_limit_the_table_no_longer_has():
    """A feature made to work on a Swarm leaves the docs' list with its entry (the canary did)."""
    import re

    text = DOCS.read_text()
    section = text[text.index("## Not done yet"):]
    section = section[:section.index("Other limits:")]
    listed = re.findall(r"^- `([a-z_]+)`:", section, re.M)
    assert listed and set(listed) == set(SWARM), listed
