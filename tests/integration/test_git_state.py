"""The git adapter on real repositories: revision, dirty fingerprint, excluded outputs."""

from __future__ import annotations

import subprocess

import pytest

from deployctl.adapters.git import read_git_state
from deployctl.errors import UsageError


def git(root, *args):
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "a.txt").write_text("one\n")
    (root / ".gitignore").write_text("ignored/\n")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@e.invalid", "commit", "-q", "-m", "init")
    return root


def test_clean_repository(repo):
    state = read_git_state(repo)
    assert state.revision == git(repo, "rev-parse", "HEAD") and not state.dirty
    assert state.source == repo.resolve().as_uri()
    assert state.commit_time == int(git(repo, "show", "-s", "--format=%ct"))


def test_every_kind_of_change_is_dirty_and_distinct(repo):
    hashes = set()
    (repo / "a.txt").write_text("two\n")                     # unstaged edit
    hashes.add(read_git_state(repo).dirty_hash)
    git(repo, "add", "a.txt")                                 # staged: same content, same tree
    assert read_git_state(repo).dirty_hash in hashes
    (repo / "b.txt").write_text("new\n")                     # untracked file
    hashes.add(read_git_state(repo).dirty_hash)
    (repo / "b.txt").write_text("newer\n")                   # its content changes
    hashes.add(read_git_state(repo).dirty_hash)
    assert None not in hashes and len(hashes) == 3


def test_ignored_and_excluded_paths_do_not_count(repo):
    (repo / "ignored").mkdir()
    (repo / "ignored" / "x").write_text("build output")
    out = repo / ".deployctl"
    out.mkdir()
    (out / "build.json").write_text("{}")                    # not ignored, but deployctl's own output
    assert read_git_state(repo, exclude=[out / "build.json"]).dirty_hash is None
    assert read_git_state(repo).dirty


def test_remote_url_without_credentials(repo):
    git(repo, "remote", "add", "origin", "https://ci:s3cret@git.example.com/shop.git")
    assert read_git_state(repo).source == "https://git.example.com/shop.git"


def test_not_a_repository_and_no_commit(tmp_path):
    with pytest.raises(UsageError, match="not inside a git repository"):
        read_git_state(tmp_path)
    git(tmp_path, "init", "-q")
    with pytest.raises(UsageError, match="no commit yet"):
        read_git_state(tmp_path)
