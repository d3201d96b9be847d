"""`deployctl init` through the CLI (in-process): files written, refusal to overwrite, the
Dockerfile-only path, and the bootcamp example (examples/bootcamp-users) giving the
deploy.toml its deploy test expects."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from deployctl.cli.main import main
from deployctl.config.load import load_config, parse_config
from deployctl.errors import ExitCode
from deployctl.plan.init.init_dockerfiles import parse_dockerfile, plan_from_dockerfiles
from deployctl.plan.init.init_render import render

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bootcamp-users"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def example(tmp_path) -> Path:
    """A copy of the example, so its tree stays as a bootcamp hands it out."""
    target = tmp_path / "bootcamp-users"
    shutil.copytree(EXAMPLE, target)
    return target


def test_init_on_the_example_writes_the_expected_deploy_toml(capsys, example):
    code, out, err = run(capsys, "init", str(example))
    assert code == 0, err
    config = load_config(example / "deploy.toml").config
    assert config.app == "bootcamp-users"
    assert set(config.services) == {"frontend", "backend"}
    front, back = config.services["frontend"], config.services["backend"]
    assert (front.routed, front.port, front.context) == (True, 5000, "frontend")
    assert (back.routed, back.port, back.context) == (False, 5001, "backend")
    assert back.env["DATABASE_URI"] == "mysql+pymysql://root:{{ secret.DB_PASSWORD }}@db:3306/users"
    assert front.env["BACKEND_URL"] == "http://backend:5001"
    db = config.accessories["db"]
    assert db.image == "mysql:5.7"
    assert db.volumes == ["db-data:/var/lib/mysql"]
    assert db.files == ["db/init.sql:/docker-entrypoint-initdb.d/init.sql"]
    assert db.env["MYSQL_ROOT_PASSWORD"] == "{{ secret.DB_PASSWORD }}"
    assert config.environments["local"].accessories == ["db"]
    assert config.proxy.context is None
    assert "Wrote" in out and "no health path known" in out and "export DB_PASSWORD=..." in out


def test_init_on_the_nginx_variant_replaces_the_proxy(capsys, example):
    code, out, err = run(capsys, "init", str(example), "--compose", str(example / "docker-compose.nginx.yml"),
                         "--stdout")
    assert code == 0, err
    config = parse_config(out)
    assert set(config.services) == {"frontend", "backend"} and config.routed_service == "frontend"
    assert "nginx" not in config.accessories and config.proxy.context is None
    assert "replacing nginx" in err
    assert not (example / "deploy.toml").exists()


def test_never_overwrites_without_force(capsys, example):
    (example / "deploy.toml").write_text("# mine\n")
    code, out, err = run(capsys, "init", str(example))
    assert code == ExitCode.CONFIG
    assert "already exists; not overwritten" in err and "--force" in err
    assert (example / "deploy.toml").read_text() == "# mine\n"
    code, _, err = run(capsys, "init", str(example), "--force")
    assert code == 0, err
    assert load_config(example / "deploy.toml").config.app == "bootcamp-users"


def test_stdout_and_dry_run_write_nothing(capsys, example):
    for flag in ("--stdout", "--dry-run"):
        code, out, err = run(capsys, "init", str(example), flag)
        assert code == 0, err
        assert out.startswith("# deploy.toml for bootcamp-users") and "Would write" in err
        assert not (example / "deploy.toml").exists()


def test_output_elsewhere_keeps_paths_relative_to_it(capsys, example, tmp_path):
    target = tmp_path / "deploy" / "app.toml"
    code, _, err = run(capsys, "init", str(example), "--output", str(target), "--app", "users")
    assert code == 0, err
    config = load_config(target).config
    assert config.app == "users"
    assert config.services["frontend"].context == "../bootcamp-users/frontend"
    assert config.accessories["db"].files == ["../bootcamp-users/db/init.sql:/docker-entrypoint-initdb.d/init.sql"]


def test_json_output(capsys, example):
    code, out, _ = run(capsys, "--json", "init", str(example), "--stdout")
    assert code == 0
    data = json.loads(out)
    assert data["routed"] == "frontend" and data["accessories"] == ["db"] and data["secrets"] == ["DB_PASSWORD"]
    assert parse_config(data["text"]).app == "bootcamp-users"


def test_dockerfile_only_project(capsys, tmp_path):
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "Dockerfile").write_text("FROM python:3.12-slim\n")
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "Dockerfile").write_text("FROM python:3.12-slim AS base\nEXPOSE 3000/tcp\nFROM base\nCMD x\n")
    (tmp_path / "node_modules" / "x").mkdir(parents=True)
    (tmp_path / "node_modules" / "x" / "Dockerfile").write_text("FROM scratch\n")
    code, out, err = run(capsys, "init", str(tmp_path), "--app", "shop")
    assert code == 0, err
    config = load_config(tmp_path / "deploy.toml").config
    assert set(config.services) == {"api", "web"}
    assert config.routed_service == "web" and config.services["web"].port == 3000  # EXPOSE, inherited
    assert config.services["api"].port == 8000 and "no EXPOSE" in out
    assert config.services["api"].healthcheck.kind == "tcp"


def test_nothing_to_deploy_is_a_config_error(capsys, tmp_path):
    code, _, err = run(capsys, "init", str(tmp_path))
    assert code == ExitCode.CONFIG and "no docker-compose file and no Dockerfile" in err


def test_single_dockerfile_at_the_root_is_the_routed_service():
    found = {".": parse_dockerfile("FROM python:3.12\nHEALTHCHECK CMD curl -f http://localhost/\n")}
    p = plan_from_dockerfiles(found, app="solo", port_is_free=lambda port: False)
    config = parse_config(render(p))
    assert config.routed_service == "solo" and config.services["solo"].context == "."
    assert config.services["solo"].healthcheck.kind == "docker"
    assert config.environments["local"].proxy_port == 0  # 8080 busy: any free port, said so
    assert any("8080 is in use" in n.message for n in p.notes)


def test_parse_dockerfile_stages_args_and_continuations():
    info = parse_dockerfile(
        "# syntax=docker/dockerfile:1\nARG PY=3.12\nFROM python:${PY}-slim AS runtime\n"
        "EXPOSE 8000 \\\n  9000\nCOPY --chown=app app.py conf/ /app/\n"
        "FROM runtime AS test\nCOPY --from=runtime /x /y\nHEALTHCHECK NONE\n")
    assert [s.name for s in info.stages] == ["runtime", "test"]
    assert info.base_image() == "python:3.12-slim" and info.base_image("runtime") == "python:3.12-slim"
    assert info.exposes() == [8000, 9000]
    assert info.copies("runtime") == ["app.py", "conf/"]
    assert info.healthcheck() is None
    assert parse_dockerfile("ARG B=nginx\nFROM $B\n", {"B": "caddy:2"}).base_image() == "caddy:2"
