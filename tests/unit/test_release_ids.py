"""Identifiers read from outside are whole-string matches, and a release id is checked where it
is read (build.json, a host's history and `current`, `--to`) before it becomes a name or a path.

Security review: `$` let "web\\n" through; a build.json revision of `/../../` made a release
id whose secrets directory was the environment's state root, which prune removes with rm -rf.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

import pytest

import deployctl
from deployctl.artifacts import read_artifacts
from deployctl.cli.main import main
from deployctl.config import parse_config
from deployctl.errors import ConfigError, ExitCode, UncertainError
from deployctl.plan.judging.canary import CanaryRecord
from deployctl.plan.lifecycle.names import StateLayout
from deployctl.plan.edge.proxy_config import canary_of, live_release, standby_of
from deployctl.plan.lifecycle import releases
from deployctl.plan.lifecycle.releases import History, ReleaseRecord, new_release_id
from deployctl.plan.lifecycle.warm import parse_warm
from deployctl.services.lifecycle.host_state import HostState

REPO = Path(__file__).resolve().parents[2]
GOOD = "20261127-101500-abc1234"

MINIMAL = """
app = "shop"

[services.web]
context = "web"
routed = true

[environments.local]
target = "local"
"""


def _module_patterns():
    for info in pkgutil.walk_packages(deployctl.__path__, "deployctl."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern):
                yield f"{info.name}.{name}", value


def test_no_pattern_in_deployctl_anchors_with_dollar():
    """`$` also matches before a trailing newline: "web\\n" passed NAME_RE. Line parsers
    (re.M) are the only place it means what it says."""
    offenders = [where for where, pattern in _module_patterns()
                 if not pattern.flags & re.M and re.search(r"(?<!\\)\$", pattern.pattern)]
    assert offenders == []


def config_problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.problems


@pytest.mark.parametrize("text,path", [
    (MINIMAL.replace("[services.web]", '[services."web\\n"]'), 'services."web\\n"'),
    (MINIMAL + '\n[environments.local.env]\n"FOO\\n" = "1"\n', 'environments.local.env."FOO\\n"'),
    (MINIMAL.replace('app = "shop"', 'app = "shop\\n"'), "app"),
    (MINIMAL.replace('target = "local"', 'target = "ssh"\nhosts = ["h1\\n"]'), "environments.local.hosts[0]"),
    (MINIMAL.replace('target = "local"', 'target = "local"\naws_region = "eu-west-1\\n"'),
     "environments.local.aws_region"),
])
def test_a_trailing_newline_is_not_part_of_a_valid_identifier(text, path):
    assert any(line.startswith(f"deploy.toml: {path}:") for line in config_problems(text)), config_problems(text)


def test_a_release_id_with_a_trailing_newline_or_a_path_is_not_one():
    for bad in (GOOD + "\n", "/../../", f"{GOOD}/../..", "20261127-101500-/../../", "", None, "٢٠٢٦١١٢٧-101500-abc1234"):
        with pytest.raises(releases.BadReleaseId):
            releases.check_release_id(bad, "release")
    assert releases.check_release_id(GOOD, "release") == GOOD and releases.check_release_id(GOOD + "-2", "x") == GOOD + "-2"


def write_build_json(tmp_path: Path, **changes) -> Path:
    data = {"format": 1, "app": "shop", "revision": "a" * 40, "dirty": False, "tag": "aaaaaaaaaaaa",
            "created": "2026-11-27T10:15:00Z",
            "images": {"web": {"repository": "reg:5000/shop/web", "tag": "aaaaaaaaaaaa",
                               "image_id": "sha256:" + "1" * 64, "digest": None, "test_image": None}}}
    for key, value in changes.items():
        if key.startswith("web_"):
            data["images"]["web"][key[4:]] = value
        else:
            data[key] = value
    path = tmp_path / "build.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("change,key", [
    ({"revision": "/../../"}, "revision"),
    ({"revision": "abc1234\n"}, "revision"),
    ({"tag": "../x"}, "tag"),
    ({"web_repository": "--privileged"}, "images.web.repository"),
    ({"web_image_id": "--privileged"}, "images.web.image_id"),
    ({"web_digest": "sha256:x y"}, "images.web.digest"),
])
def test_build_json_fields_that_become_names_or_argv_are_checked(tmp_path, change, key):
    with pytest.raises(ConfigError) as info:
        read_artifacts(write_build_json(tmp_path, **change))
    assert f": {key}: " in info.value.problems[0], info.value.problems


def test_a_sound_build_json_still_reads(tmp_path):
    assert read_artifacts(write_build_json(tmp_path)).revision == "a" * 40
    assert read_artifacts(write_build_json(tmp_path, revision=None)).revision is None


def test_new_release_id_never_makes_an_id_from_a_non_hex_revision():
    with pytest.raises(releases.BadReleaseId):
        new_release_id(0, "/../../")
    assert new_release_id(0, "ABCDEF0123") == "19700101-000000-abcdef0"


def test_the_secrets_path_is_never_built_from_a_bad_release_id():
    layout = StateLayout("/var/lib/deployctl", "shop", "prod")
    assert layout.release_secrets(GOOD) == f"/var/lib/deployctl/shop/prod/secrets/{GOOD}"
    with pytest.raises(releases.BadReleaseId):
        layout.release_secrets("20261127-101500-/../../")


def record(release: str, previous: str | None = None) -> str:
    return ReleaseRecord(release=release, revision=None, images={}, action="deploy", outcome="succeeded",
                         who="me", when="2026-11-27T10:15:00Z", previous=previous).to_line()


def test_a_history_line_with_a_bad_release_id_is_left_out_naming_the_line():
    # Checked where it is read (its ids would become paths and container names), and, as a
    # record of the wrong shape, left out with its line named, never a crash (issue 23, item 8).
    history = History.parse(record(GOOD) + record("../../x"))
    assert history.ids() == {GOOD} and history.skipped == ((2, "release '../../x' is not a release id"),)
    history = History.parse(record(GOOD, previous="a/../.."))
    assert history.ids() == set() and history.skipped == ((1, "previous 'a/../..' is not a release id"),)
    spec_line = record(GOOD).replace('"who"', '"spec": {"release": "../..", "services": []}, "who"')
    assert History.parse(spec_line).ids() == set() and History.parse(spec_line).skipped[0][0] == 1
    assert History.parse(record(GOOD) + '{"relea').ids() == {GOOD}  # a torn line is still skipped


class Files:
    host = "web-1"

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def read_file(self, path: str) -> bytes | None:
        return self.files.get(path)


def test_a_hosts_current_with_a_bad_release_id_stops_with_exit_7_naming_the_file():
    layout = StateLayout("/srv", "shop", "prod")
    state = HostState(Files({layout.current: b"../../..\n", layout.history: record("x/y").encode()}), layout)
    with pytest.raises(UncertainError) as info:
        state.current()
    assert info.value.exit_code == ExitCode.ROLLBACK_FAILED
    assert info.value.message.startswith("web-1: /srv/shop/prod/current: release: '../../..' is not a release id")
    # A history line is left out instead (and said, with emit): the rest of the history serves.
    assert state.history().records == () and state.history().skipped == ((1, "release 'x/y' is not a release id"),)
    good = HostState(Files({layout.current: f"{GOOD}\n".encode()}), layout)
    assert good.current() == GOOD and good.history().records == ()


def test_rollback_to_a_bad_release_id_is_a_usage_error(capsys):
    code = main(["--config", str(REPO / "deploy.toml"), "rollback", "--env", "local", "--to", "../../x", "--dry-run"])
    _, err = capsys.readouterr()
    assert code == ExitCode.USAGE
    assert "--to: '../../x' is not a release id" in err and "Traceback" not in err


def test_state_files_naming_no_release_id_are_ignored():
    assert parse_warm(json.dumps([{"release": "../..", "since": 0, "until": 9}]).encode()) == []
    assert parse_warm(json.dumps([{"release": GOOD, "since": 0, "until": 9}]).encode())[0].release == GOOD
    canary = {"release": "../..", "live": GOOD, "share": 10, "started": 0, "deadline": 1, "watchdog": "w"}
    assert CanaryRecord.parse(json.dumps(canary).encode()) is None
    assert CanaryRecord.parse(json.dumps({**canary, "release": GOOD}).encode()) is not None
    assert live_release("# live: ../..\n") is None and live_release(f"# live: {GOOD}\n") == GOOD
    assert canary_of("# canary: ../.. 10%\n") is None
    assert standby_of("# standby: ../.. 10.0.0.1:80 standby-x\n") is None


class Listing:
    """A connector whose `docker ps` lists deployctl's containers, one with a forged label."""

    host = "web-1"

    def run(self, argv, stdin=None, timeout=None):
        from deployctl.adapters.connector import CommandResult

        return CommandResult(0, f"shop-prod-web-{GOOD}|service|{GOOD}|running\n"
                                "shop-prod-web-x|service|../../..|exited\n", "")


def test_containers_labelled_with_no_release_id_are_no_release_to_prune():
    from deployctl.plan.lifecycle.names import Names
    from deployctl.services.lifecycle.switch import HostSwitch

    switch = HostSwitch(Listing(), Names("shop", "prod"), StateLayout("/srv", "shop", "prod"), lambda e: None)
    assert switch.release_containers() == {GOOD: [f"shop-prod-web-{GOOD}"]}


def test_deploy_version_that_is_no_image_tag_is_a_usage_error(capsys):
    code = main(["--config", str(REPO / "deploy.toml"), "deploy", "--env", "local", "--version", "../../x",
                 "--dry-run"])
    _, err = capsys.readouterr()
    assert code == ExitCode.USAGE
    assert "--version: '../../x' is not an image tag" in err and "Traceback" not in err
