"""Release ids, the release history (`releases.jsonl`) and the choices made from it:
which release is the previous good one, which ones prune may remove.

The history is append-only: every deploy or rollback adds one record with its outcome, so
the file is an audit log as well as the state rollback reads.
"""

from __future__ import annotations

import calendar
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from ...release_ids import NO_REVISION, RELEASE_ID_SHAPE, RELEASE_RE, REVISION_RE, BadReleaseId, check_release_id, is_release_id

# Outcomes a record can have.
LIVE = "succeeded"  # the switch happened and was verified
FAILED = "failed"  # the old release kept serving
REVERTS = "reverts"  # a rollback record's extra: see ReleaseRecord.reverts
REVERTED = "reverted"  # switched, then switched back (its post-switch check failed, or the rollout stopped)
SKIPPED = "skipped"  # a rollout across hosts stopped before this host's turn
UNCERTAIN = "uncertain"  # switching back did not finish: the host needs a look
ABORTED = "aborted"  # a canary judged bad (or aborted by hand): back to 0% of the traffic
# An action that changes no release: `deployctl exec` ran a command in a release's service
# (plan/operate/exec.py). An audit line only: good(), deployed(), stats and rollback never count it.
EXEC = "exec"
# A `deployctl drill` line (plan/judging/drill.py): the drill release's nets and times; stats keeps it apart.
DRILL = "drill"


def new_release_id(now: float, revision: str | None, taken: Iterable[str] = ()) -> str:
    """`YYYYMMDD-HHMMSS-<sha7>` in UTC: sortable by time, says which commit it is.

    Two deploys of the same commit within one second get `-2`, `-3`...; an id is never reused.
    Ids stay in deploy order even when this machine's clock is behind the one that made the
    host's newest id (`taken` holds every id the hosts have seen): the new id then takes
    that id's second plus one. Rollback and prune order releases by id, so an id earlier
    than the live one would make a rollback skip the release just replaced.
    """
    short = (revision or NO_REVISION)[:7].lower()
    if not REVISION_RE.match(short):  # read_artifacts refuses such a revision first; this is the last guard
        raise BadReleaseId(f"revision {revision!r} is not a git revision (hex digits)")
    taken = set(taken)
    stamps = [t[:15] for t in taken if RELEASE_RE.match(t)]
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    if stamps and max(stamps) > stamp:
        newest = calendar.timegm(time.strptime(max(stamps), "%Y%m%d-%H%M%S"))
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(newest + 1))
    base = f"{stamp}-{short}"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return check_release_id(candidate, "new release id")


def sort_key(release: str) -> tuple[str, int]:
    """Order of ids: by time then collision suffix (`...-abc1234-10` after `...-abc1234-9`)."""
    head, _, tail = release.rpartition("-")
    if tail.isdigit() and RELEASE_RE.match(release) and head.count("-") == 2:
        return head, int(tail)
    return release, 1


