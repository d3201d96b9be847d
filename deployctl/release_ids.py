"""What a release id and a git revision look like, and the check of one read from outside.

Its own module at the bottom of the package: the state layout (plan/lifecycle/names.py), the
history (plan/lifecycle/releases.py) and build.json (artifacts.py) all check ids before they become
paths or names, and none of them may import the others for it."""

from __future__ import annotations

import re

RELEASE_RE = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-z]{1,12}(-[0-9]+)?\Z")
NO_REVISION = "0000000"
# A git revision (sha-1 or sha-256, as `git rev-parse` prints it): what build.json carries.
REVISION_RE = re.compile(r"^[0-9a-f]{7,64}\Z")
RELEASE_ID_SHAPE = "YYYYMMDD-HHMMSS-REVISION, e.g. 20261127-101500-0123abc"


class BadReleaseId(ValueError):
    """A release id read from outside (a host's state, build.json, the command line) that is
    not one deployctl makes. Ids become paths (`secrets/<release>`, which prune removes with
    `rm -rf`) and container names, so one like `x/../..` must never get that far."""


def is_release_id(value: object) -> bool:
    return isinstance(value, str) and RELEASE_RE.match(value) is not None


def check_release_id(value: object, where: str) -> str:
    """`value` when it is a release id, else BadReleaseId naming `where` it was read from."""
    if not is_release_id(value):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise BadReleaseId(f"{where}: {shown} is not a release id (expected {RELEASE_ID_SHAPE})")
    return value  # type: ignore[return-value]
