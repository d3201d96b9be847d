"""Reads the git state a build is tagged with, by running the `git` command."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import UsageError
from ..plan.pipeline.build import GitState, fingerprint_changes


def _git(root: Path, *args: str, check: bool = True) -> bytes | None:
    import subprocess

    try:
        done = subprocess.run(
            # Fixed diff settings so a user's git config cannot change the fingerprint.
            ["git", "-c", "core.quotePath=false", "-c", "diff.noprefix=false", "-C", str(root), *args],
            capture_output=True, check=False,
        )
    except FileNotFoundError:
        raise UsageError("git is not installed", hint="install git, or pass --tag to name the build yourself") from None
    if done.returncode != 0:
        if check:
            raise UsageError(
                f"git {' '.join(args)} failed in {root}: {done.stderr.decode(errors='replace').strip()}",
                hint="pass --tag to name the build yourself",
            )
        return None
    return done.stdout


def git_root(path: Path) -> Path | None:
    out = _git(path, "rev-parse", "--show-toplevel", check=False)
    return Path(out.decode().strip()) if out else None


def read_git_state(path: Path, *, exclude: Sequence[Path] = ()) -> GitState:
    """HEAD's revision and a fingerprint of uncommitted changes under the repository.

    `exclude` names deployctl's own outputs (artifacts file, reports) so writing them
    does not make the next build's tree look dirty when they are not git-ignored.
    """
    root = git_root(path)
    if root is None:
        raise UsageError(f"{path} is not inside a git repository", hint="pass --tag to name the build yourself")
    head = _git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    if not head:
        raise UsageError(f"{root}: the repository has no commit yet", hint="commit, or pass --tag")
    revision = head.decode().strip()
    commit_time = int(_git(root, "show", "-s", "--format=%ct", "HEAD").decode().strip())

    pathspec = ["--", "."]
    for path_ in exclude:
        try:
            pathspec.append(f":(exclude){path_.resolve().relative_to(root)}")
        except ValueError:
            pass  # outside the repository: git never sees it
    diff = _git(root, "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff", "--no-textconv", *pathspec)
    listed = _git(root, "ls-files", "--others", "--exclude-standard", "-z", *pathspec)
    untracked = []
    for name in filter(None, listed.decode(errors="surrogateescape").split("\0")):
        file = root / name
        # A broken symlink or a file deleted since the listing still counts, by its name.
        try:
            content = file.read_bytes() if not file.is_symlink() else str(file.readlink()).encode()
        except OSError:
            content = b""
        untracked.append((name, content))

    remote = _git(root, "remote", "get-url", "origin", check=False)
    return GitState(
        revision=revision,
        commit_time=commit_time,
        dirty_hash=fingerprint_changes(diff or b"", untracked),
        # Without a remote, the checkout itself is where the source is.
        source=public_url(remote.decode().strip()) if remote else root.as_uri(),
    )


def public_url(url: str) -> str:
    """The remote URL without credentials: `https://user:token@host/x` must not end up in
    an image label that anyone who can pull the image reads."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        rest = rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}" if sep else url


def commit_times(path: Path, revisions: Sequence[str]) -> dict[str, float]:
    """revision -> its commit time (epoch seconds), for the ones this repository knows
    (`git show -s --format=%ct REV`); unknown ones, or no git at all, are left out."""
    out: dict[str, float] = {}
    import re

    for revision in dict.fromkeys(r for r in revisions if r and re.fullmatch(r"[0-9a-fA-F]{4,64}", r)):
        try:
            text = _git(path, "show", "-s", "--format=%ct", f"{revision}^{{commit}}", "--", check=False)
        except UsageError:  # git is not installed: every revision is unknown
            return out
        value = (text or b"").decode(errors="replace").strip().splitlines()
        if value and value[-1].isdigit():
            out[revision] = float(value[-1])
    return out
