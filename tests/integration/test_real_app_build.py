"""The project's own deploy.toml: build the real app images on the stand-ins, then run the
real suites inside their test images against the machine's MariaDB."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from deployctl.cli.main import main
from deployctl.errors import ExitCode

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def cli(capsys, *args: str) -> tuple[int, list[dict]]:
    code = main(["--json", "--config", str(REPO / "deploy.toml"), *args])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return code, lines


def test_real_images_build_and_their_suites_pass_inside_them(capsys, tmp_path, docker_client, standin_images,
                                                             mariadb, monkeypatch):
    tag = f"itest-{uuid.uuid4().hex[:8]}"  # our own tag: other work on this engine is left alone
    artifacts = tmp_path / "build.json"
    code, lines = cli(capsys, "build", "--tag", tag, "--artifacts", str(artifacts),
                      "--build-arg", f"BASE_IMAGE={standin_images['python']}",
                      "--build-arg", f"proxy:BASE_IMAGE={standin_images['nginx']}")
    built = json.loads(artifacts.read_text()) if artifacts.exists() else {}
    try:
        assert code == ExitCode.OK, lines[-3:]
        assert list(built["images"]) == ["backend", "frontend", "proxy"]
        for name in ("backend", "frontend"):
            assert built["images"][name]["test_image"]["reference"].endswith(f":{tag}-test")
        backend = docker_client.images.get(f"{built['images']['backend']['repository']}:{tag}")
        assert backend.labels["io.deployctl.app"] == "usersapp"
        assert backend.attrs["Config"]["User"] == "app"  # the runtime stage, not the test stage

        monkeypatch.setenv("TEST_DATABASE_PASSWORD", mariadb.password)
        code, lines = cli(capsys, "test", "--artifacts", str(artifacts), "--reports", str(tmp_path / "reports"),
                          "--db-host", mariadb.host, "--db-port", str(mariadb.port), "--db-user", mariadb.user)
        result = next(line for line in lines if line["event"] == "result")
        assert code == ExitCode.OK, [s["problems"] for s in result["suites"]]
        for suite in result["suites"]:
            assert suite["passed"] > 10 and suite["failed"] == 0
            assert suite["coverage"] >= suite["coverage_floor"] > 0
            reports = tmp_path / "reports" / suite["service"]
            assert ET.parse(reports / "junit.xml").getroot().tag == "testsuites"
            assert ET.parse(reports / "coverage.xml").getroot().tag == "coverage"
            assert (reports / "htmlcov" / "index.html").is_file()
    finally:
        for image in built.get("images", {}).values():
            for reference in (f"{image['repository']}:{image['tag']}", (image.get("test_image") or {}).get("reference")):
                if reference:
                    try:
                        docker_client.images.remove(reference, noprune=True)
                    except Exception:  # noqa: BLE001 - best-effort cleanup
                        pass