@dataclass(frozen=True)
class ReleaseRecord:
    """One line of releases.jsonl. `images` maps service -> the reference run (digest or id)."""

    release: str
    revision: str | None
    images: dict[str, str]
    action: str  # deploy | rollback | scale (swarm) | exec (an audit line, plan/operate/exec.py)
    outcome: str  # succeeded | failed | reverted
    who: str
    when: str  # RFC 3339, UTC
    message: str = ""
    previous: str | None = None  # the release that was live before
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    dirty: bool = False  # built from a working tree with uncommitted changes: `revision` is not all of it
    # A deploy's snapshot of the release (plan/lifecycle/release_spec.py): what rollback starts again.
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def reverts(self) -> str | None:
        """On a rollback record: the release a stopped rollout had switched this host to, when
        this switch only put the host back (HostDeploy.revert, HostRollback.revert). Nobody
        judged that release: history and stats must not count it as rolled away from."""
        return self.extra.get(REVERTS) or None

    def to_line(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v not in (None, "", {}) and v is not False}
        return json.dumps(data, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ReleaseRecord":
        known = {f for f in cls.__dataclass_fields__}
        # to_line leaves out empty fields: put their defaults back.
        data = {"revision": None, "images": {}, **data}
        check_release_id(data.get("release"), "release")
        if data.get("previous") is not None:
            check_release_id(data["previous"], "previous")
        extra = data.get("extra")
        if isinstance(extra, dict) and extra.get(REVERTS):
            check_release_id(extra[REVERTS], f"extra.{REVERTS}")
        spec = data.get("spec")
        if isinstance(spec, dict) and "release" in spec:  # what rollback starts again
            check_release_id(spec["release"], "spec.release")
        return cls(**{k: v for k, v in data.items() if k in known})


_STRINGS = ("action", "outcome", "who", "when", "message", "error")
_OPTIONAL_STRINGS = ("revision",)
_MAPPINGS = ("extra", "spec")


def record_problem(data: Any) -> str | None:
    """Why a parsed line cannot be a release record, or None when it can. Checked by type
    before any use: well-formed JSON with a wrong type (`"release": 1`) once crashed every
    later deploy, rollback and prune on the host (sorting ids, reading digests)."""
    if not isinstance(data, dict):
        return f"not an object but {type(data).__name__}"
    missing = [k for k in ("release", "action", "outcome", "who", "when") if k not in data]
    if missing:
        return "no " + ", ".join(missing)
    release = data["release"]
    if not isinstance(release, str) or not RELEASE_RE.match(release):
        return f"release {release!r} is not a release id"
    previous = data.get("previous")
    if previous not in (None, "") and (not isinstance(previous, str) or not RELEASE_RE.match(previous)):
        return f"previous {previous!r} is not a release id"
    for key in _STRINGS:
        if key in data and not isinstance(data[key], str):
            return f"{key} is {type(data[key]).__name__}, not a string"
    for key in _OPTIONAL_STRINGS:
        if data.get(key) is not None and not isinstance(data[key], str):
            return f"{key} is {type(data[key]).__name__}, not a string"
    images = data.get("images", {})
    if not isinstance(images, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in images.items()):
        return "images is not a mapping of service names to image references"
    for key in _MAPPINGS:
        if key in data and not isinstance(data[key], dict):
            return f"{key} is {type(data[key]).__name__}, not a mapping"
    if "dirty" in data and not isinstance(data["dirty"], bool):
        return f"dirty is {type(data['dirty']).__name__}, not true/false"
    if data.get("spec"):
        # Rollback starts the release again from it: one that cannot even be read back
        # would crash the rollback; leaving the record out makes the release not a target.
        from .release_spec import ReleaseSpec

        try:
            ReleaseSpec.from_dict(data["spec"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return f"spec is not a release spec ({type(exc).__name__}: {exc})"
    return None


def parse_history(text: str) -> list[ReleaseRecord]:
    """Every valid record (History.parse also says which lines were left out and why)."""
    return parse_history_lines(text)[0]


def parse_history_lines(text: str) -> tuple[list[ReleaseRecord], list[tuple[int, str]]]:
    """Every valid line, and (line number, why) for each line skipped: a torn last line (a
    crash mid-append) or a record of the wrong shape is left out, never fatal."""
    records, skipped = [], []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            data = json.loads(line)
        except ValueError:
            skipped.append((number, "not JSON (a torn write?)"))
            continue
        problem = record_problem(data)
        if problem is not None:
            skipped.append((number, problem))
            continue
        try:
            records.append(ReleaseRecord.from_dict(data))
        except (BadReleaseId, ValueError, TypeError, AttributeError) as exc:
            # A release id deployctl never makes (an edited file): left out, so it never
            # reaches a path or a container name, and said with the others.
            skipped.append((number, str(exc)))
    return records, skipped


@dataclass(frozen=True)
class History:
    records: tuple[ReleaseRecord, ...]
    skipped: tuple[tuple[int, str], ...] = ()  # (line number, why) of each line left out

    @classmethod
    def parse(cls, text: str) -> "History":
        records, skipped = parse_history_lines(text)
        return cls(tuple(records), tuple(skipped))

    def ids(self) -> set[str]:
        return {r.release for r in self.records}

    def good(self) -> list[str]:
        """Releases that were once switched to and verified, oldest first, each once."""
        seen: dict[str, None] = {}
        for r in self.records:
            if r.action == "deploy" and r.outcome == LIVE:
                seen[r.release] = None
            elif r.action == "deploy" and r.outcome in (REVERTED, ABORTED):
                # The guard reverts a release after its `succeeded` record (it was verified,
                # then its errors crossed the limit): no rollback should go back to it.
                seen.pop(r.release, None)
            elif r.action == "rollback" and r.outcome == LIVE:
                # Someone rolled away from `previous`: a later plain rollback must not put it
                # back (stats counts it a failed change too). Rolling to a release by hand
                # (`--to`) makes it good again. A stopped rollout putting this host back is
                # no such judgement (tests/faults: a fleet rollback whose second host failed
                # left the first with no previous release, and the next rollback refused).
                if not r.reverts:
                    seen.pop(r.previous or "", None)
                if r.release in seen or self.deployed(r.release) is not None:
                    seen[r.release] = None
        return sorted(seen, key=sort_key)

    def deployed(self, release: str) -> ReleaseRecord | None:
        """The record of the deploy that brought `release` in (its images, revision, who)."""
        for r in self.records:
            if r.release == release and r.action == "deploy" and r.outcome == LIVE:
                return r
        return None

    def previous_good(self, current: str | None) -> str | None:
        """The newest good release older than the live one: what a plain `rollback` goes to.

        "Older than the live one" (not "live before it") so that rolling back twice walks
        further back instead of bouncing between two releases.
        """
        good = self.good()
        if current is None:
            return good[-1] if good else None
        older = [r for r in good if sort_key(r) < sort_key(current)]
        return older[-1] if older else None


def prune_selection(on_host: Sequence[str], *, keep: int, live: str | None, previous_good: str | None) -> list[str]:
    """Releases whose containers may go: all but the newest `keep`, never the live release
    nor the previous good one (the rollback target)."""
    ordered = sorted(set(on_host), key=sort_key)
    kept = set(ordered[-keep:]) if keep > 0 else set()
    protected = {r for r in (live, previous_good) if r}
    return [r for r in ordered if r not in kept and r not in protected]
