"""Accessories as any containerised app needs them (issue 11), on this machine's engine:
an accessory built from the project (`build`), an init SQL file mounted from the project
(`files`), a `{{ secret.NAME }}` env value that reaches the container only through a 0600
env file, and the accessory reached on the app network by its bare deploy.toml name.

The CLI runs in-process; LocalConnector.run is wrapped (observed, not replaced) so the test
sees the argv of every `docker` process deployctl starts.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from deployctl.adapters.local import LocalConnector
from deployctl.cli.main import main
from deployctl.errors import ExitCode
from tests.integration.deploy_fixtures import docker, remove_app_with_data, unique_app

pytestmark = pytest.mark.integration
ROOT_PASSWORD = "acc-r00t-Sekr3t-value"
QUICK_STOP = "import signal, time; signal.signal(signal.SIGTERM, lambda *a: exit(0)); time.sleep(600)"


def write_project(root: Path, app: str, standin: dict, *, db_marker: str = "one") -> Path:
    (root / "db").mkdir(parents=True, exist_ok=True)
    (root / "db" / "Dockerfile").write_text(f"FROM {standin['mariadb']}\nCOPY marker /marker\n")
    (root / "db" / "marker").write_text(db_marker + "\n")
    (root / "db" / "init.sql").write_text("CREATE TABLE probe (id INT);\nINSERT INTO probe VALUES (42);\n")
    (root / "web").mkdir(exist_ok=True)
    (root / "web" / "Dockerfile").write_text(f"FROM {standin['python']}\nCOPY app.py /app.py\n"
                                             'CMD ["python3", "/app.py"]\n')
    (root / "web" / "app.py").write_text("print('web')\n")
    # The project's own proxy image: the dry run of the built-in one (no context) has no
    # "proxy" in the release's images yet (KeyError in plan/lifecycle/dry_run.py; reported to the lead).
    (root / "proxy").mkdir(exist_ok=True)
    (root / "proxy" / "Dockerfile").write_text(f"FROM {standin['nginx']}\n")
    (root / "conf").mkdir(exist_ok=True)
    (root / "conf" / "a.txt").write_text("first\n")
    config = root / "deploy.toml"
    config.write_text(textwrap.dedent(f"""
        app = "{app}"
        [services.web]
        context = "web"
        routed = true
        [proxy]
        context = "proxy"
        [accessories.db]
        build = "db"
        files = ["db/init.sql:/docker-entrypoint-initdb.d/init.sql"]
        volumes = ["data:/var/lib/mysql"]
        port = 3306
        [accessories.db.env]
        MYSQL_ROOT_PASSWORD = "{{{{ secret.ACC_ROOT_PASSWORD }}}}"
        MYSQL_DATABASE = "shop"
        [accessories.db.healthcheck]
        command = ["healthcheck.sh", "--connect"]
        interval = 0.5
        timeout = 120
        [accessories.cache]
        image = "{standin['python']}"
        # Exits on SIGTERM at once (a bare `sleep` would make every stop wait the 30 s timeout).
        command = ["python3", "-c", "{QUICK_STOP}"]
        files = ["conf/a.txt:/etc/a.txt"]
        [environments.local]
        target = "local"
        state_dir = "{root / 'state'}"
        accessories = ["db"]
        [environments.local.rollout]
        guard_window = 0
        """))
    return config


class Cli:
    """deployctl in-process, plain or --json, recording every argv LocalConnector runs."""

    def __init__(self, config: Path, capsys, monkeypatch) -> None:
        self.config, self.capsys = config, capsys
        self.argvs: list[list[str]] = []
        self.outputs: list[str] = []
        original = LocalConnector.run
        argvs = self.argvs

        def recording(conn, argv, **kwargs):  # type: ignore[no-untyped-def]
            argvs.append(list(argv))
            return original(conn, argv, **kwargs)

        monkeypatch.setattr(LocalConnector, "run", recording)

    def __call__(self, *args: str, json_mode: bool = False) -> tuple[int, str]:
        self.capsys.readouterr()
        code = main([*(["--json"] if json_mode else []), "--config", str(self.config), *args])
        out, err = self.capsys.readouterr()
        self.outputs.append(out + err)
        return code, out + err

    def result(self, *args: str) -> dict:
        code, out = self(*args, json_mode=True)
        assert code == 0, out
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return next(line for line in lines if line.get("event") == "result")


@pytest.fixture
def project(tmp_path, standin_images, capsys, monkeypatch):
    app = unique_app()
    config = write_project(tmp_path, app, standin_images)
    monkeypatch.setenv("ACC_ROOT_PASSWORD", ROOT_PASSWORD)
    yield app, config, Cli(config, capsys, monkeypatch)
    remove_app_with_data(app)


def test_built_accessory_with_init_file_and_env_secret_reached_by_its_name(project, tmp_path):
    app, config, cli = project
    container, network = f"{app}-local-db", f"{app}-local"

    # Refusals before anything changes: no artifacts yet, then a missing init file.
    code, out = cli("accessory", "boot", "db")
    assert code == ExitCode.CONFIG, out
    assert "accessories.db.build" in out and "deployctl build" in out
    (tmp_path / "db" / "init.sql").rename(tmp_path / "init.sql.away")
    code, out = cli("accessory", "boot", "db")
    assert code == ExitCode.CONFIG, out
    assert "accessories.db.files[0]: db/init.sql: no such file" in out
    assert docker("ps", "-aq", "--filter", f"name={container}") == ""
    (tmp_path / "init.sql.away").rename(tmp_path / "db" / "init.sql")

    # `deployctl build` builds the accessory beside the service, recorded under its name.
    built = cli.result("build", "--tag", "acc1")
    artifacts = json.loads((tmp_path / ".deployctl" / "build.json").read_text())
    assert set(artifacts["images"]) == {"web", "proxy", "db"}, built
    db_image = artifacts["images"]["db"]["image_id"]
    assert artifacts["images"]["db"]["repository"] == f"{app}/db"

    code, out = cli("accessory", "boot", "db")
    assert code == 0, out
    # It runs the built image (by id, as services do on the local target) ...
    assert docker("inspect", "--format", "{{.Image}}", container) == db_image
    assert docker("exec", container, "cat", "/marker") == "one"
    # ... the init file created its table on first boot, mounted read-only, 0644 on the host ...
    assert docker("exec", container, "mariadb", "-uroot", "shop", "-N", "-e", "SELECT id FROM probe") == "42"
    mounts = json.loads(docker("inspect", container))[0]["Mounts"]
    assert [m["RW"] for m in mounts if m["Destination"] == "/docker-entrypoint-initdb.d/init.sql"] == [False]
    state = tmp_path / "state" / app / "local" / "accessories" / "db"
    assert oct((state / "files" / "docker-entrypoint-initdb.d" / "init.sql").stat().st_mode & 0o777) == "0o644"
    # ... the secret env value came from a 0600 env file ...
    assert oct((state / "env").stat().st_mode & 0o777) == "0o600"
    assert (state / "env").read_text() == f"MYSQL_ROOT_PASSWORD={ROOT_PASSWORD}\n"
    # ... and another container on the app network reaches it as `db`, where the password works.
    login = ["run", "--rm", "--network", network, "--entrypoint", "mariadb", db_image, "-h", "db", "-uroot"]
    assert docker(*login, f"-p{ROOT_PASSWORD}", "-N", "-e", "SELECT COUNT(*) FROM shop.probe") == "1"
    assert docker(*login, "-pwrong-password", "-e", "SELECT 1", check=False) == ""

    # A rebuilt image is not used by a running accessory: a warning, never a recreate.
    started = docker("inspect", "--format", "{{.Id}}", container)
    (tmp_path / "db" / "marker").write_text("two\n")
    cli.result("build", "--tag", "acc2", "--service", "db")
    code, out = cli("accessory", "boot", "db")
    assert code == 0, out
    assert "a rebuilt accessory image is used only when the accessory is next booted" in out
    assert docker("inspect", "--format", "{{.Id}}", container) == started
    assert "no alias" not in out and "without its network alias" not in out

    # Everything deployctl shows, in every mode, has no secret value in it.
    status = cli.result("accessory", "status", "db")
    assert status["accessories"][0]["aliases"][0] == "db"
    cli("accessory", "status")
    cli("accessory", "boot", "db", json_mode=True)
    code, shown = cli("config", json_mode=True)  # one JSON document, not event lines
    resolved = json.loads(shown)["accessories"]["db"]
    assert code == 0 and resolved["env"]["MYSQL_ROOT_PASSWORD"] == "{{ secret.ACC_ROOT_PASSWORD }}"
    assert (resolved["image"], resolved["build"]) == (f"{app}/db", str(tmp_path / "db"))
    cli("config")
    (tmp_path / "db" / "marker").write_text("one\n")  # the dry run needs every image of the tag in the file
    cli.result("build", "--tag", "acc3")
    dry = cli.result("deploy", "--dry-run")
    dry_steps = json.dumps(dry)
    assert "--env-file" in dry_steps and "--network-alias" in dry_steps
    cli("deploy", "--dry-run")
    for output in cli.outputs:
        assert ROOT_PASSWORD not in output
    runs = [argv for argv in cli.argvs if argv[:2] == ["docker", "run"]]
    assert runs and all("--env-file" in argv and ["--network-alias", "db"] == argv[7:9] for argv in runs)
    assert cli.argvs and not any(ROOT_PASSWORD in arg for argv in cli.argvs for arg in argv)


def test_existing_accessory_without_alias_is_kept_and_a_changed_file_is_used_from_its_next_start(project, tmp_path,
                                                                                               standin_images):
    app, config, cli = project
    container, network = f"{app}-local-cache", f"{app}-local"
    # An accessory booted by an older deployctl: on the app network, no alias.
    docker("network", "create", "--label", f"io.deployctl.app={app}", network)
    docker("run", "-d", "--name", container, "--network", network, "--label", f"io.deployctl.app={app}",
           standin_images["python"], "python3", "-c", QUICK_STOP)
    before = docker("inspect", "--format", "{{.Id}}", container)
    code, out = cli("accessory", "boot", "cache")
    assert code == 0, out
    assert "booted without its network alias" in out and "accessory remove cache" in out
    assert docker("inspect", "--format", "{{.Id}}", container) == before  # never recreated
    assert "(no alias 'cache' yet" in cli("accessory", "status", "cache")[1]

    # Booted anew it has the alias: the app's containers reach it as `cache`.
    assert cli("accessory", "remove", "cache")[0] == 0
    code, out = cli("accessory", "boot", "cache")
    assert code == 0, out
    resolve = ["run", "--rm", "--network", network, standin_images["python"], "python3", "-c",
               "import socket; print(socket.gethostbyname('cache'))"]
    address = docker("inspect", "--format", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
                     container)
    assert docker(*resolve) == address
    assert docker("exec", container, "cat", "/etc/a.txt") == "first"

    # A changed file: uploaded, a warning, the running container keeps the old one ...
    (tmp_path / "conf" / "a.txt").write_text("second\n")
    code, out = cli("accessory", "boot", "cache")
    assert code == 0, out
    assert "changed; the new file is uploaded" in out
    assert docker("exec", container, "cat", "/etc/a.txt") == "first"
    # ... until it starts again, as the warning says.
    assert cli("accessory", "stop", "cache")[0] == 0
    assert cli("accessory", "boot", "cache")[0] == 0
    assert docker("exec", container, "cat", "/etc/a.txt") == "second"
