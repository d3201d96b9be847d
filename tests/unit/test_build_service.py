"""Build service decisions that need no engine: the `created` label time, merging partial builds."""

from __future__ import annotations

from deployctl.adapters.git import public_url
from deployctl.artifacts import Artifacts, ImageArtifact, write_artifacts
from deployctl.plan.pipeline.build import GitState
from deployctl.services.pipeline.build import _merge_previous, label_time


def test_created_label_is_the_commit_time_so_rebuilds_are_identical():
    git = GitState("a" * 40, commit_time=1_700_000_000)
    assert label_time(git, {}) == "2023-11-14T22:13:20Z"
    assert label_time(git, {"SOURCE_DATE_EPOCH": "0"}) == "1970-01-01T00:00:00Z"
    assert label_time(git, {"SOURCE_DATE_EPOCH": "garbage"}) == "2023-11-14T22:13:20Z"


def artifacts(tag: str, images: dict) -> Artifacts:
    return Artifacts("shop", "e" * 40, False, tag, "2026-01-01T00:00:00Z", images)


def test_partial_build_of_the_same_tag_keeps_the_other_images(tmp_path):
    path = tmp_path / "build.json"
    web = ImageArtifact("r/web", "t1", "sha256:w", "sha256:d")
    write_artifacts(path, artifacts("t1", {"web": web, "api": ImageArtifact("r/api", "t1", "sha256:old")}))
    merged = _merge_previous(path, artifacts("t1", {}))
    assert merged.images == {"web": web, "api": ImageArtifact("r/api", "t1", "sha256:old")}


def test_a_different_tag_starts_a_fresh_file(tmp_path):
    path = tmp_path / "build.json"
    write_artifacts(path, artifacts("t1", {"web": ImageArtifact("r/web", "t1", "sha256:w")}))
    assert _merge_previous(path, artifacts("t2", {})).images == {}
    path.write_text("garbage")
    assert _merge_previous(path, artifacts("t1", {})).images == {}


def test_remote_urls_lose_their_credentials():
    assert public_url("https://ci:tok3n@git.example.com/shop.git") == "https://git.example.com/shop.git"
    assert public_url("git@github.com:org/shop.git") == "git@github.com:org/shop.git"
    assert public_url("https://git.example.com/shop.git") == "https://git.example.com/shop.git"
