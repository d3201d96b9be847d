"""Accessory `files` stay inside the project on this machine and inside the accessory's files/
folder on the host (security review: `..` and absolute paths read any local file and wrote
outside the state directory, e.g. into ~deploy/.ssh/authorized_keys)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deployctl.config import LoadedConfig, parse_config
from deployctl.errors import ConfigError
from deployctl.plan.data import accessories as acc
from deployctl.plan.lifecycle.names import StateLayout
from deployctl.services.data.accessories import read_files

BASE = """
app = "shop"
[services.web]
context = "web"
routed = true
[accessories.db]
image = "mariadb:11"
files = [FILES]
[environments.local]
target = "local"
state_dir = "/srv/state"
accessories = ["db"]
"""
LAYOUT = StateLayout("/srv/state", "shop", "local")


def with_files(*entries: str) -> str:
    return BASE.replace("FILES", ", ".join(f'"{e}"' for e in entries))


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.problems


@pytest.mark.parametrize("entry,says", [
    ("/etc/passwd:/etc/x.conf", "the local path '/etc/passwd' must be relative to deploy.toml's folder"),
    ("~/.ssh/id_ed25519:/etc/x.conf", "the local path '~/.ssh/id_ed25519' must be relative"),
    ("db/key.pub:/../../../../home/deploy/.ssh/authorized_keys", "the container path"),
    ("db/init.sql:/docker-entrypoint-initdb.d/../../x", "must be an absolute path without '.', '..'"),
    ("db/init.sql:/etc/./x", "must be an absolute path"),
    ("db/init.sql:/etc//x", "must be an absolute path"),
])
def test_file_paths_escaping_the_project_or_the_files_folder_are_refused_at_load(entry, says):
    found = problems(with_files(entry))
    assert any(line.startswith("deploy.toml: accessories.db.files[0]: ") and says in line for line in found), found


def test_sound_file_paths_still_load_and_land_under_the_files_folder():
    config = parse_config(with_files("db/init.sql:/docker-entrypoint-initdb.d/init.sql", "../shared/my.cnf:/etc/my.cnf"))
    spec = acc.accessory_spec(config, "local", "db", LAYOUT, environ={})
    assert [m.host for m in spec.files] == [
        "/srv/state/shop/local/accessories/db/files/docker-entrypoint-initdb.d/init.sql",
        "/srv/state/shop/local/accessories/db/files/etc/my.cnf"]


def test_the_host_path_never_leaves_the_files_folder_even_past_validation():
    with pytest.raises(ValueError, match="leaves the accessory's files folder"):
        acc.file_mounts(LAYOUT, "db", ["db/x:/../../../../home/deploy/.ssh/authorized_keys"])


def loaded_at(project: Path, *entries: str) -> LoadedConfig:
    (project / "deploy.toml").write_text(with_files(*entries))
    return LoadedConfig((project / "deploy.toml").resolve(), parse_config(with_files(*entries)))


def specs(loaded: LoadedConfig):
    return [acc.accessory_spec(loaded.config, "local", "db", LAYOUT, environ={})]


def test_a_relative_path_or_symlink_resolving_outside_the_project_is_not_read(tmp_path):
    project, outside = tmp_path / "project", tmp_path / "home"
    (project / "db").mkdir(parents=True)
    outside.mkdir()
    (outside / "id_ed25519").write_text("PRIVATE")
    (project / "db" / "init.sql").write_text("CREATE TABLE t (id INT);")
    os.symlink(outside / "id_ed25519", project / "db" / "seed.sql")
    loaded = loaded_at(project, "db/init.sql:/docker-entrypoint-initdb.d/init.sql",
                       "db/seed.sql:/docker-entrypoint-initdb.d/seed.sql", "../home/id_ed25519:/etc/key")
    with pytest.raises(ConfigError) as info:
        read_files(loaded, specs(loaded))
    lines = info.value.problems
    assert len(lines) == 2 and all("outside the project" in line for line in lines), lines
    assert lines[0].startswith("accessories.db.files[1]: db/seed.sql: resolves to ")
    assert lines[1].startswith("accessories.db.files[2]: ../home/id_ed25519: resolves to ")
    assert "PRIVATE" not in "\n".join(lines)


def test_files_inside_the_project_are_read_through_symlinks_that_stay_inside(tmp_path):
    project = tmp_path / "project"
    (project / "db").mkdir(parents=True)
    (project / "db" / "init.sql").write_text("CREATE TABLE t (id INT);")
    os.symlink(project / "db" / "init.sql", project / "db" / "alias.sql")
    loaded = loaded_at(project, "db/alias.sql:/docker-entrypoint-initdb.d/init.sql")
    assert list(read_files(loaded, specs(loaded)).values()) == [b"CREATE TABLE t (id INT);"]
