"""A secret inside a service's env value (`{{ secret.NAME }}`) reaches the container, and
nothing else: not the argv of any `docker` process deployctl starts, not its output on a
terminal, in plain lines or in --json, not releases.jsonl, `config --json` or `--dry-run`.

The CLI runs in-process with LocalConnector.run observed (not replaced), so every argv is
seen; the terminal rendering runs as a subprocess under `script`, which gives it a tty.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from deployctl.adapters.local import LocalConnector
from deployctl.cli.main import main
from tests.integration.deploy_fixtures import (DEPLOYCTL, docker, free_port, probe_config,
                                               remove_app, unique_app, write_probe_artifacts)

pytestmark = pytest.mark.integration
VALUE = "dsn-Pa55-value-9f3c"
FILE_SECRET = "probe-password-value"



def test_an_env_secret_reaches_the_container_and_nothing_else(tmp_path, probe_images, capsys, monkeypatch):
    app, port = unique_app(), free_port()
    config = probe_config(tmp_path, app, port=port)
    config.write_text(config.read_text().replace(
        "[services.backend.healthcheck]",
        '[services.backend.env]\nPROBE_DSN = "mysql://probe:{{ secret.PROBE_DSN_PASSWORD }}@db:3306/x"\n'
        "[services.backend.healthcheck]"))
    monkeypatch.setenv("PROBE_DSN_PASSWORD", VALUE)
    monkeypatch.setenv("PROBE_DB_PASSWORD", FILE_SECRET)
    argvs: list[list[str]] = []
    original = LocalConnector.run

    def recording(conn, argv, **kwargs):  # type: ignore[no-untyped-def]
        argvs.append(list(argv))
        return original(conn, argv, **kwargs)

    monkeypatch.setattr(LocalConnector, "run", recording)
    outputs = []

    def cli(*args: str) -> str:
        capsys.readouterr()
        code = main(["--config", str(config), *args])
        out, err = capsys.readouterr()
        outputs.append(out + err)
        assert code == 0, out + err
        return out

    try:
        write_probe_artifacts(config, app, "1111111aaaa", probe_images.good, probe_images.good, probe_images.proxy)
        cli("deploy", "--env", "local", "--dry-run")
        cli("--json", "deploy", "--env", "local", "--dry-run")
        release = json.loads(cli("--json", "deploy", "--env", "local").strip().splitlines()[-1])["release"]
        write_probe_artifacts(config, app, "2222222bbbb", probe_images.good, probe_images.good, probe_images.proxy)
        cli("deploy", "--env", "local")  # plain lines (no tty here)
        shown = json.loads(cli("--json", "config", "--env", "local"))
        assert shown["services"]["backend"]["env"]["PROBE_DSN"] == \
            "mysql://probe:{{ secret.PROBE_DSN_PASSWORD }}@db:3306/x"
        cli("--json", "releases", "--env", "local")
        cli("status", "--env", "local")
        cli("rollback", "--env", "local")
        # On a terminal: Rich's live rendering (script gives the CLI a pseudo-terminal).
        write_probe_artifacts(config, app, "3333333cccc", probe_images.good, probe_images.good, probe_images.proxy)
        tty = subprocess.run(["script", "-qec", f"{DEPLOYCTL} --config {config} deploy --env local", "/dev/null"],
                             capture_output=True, text=True, timeout=300,
                             env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"})
        assert tty.returncode == 0, tty.stdout[-2000:]
        assert "\x1b[" in tty.stdout  # it really rendered for a terminal
        outputs.append(tty.stdout + tty.stderr)

        container = f"{app}-local-backend-{release}"
        # In the container's environment (docker inspect on the host shows it: docs say when
        # to prefer a file secret).
        env = json.loads(docker("inspect", "--format", "{{json .Config.Env}}", container))
        assert f"PROBE_DSN=mysql://probe:{VALUE}@db:3306/x" in env
        # The rendered env files left the disk once their containers existed (each release's,
        # and the rollback to the first one started its kept containers without it); the
        # engine keeps the env in the container's config, across a restart too.
        secrets_dir = tmp_path / "state" / app / "local" / "secrets"
        assert list(secrets_dir.glob("*/*.env")) == []
        assert (secrets_dir / release / "backend").is_dir()  # the mounted secret files stay (live)
        docker("restart", "--time", "1", container)
        assert f"PROBE_DSN=mysql://probe:{VALUE}@db:3306/x" in json.loads(
            docker("inspect", "--format", "{{json .Config.Env}}", container))
        history = (tmp_path / "state" / app / "local" / "releases.jsonl").read_text()
        for secret in (VALUE, FILE_SECRET):
            assert not [argv for argv in argvs if any(secret in arg for arg in argv)]
            assert not [out for out in outputs if secret in out]
            assert secret not in history
        assert any("--env-file" in argv for argv in argvs)
    finally:
        remove_app(app)


def test_logs_in_a_fresh_process_masks_what_a_container_echoes(tmp_path, probe_images, capsys, monkeypatch):
    """`deployctl logs` as its own process (so only what it loads itself can mask): a request
    carrying the secret's value lands in the routed container's access log, and `logs` shows
    it masked in plain lines and in --json."""
    import urllib.error
    import urllib.request

    app, port, planted = unique_app(), free_port(), f"logs-secret-{os.getpid()}-7d1e"
    config = probe_config(tmp_path, app, port=port)
    monkeypatch.setenv("PROBE_DB_PASSWORD", planted)
    try:
        write_probe_artifacts(config, app, "1111111aaaa", probe_images.good, probe_images.good, probe_images.proxy)
        assert main(["--config", str(config), "deploy", "--env", "local"]) == 0, capsys.readouterr()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/echo?token={planted}", timeout=10)
        except urllib.error.HTTPError as exc:
            assert exc.code == 404  # the probe's answer: the request reached the frontend's log
        env = {**os.environ, "PROBE_DB_PASSWORD": planted}
        for flags in ([], ["--json"]):
            shown = subprocess.run([DEPLOYCTL, "--config", str(config), *flags, "logs", "--env", "local",
                                    "--service", "frontend"], capture_output=True, text=True, timeout=120, env=env)
            assert shown.returncode == 0, shown.stderr
            assert "/echo?token=***" in shown.stdout and planted not in shown.stdout + shown.stderr
        env.pop("PROBE_DB_PASSWORD")
        unmasked = subprocess.run([DEPLOYCTL, "--config", str(config), "logs", "--env", "local", "--service", "frontend"],
                                  capture_output=True, text=True, timeout=120, env=env)
        assert "warning: secret 'PROBE_DB_PASSWORD' is not in this shell's secret source" in unmasked.stderr
    finally:
        remove_app(app)
