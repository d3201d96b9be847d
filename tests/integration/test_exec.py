"""`deployctl exec` against this machine's engine, with the probe app deployed once: the
exit code and both streams of `--live`, `--new`'s one-off seeing the release's env (a
`{{ secret.* }}` value from the env file) and a secret file and going afterwards, `-i`
through a real pty, and `--live` over SSH (the test sshd in front of the same engine)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from deployctl.adapters.ssh import SSHConnector
from deployctl.config import load_config
from deployctl.events import Recorder
from deployctl.plan.lifecycle.releases import History
from deployctl.secrets import Secret
from deployctl.services.env import Env
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.operate.exec import ExecRequest, run_exec
from deployctl.services.hosts import layout_for
from deployctl.services.lifecycle.release_images import ReleaseImages
from tests.support.terminal import through_pty
from tests.integration.deploy_fixtures import DEPLOYCTL, docker, free_port, probe_config, remove_app, unique_app

pytestmark = pytest.mark.integration
DSN_VALUE = "dsn-exec-Pa55-7c1d"
FILE_VALUE = "exec-file-secret-value"
SCRIPT = "echo out; echo err >&2; exit 3"


@pytest.fixture(scope="module")
def site(tmp_path_factory, probe_images):
    tmp = tmp_path_factory.mktemp("exec")
    app = unique_app()
    config = probe_config(tmp, app, port=free_port())
    config.write_text(config.read_text().replace(
        "[services.backend.healthcheck]",
        '[services.backend.env]\nPROBE_DSN = "mysql://probe:{{ secret.PROBE_DSN_PASSWORD }}@db:3306/x"\n'
        "[services.backend.healthcheck]"))
    loaded = load_config(config)
    secrets = {"PROBE_DB_PASSWORD": Secret(FILE_VALUE), "PROBE_DSN_PASSWORD": Secret(DSN_VALUE)}
    images = ReleaseImages({"backend": probe_images.good, "frontend": probe_images.good, "proxy": probe_images.proxy},
                           "1111111aaaa")
    release = deploy(Env.resolve(loaded, "local"), images, secrets, Recorder()).release
    yield app, config, loaded, release
    remove_app(app)


def cli(config, *args: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run([DEPLOYCTL, "--config", str(config), "exec", "--env", "local", *args],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def last_record(loaded):  # type: ignore[no-untyped-def]
    return History.parse(open(layout_for(loaded, "local").history).read()).records[-1]


def test_live_exec_streams_stdout_and_stderr_and_exits_with_the_command_code(site):
    app, config, loaded, release = site
    done = cli(config, "--", "sh", "-c", SCRIPT)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    record = last_record(loaded)
    assert (record.action, record.release, record.outcome) == ("exec", release, "exited")
    assert record.extra == {"service": "frontend", "mode": "live", "command": ["sh", "-c", SCRIPT], "exit_code": 3}
    prefixed = cli(config, "--all-hosts", "--", "sh", "-c", SCRIPT)
    assert (prefixed.returncode, prefixed.stdout, prefixed.stderr) == (3, "localhost | out\n", "localhost | err\n")
    # A value this shell's secret source gives is masked in the history's copy of the argv
    # (not in the output: the command is the user's own).
    masked = subprocess.run([DEPLOYCTL, "--config", str(config), "exec", "--env", "local", "--", "echo", FILE_VALUE],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "PROBE_DB_PASSWORD": FILE_VALUE})
    assert masked.returncode == 0 and masked.stdout == FILE_VALUE + "\n"
    assert last_record(loaded).extra["command"] == ["echo", "***"]
        # deployctl's own failure to start is 125, never a code the command could have given.
    missing = cli(config, "--service", "nope", "--", "true")
    assert missing.returncode == 125 and "no such service" in missing.stderr
    # The readers did not count the exec lines.
    listed = subprocess.run([DEPLOYCTL, "--config", str(config), "releases", "--env", "local"], capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0 and listed.stdout.count(release) == 1, listed.stdout


def test_new_exec_gets_the_release_env_file_and_secrets_and_is_removed(site):
    app, config, loaded, release = site
    done = cli(config, "--new", "--service", "backend", "--", "sh", "-c",
               'echo "dsn=$PROBE_DSN"; echo "file=$(cat "$PROBE_DB_PASSWORD_FILE")"; echo "release=$DEPLOYCTL_RELEASE"; '
               "exit 4")
    assert done.returncode == 4 and done.stderr == "", done.stderr  # no warning: --rm's removal was expected
    assert done.stdout.splitlines() == [f"dsn=mysql://probe:{DSN_VALUE}@db:3306/x", f"file={FILE_VALUE}",
                                        f"release={release}"]
    assert docker("ps", "-aq", "--filter", f"label=io.deployctl.app={app}", "--filter",
                  "label=io.deployctl.role=exec") == ""
    record = last_record(loaded)
    assert record.extra["mode"] == "new" and record.extra["exit_code"] == 4 and record.extra["service"] == "backend"
    assert DSN_VALUE not in record.to_line() and FILE_VALUE not in record.to_line()
    # It reached the backend of its own release by name on the release network (the live one).
    reach = cli(config, "--new", "--", "python", "-c",
                "import os, urllib.request as u; print(u.urlopen(os.environ['BACKEND_URL'] + '/version').read().decode())")
    assert reach.returncode == 0 and release in reach.stdout, reach.stderr


def test_interactive_exec_runs_on_a_real_pty(site, tmp_path):
    app, config, loaded, release = site
    # Wrapped so the terminal's settings are read before and after: raw mode is undone.
    wrapper = (f'stty -g > {tmp_path}/before; {DEPLOYCTL} --config {config} exec --env local -i -- sh; rc=$?; '
               f'stty -g > {tmp_path}/after; exit $rc')
    code, seen = through_pty(["sh", "-c", wrapper], b"stty size; echo h''i; exit 5\n")
    assert code == 5, seen
    before = (tmp_path / "before").read_text()
    assert (tmp_path / "after").read_text() == before and before.strip(), seen
    assert b"\r\nhi\r\n" in seen, seen  # typed `h''i`, printed `hi`: the shell ran it on a terminal
    assert b"33 111" in seen, seen  # the terminal's size reached the container's
    record = last_record(loaded)
    assert record.extra == {"service": "frontend", "mode": "live", "command": ["sh"], "exit_code": 5}
    code, seen = through_pty([DEPLOYCTL, "--config", str(config), "exec", "--env", "local", "-i", "--new", "--",
                               "sh"], b"tty; exit 6\n")
    assert code == 6 and b"/dev/pts/" in seen, seen
    assert docker("ps", "-aq", "--filter", f"label=io.deployctl.app={app}", "--filter",
                  "label=io.deployctl.role=exec") == ""


def test_live_exec_over_ssh(site, ssh_host):
    """The SSH connector in place of the local one: the same engine and state directory the
    local deploy made, reached through the test sshd (a full ssh-target deploy needs the
    registry; tests/integration/test_deploy_ssh.py covers that part)."""
    app, config, loaded, release = site
    conn = SSHConnector(ssh_host.host, port=ssh_host.port, user=ssh_host.user, key_file=ssh_host.key_file,
                        known_hosts=ssh_host.known_hosts_file)
    out: list[tuple[str, str, bytes]] = []
    code = run_exec(loaded, ExecRequest(env="local", command=("sh", "-c", SCRIPT)),
                    lambda host, stream, data: out.append((host, stream, data)), connectors=[conn])
    assert code == 3
    assert b"".join(d for _, s, d in out if s == "stdout") == b"out\n"
    assert b"".join(d for _, s, d in out if s == "stderr") == b"err\n"
    assert {h for h, _, _ in out} == {conn.host}
    assert last_record(loaded).extra["exit_code"] == 3


SSH_INTERACTIVE = """
import sys
from deployctl.adapters.ssh import SSHConnector
from deployctl.config import load_config
from deployctl.services.operate.exec import ExecRequest, run_exec
config, host, port, user, key, known = sys.argv[1:]
conn = SSHConnector(host, port=int(port), user=user, key_file=key, known_hosts=known)
request = ExecRequest(env="local", command=("sh",), interactive=True)
sys.exit(run_exec(load_config(config), request, lambda *a: None, connectors=[conn]))
"""


def test_interactive_exec_over_ssh_gets_a_pty_of_the_terminal_size(site, ssh_host):
    app, config, loaded, release = site
    code, seen = through_pty([sys.executable, "-c", SSH_INTERACTIVE, str(config), ssh_host.host, str(ssh_host.port),
                               ssh_host.user, ssh_host.key_file, ssh_host.known_hosts_file],
                              b"stty size; echo s''sh; exit 7\n")
    assert code == 7, seen
    assert b"\r\nssh\r\n" in seen and b"33 111" in seen, seen
    assert last_record(loaded).extra["exit_code"] == 7


def test_exec_on_an_ssh_target_through_the_cli(ssh_host, registry, probe_images, tmp_path):
    """A real `ssh` environment (deployed over SSH, images pulled from the registry by digest):
    `deployctl exec --live` and `--new` through the CLI, the state read over SFTP."""
    from tests.integration.test_deploy_ssh import push

    app, port = unique_app(), free_port()
    ssh = (f"[environments.staging.ssh]\nuser = \"{ssh_host.user}\"\nport = {ssh_host.port}\n"
           f"key_file = \"{ssh_host.key_file}\"\nknown_hosts = \"{ssh_host.known_hosts_file}\"\n")
    config = probe_config(tmp_path, app, port=port, env_name="staging", target="ssh",
                          extra_env=f"hosts = [\"{ssh_host.host}\"]\n{ssh}",
                          registry=f"[registry]\nserver = \"{registry.address}\"\nnamespace = \"{app}\"\n")
    repos = {n: f"{registry.address}/{app}/{n}" for n in ("backend", "frontend", "proxy")}
    env = {**os.environ, "PROBE_DB_PASSWORD": FILE_VALUE}

    def run(*args: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
        return subprocess.run([DEPLOYCTL, "--config", str(config), *args], capture_output=True, text=True,
                              timeout=180, env=env, stdin=subprocess.DEVNULL)

    try:
        from tests.integration.deploy_fixtures import write_probe_artifacts

        digests = {n: push(img, repos[n], "eeeeeee5") for n, img in
                   (("backend", probe_images.good), ("frontend", probe_images.good), ("proxy", probe_images.proxy))}
        write_probe_artifacts(config, app, "eeeeeee5", probe_images.good, probe_images.good, probe_images.proxy,
                              digests=digests, repositories=repos)
        deployed = run("deploy", "--env", "staging")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        live = run("exec", "--env", "staging", "--", "sh", "-c", SCRIPT)
        assert (live.returncode, live.stdout, live.stderr) == (3, "out\n", "err\n")
        new = run("exec", "--env", "staging", "--new", "--service", "backend", "--", "sh", "-c",
                  'cat "$PROBE_DB_PASSWORD_FILE"; echo; echo "$DEPLOYCTL_RELEASE"')
        assert new.returncode == 0 and new.stdout.splitlines()[0] == FILE_VALUE, new.stdout + new.stderr
        assert docker("ps", "-aq", "--filter", f"label=io.deployctl.app={app}", "--filter",
                      "label=io.deployctl.role=exec") == ""
        elsewhere = run("exec", "--env", "staging", "--host", "nowhere", "--", "true")
        assert elsewhere.returncode == 125 and "not a host of staging" in elsewhere.stderr
    finally:
        remove_app(app)
