"""The `ssh` target against a real sshd in front of this machine's engine (the `ssh_host`
fixture): host key pinning, images pulled from the registry by digest, files over SFTP,
health checks and the post-switch check through SSH channels, rollback without a registry."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from deployctl.adapters.ssh import SSHConnector, fingerprint
from deployctl.errors import ConnectError, ExitCode
from deployctl.plan.edge.maintenance import verify_headers as maintenance_headers
from tests.integration.deploy_fixtures import docker, free_port, probe_config, remove_app, unique_app, write_probe_artifacts
from tests.integration.test_deploy_local import run_cli

pytestmark = pytest.mark.integration


def connector(ssh_host, known_hosts=None):
    return SSHConnector(ssh_host.host, port=ssh_host.port, user=ssh_host.user, key_file=ssh_host.key_file,
                        known_hosts=known_hosts or ssh_host.known_hosts_file)


def test_connector_runs_argv_unsplit_and_moves_files(ssh_host, tmp_path):
    conn = connector(ssh_host).connect()
    try:
        result = conn.run(["printf", "%s|", "two words", "$HOME", "a'b"])
        assert result.ok and result.stdout == "two words|$HOME|a'b|"
        assert conn.run(["cat"], stdin=b"via stdin").stdout == "via stdin"
        assert conn.run(["sh", "-c", "echo oops >&2; exit 3"]).rc == 3
        path = str(tmp_path / "deep" / "dir" / "secret")
        conn.put_file(path, b"value", 0o600)
        assert conn.read_file(path) == b"value" and conn.read_file(path + ".missing") is None
        assert oct((tmp_path / "deep" / "dir" / "secret").stat().st_mode & 0o777) == "0o600"
        lock = str(tmp_path / "lock")
        assert conn.mkdir(lock, exclusive=True) is True
        assert conn.mkdir(lock, exclusive=True) is False
    finally:
        conn.close()


def test_unknown_and_changed_host_keys_are_refused_with_the_fingerprint(ssh_host, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(ConnectError, match=r"not in the configured known_hosts .*SHA256:"):
        connector(ssh_host, str(empty)).connect()
    import paramiko

    other = paramiko.Ed25519Key.from_private_key_file(ssh_host.key_file)  # any other key
    changed = tmp_path / "changed_known_hosts"
    changed.write_text(f"[{ssh_host.host}]:{ssh_host.port} ssh-ed25519 {other.get_base64()}\n")
    with pytest.raises(ConnectError, match="HOST KEY CHANGED") as info:
        connector(ssh_host, str(changed)).connect()
    assert fingerprint(other) in info.value.message


def push(image: str, repository: str, tag: str) -> str:
    """Pushes `image` as repository:tag and returns its digest; then drops the tag so that
    the deploy must really pull by digest."""
    docker("tag", image, f"{repository}:{tag}")
    docker("push", f"{repository}:{tag}")
    digests = json.loads(docker("image", "inspect", "--format", "{{json .RepoDigests}}", f"{repository}:{tag}"))
    digest = next(d for d in digests if d.startswith(repository + "@")).split("@")[1]
    docker("rmi", f"{repository}:{tag}")
    return digest


def _status(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_deploy_and_rollback_over_ssh_pull_by_digest(ssh_host, registry, probe_images, tmp_path):
    app, port = unique_app(), free_port()
    ssh = (f"[environments.staging.ssh]\nuser = \"{ssh_host.user}\"\nport = {ssh_host.port}\n"
           f"key_file = \"{ssh_host.key_file}\"\nknown_hosts = \"{ssh_host.known_hosts_file}\"\n")
    config = probe_config(tmp_path, app, port=port, env_name="staging", target="ssh",
                          extra_env=f"hosts = [\"{ssh_host.host}\"]\n{ssh}",
                          registry=f"[registry]\nserver = \"{registry.address}\"\nnamespace = \"{app}\"\n")
    repos = {n: f"{registry.address}/{app}/{n}" for n in ("backend", "frontend", "proxy")}
    try:
        releases = []
        for revision in ("aaaaaaa1", "bbbbbbb2"):
            if revision == "bbbbbbb2":  # maintenance on over SSH: the next deploy and the rollback keep it
                on = run_cli(config, "maintenance", "on", "--env", "staging")
                assert on.returncode == 0, on.stdout + on.stderr
                assert _status(port) == 503
            digests = {n: push(img, repos[n], revision) for n, img in
                       (("backend", probe_images.good), ("frontend", probe_images.good), ("proxy", probe_images.proxy))}
            write_probe_artifacts(config, app, revision, probe_images.good, probe_images.good, probe_images.proxy,
                                  digests=digests, repositories=repos)
            done = run_cli(config, "deploy", "--env", "staging", "--json", env={"PROBE_DB_PASSWORD": "ssh-secret-value"})
            assert done.returncode == 0, done.stdout + done.stderr
            result = json.loads(done.stdout.strip().splitlines()[-1])
            releases.append(result["release"])
            assert "ssh-secret-value" not in done.stdout
        # In maintenance the public gets 503; deployctl's own header (its token, on the host) passes.
        assert _status(port) == 503
        token = maintenance_headers((tmp_path / "state" / app / "staging" / "proxy" / "nginx.conf").read_bytes())
        request = urllib.request.Request(f"http://127.0.0.1:{port}/version", headers=token)
        body = json.loads(urllib.request.urlopen(request).read())
        assert body["frontend"]["release"] == body["backend"]["release"] == releases[1]
        running = docker("inspect", "--format", "{{.Config.Image}}", f"{app}-staging-backend-{releases[1]}")
        assert running.startswith(repos["backend"] + "@sha256:")

        back = run_cli(config, "rollback", "--env", "staging")
        assert back.returncode == 0, back.stdout + back.stderr
        assert _status(port) == 503
        shown = run_cli(config, "status", "--env", "staging")
        assert "MAINTENANCE on since" in shown.stdout, shown.stdout + shown.stderr
        off = run_cli(config, "maintenance", "off", "--env", "staging")
        assert off.returncode == 0, off.stdout + off.stderr
        body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/version").read())
        assert body["frontend"]["release"] == releases[0]
        # The env files with secrets left the host once the containers existed.
        assert list((tmp_path / "state").glob(f"{app}/staging/secrets/*/*.env")) == []
        listed = run_cli(config, "releases", "--env", "staging", "--json")
        rows = json.loads(listed.stdout.strip().splitlines()[-1])["hosts"][f"{ssh_host.host}:{ssh_host.port}"]
        assert [(r["release"], r["live"]) for r in rows] == [(releases[1], False), (releases[0], True)]
    finally:
        remove_app(app)


def test_dry_run_changes_nothing_and_shows_the_pull_by_digest(ssh_host, registry, probe_images, tmp_path):
    app, port = unique_app(), free_port()
    config = probe_config(tmp_path, app, port=port, env_name="staging", target="ssh",
                          extra_env=f"hosts = [\"{ssh_host.host}:{ssh_host.port}\"]\n",
                          registry=f"[registry]\nserver = \"{registry.address}\"\n")
    digest = "sha256:" + "a" * 64
    write_probe_artifacts(config, app, "ccccccc3", probe_images.good, probe_images.good, probe_images.proxy,
                          digests={n: digest for n in ("backend", "frontend", "proxy")},
                          repositories={n: f"{registry.address}/{n}" for n in ("backend", "frontend", "proxy")})
    plan = run_cli(config, "deploy", "--env", "staging", "--dry-run", env={"PROBE_DB_PASSWORD": "dry-run-secret"})
    assert plan.returncode == 0, plan.stderr
    assert f"docker pull --quiet {registry.address}/backend@{digest}" in plan.stdout
    assert "dry-run-secret" not in plan.stdout
    assert not (tmp_path / "state").exists()
