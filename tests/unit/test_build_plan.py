"""Tags from git state, labels, build args and the per-image build plan: data in, data out."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.config.load import LoadedConfig, parse_config
from deployctl.errors import UsageError
from deployctl.plan.pipeline.build import BuildArg, GitState, check_tag, fingerprint_changes, image_tag, oci_labels, parse_build_arg, plan_builds, select_images

REV = "0123456789abcdef0123456789abcdef01234567"

CONFIG = """
app = "shop"
[registry]
server = "127.0.0.1:5000"
namespace = "team"
[services.api]
context = "api"
target = "runtime"
test_target = "test"
build_args = { BASE_IMAGE = "python:3.12-slim", PIP_INDEX = "from-config" }
[services.web]
context = "web"
routed = true
[services.worker]
context = "worker"
test_target = ""
[proxy]
context = "proxy"
[environments.local]
target = "local"
"""


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedConfig:
    return LoadedConfig(tmp_path / "deploy.toml", parse_config(CONFIG))


def test_clean_tree_tag_is_the_12_character_revision():
    assert image_tag(GitState(REV, 0)) == "0123456789ab"


def test_dirty_tree_tag_carries_a_hash_of_the_changes():
    dirty = fingerprint_changes(b"diff --git a/x b/x\n+1\n", [])
    assert image_tag(GitState(REV, 0, dirty)) == f"0123456789ab-dirty-{dirty[:10]}"


def test_no_changes_means_clean():
    assert fingerprint_changes(b"", []) is None


@pytest.mark.parametrize("a, b", [
    ((b"+1", []), (b"+2", [])),                                   # different edits
    ((b"", [("new.txt", b"x")]), (b"", [("new.txt", b"y")])),    # different untracked content
    ((b"", [("a.txt", b"x")]), (b"", [("b.txt", b"x")])),        # same content, other name
    ((b"+1", []), (b"+1", [("new.txt", b"")])),                 # an empty new file counts
    ((b"", [("ab", b"c")]), (b"", [("a", b"bc")])),             # no ambiguity at boundaries
])
def test_different_dirty_trees_never_share_a_tag(a, b):
    tag_a = image_tag(GitState(REV, 0, fingerprint_changes(*a)))
    tag_b = image_tag(GitState(REV, 0, fingerprint_changes(*b)))
    assert tag_a != tag_b


def test_untracked_order_does_not_matter():
    files = [("a", b"1"), ("b", b"2")]
    assert fingerprint_changes(b"", files) == fingerprint_changes(b"", files[::-1])


@pytest.mark.parametrize("tag", ["v1.2.3", "0123456789ab", "release_7", "a" * 123])
def test_valid_tags(tag):
    assert check_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", "-x", ".x", "a/b", "a:b", "a b", "a" * 124])
def test_invalid_tags_are_usage_errors(tag):
    with pytest.raises(UsageError, match="not a valid image tag"):
        check_tag(tag)


def test_oci_labels():
    labels = oci_labels("shop", "api", version="0123456789ab", revision=REV, created="2026-01-01T00:00:00Z",
                        source="https://git.example/shop.git")
    assert labels == {
        "org.opencontainers.image.version": "0123456789ab",
        "org.opencontainers.image.created": "2026-01-01T00:00:00Z",
        "org.opencontainers.image.revision": REV,
        "org.opencontainers.image.source": "https://git.example/shop.git",
        "org.opencontainers.image.title": "shop-api",
        "io.deployctl.app": "shop",
        "io.deployctl.service": "api",
    }


def test_labels_without_git_omit_revision_and_source():
    labels = oci_labels("shop", "api", version="v1", revision=None, created="x", source=None)
    assert "org.opencontainers.image.revision" not in labels and "org.opencontainers.image.source" not in labels


@pytest.mark.parametrize("text, parsed", [
    ("BASE_IMAGE=deployctl-standin/python:3.11-bookworm",
     BuildArg("BASE_IMAGE", "deployctl-standin/python:3.11-bookworm")),
    ("proxy:BASE_IMAGE=deployctl-standin/nginx:bookworm",
     BuildArg("BASE_IMAGE", "deployctl-standin/nginx:bookworm", "proxy")),
    ("EMPTY=", BuildArg("EMPTY", "")),
    ("X=a=b", BuildArg("X", "a=b")),
])
def test_parse_build_arg(text, parsed):
    assert parse_build_arg(text) == parsed


@pytest.mark.parametrize("text", ["NOVALUE", "=x", ":K=v", "1BAD=x", "api:bad key=x"])
def test_bad_build_args(text):
    with pytest.raises(UsageError):
        parse_build_arg(text)


def test_select_images_keeps_config_order_and_suggests(loaded):
    assert select_images(loaded, []) == ["api", "web", "worker", "proxy"]
    assert select_images(loaded, ["proxy", "api"]) == ["api", "proxy"]
    with pytest.raises(UsageError, match="did you mean 'web'"):
        select_images(loaded, ["wbe"])


def test_plan_builds(loaded):
    git = GitState(REV, 0, None, "https://git.example/shop.git")
    plans = plan_builds(
        loaded, ["api", "web", "worker", "proxy"], tag="0123456789ab", git=git, created="2026-01-01T00:00:00Z",
        build_args=[parse_build_arg("BASE_IMAGE=standin/python"), parse_build_arg("proxy:BASE_IMAGE=standin/nginx"),
                    parse_build_arg("api:PIP_INDEX=from-cli")],
    )
    api, web, worker, proxy = plans
    assert api.reference == "127.0.0.1:5000/team/api:0123456789ab"
    assert api.test_reference == "127.0.0.1:5000/team/api:0123456789ab-test"
    assert (api.target, api.test_target) == ("runtime", "test")
    # deploy.toml, then --build-arg for all, then the image's own --build-arg
    assert api.build_args == {"BASE_IMAGE": "standin/python", "PIP_INDEX": "from-cli"}
    assert api.context == (loaded.root / "api").resolve()
    assert api.labels["io.deployctl.service"] == "api"
    assert api.labels["org.opencontainers.image.revision"] == REV
    # New defaults: no target means the Dockerfile's last stage ships; no test_target, no test image.
    assert (web.target, web.test_target, web.test_reference) == (None, None, None)
    assert (worker.target, worker.test_target) == (None, None)  # "" in deploy.toml means none too
    assert proxy.build_args == {"BASE_IMAGE": "standin/nginx"}
    assert (proxy.target, proxy.test_target, proxy.test_reference) == (None, None, None)


def test_plan_without_test_images(loaded):
    (api,) = plan_builds(loaded, ["api"], tag="t", git=None, created="x", test_images=False)
    assert api.test_target is None and api.test_reference is None
    assert "org.opencontainers.image.revision" not in api.labels


def test_build_arg_for_unknown_image(loaded):
    with pytest.raises(UsageError, match="no image named 'db'"):
        plan_builds(loaded, ["api"], tag="t", git=None, created="x", build_args=[parse_build_arg("db:X=1")])
