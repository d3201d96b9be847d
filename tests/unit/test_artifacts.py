"""The artifacts file: round trip, atomic write, and clear errors for what is not one."""

from __future__ import annotations

import json

import pytest

from deployctl.artifacts import FORMAT, Artifacts, ImageArtifact, TestImage, read_artifacts, write_artifacts
from deployctl.errors import ConfigError, ExitCode, UsageError

REPO = "127.0.0.1:5000/shop/api"


def sample() -> Artifacts:
    return Artifacts(
        app="shop", revision="0" * 40, dirty=False, tag="000000000000", created="2026-01-01T00:00:00Z",
        images={
            "api": ImageArtifact(REPO, "000000000000", "sha256:" + "1" * 64, "sha256:" + "2" * 64,
                                 TestImage(f"{REPO}:000000000000-test", "sha256:" + "3" * 64)),
            "proxy": ImageArtifact("127.0.0.1:5000/shop/proxy", "000000000000", "sha256:" + "4" * 64),
        },
    )


def test_round_trip(tmp_path):
    path = tmp_path / "out" / "build.json"
    write_artifacts(path, sample())
    assert read_artifacts(path, app="shop") == sample()
    assert [p.name for p in path.parent.iterdir()] == ["build.json"]  # no temp file left behind


def test_documented_shape(tmp_path):
    path = tmp_path / "build.json"
    write_artifacts(path, sample())
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT
    assert set(data) == {"format", "app", "revision", "dirty", "tag", "created", "images"}
    api = data["images"]["api"]
    assert api["pinned"] == f"{REPO}@sha256:" + "2" * 64
    assert api["test_image"] == {"reference": f"{REPO}:000000000000-test", "image_id": "sha256:" + "3" * 64}
    proxy = data["images"]["proxy"]
    assert (proxy["digest"], proxy["pinned"], proxy["test_image"]) == (None, None, None)


def test_image_references():
    api = sample().images["api"]
    assert api.reference == f"{REPO}:000000000000"
    assert api.pinned == f"{REPO}@sha256:" + "2" * 64


def test_with_image_replaces_one_entry_only():
    updated = sample().with_image("proxy", ImageArtifact("r", "t", "sha256:x", "sha256:y"))
    assert updated.images["proxy"].digest == "sha256:y"
    assert updated.images["api"] == sample().images["api"]
    assert sample().images["proxy"].digest is None  # the original is untouched


def test_missing_file_tells_to_build_first(tmp_path):
    with pytest.raises(UsageError) as info:
        read_artifacts(tmp_path / "nope.json")
    assert "deployctl build" in info.value.hint


@pytest.mark.parametrize("text, message", [
    ("not json", "not a deployctl artifacts file"),
    ("[]", "expected a JSON object"),
    ('{"format": 99}', "format 99 is not supported"),
    ('{"format": 1, "app": "shop"}', "images is missing"),
    ('{"format": 1, "app": "shop", "revision": null, "dirty": false, "tag": "t", "created": "c",'
     ' "images": {"api": {"repository": "r", "tag": "t"}}}', "api.image_id is missing"),
    ('{"format": 1, "app": 3, "revision": null, "dirty": false, "tag": "t", "created": "c", "images": {}}',
     "app has the wrong type"),
])
def test_bad_files_are_config_errors(tmp_path, text, message):
    path = tmp_path / "build.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        read_artifacts(path)
    assert info.value.exit_code == ExitCode.CONFIG


def test_other_apps_file_is_refused(tmp_path):
    path = tmp_path / "build.json"
    write_artifacts(path, sample())
    with pytest.raises(ConfigError, match="built for app 'shop'"):
        read_artifacts(path, app="other")
