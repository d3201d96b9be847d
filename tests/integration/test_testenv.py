"""The test environment itself works: registries, sshd, MariaDB and the stand-in images
(docs/TEAM-CONTRACT.md). When one of these fails, suspect the environment, not deployctl."""
from __future__ import annotations

import base64
import hashlib
import io
import secrets
import subprocess
import tarfile
import time
import urllib.error
import urllib.request

import docker
import paramiko
import pymysql
import pytest

from tests.support.engine import bridge_gateway, connect_docker
from tests.support.net import direct, http_status, ssh_banner, wait_until

pytestmark = pytest.mark.integration


def context_tar(files: dict[str, str]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def build(client, files: dict[str, str], tag: str, **kwargs):
    image, _ = client.images.build(fileobj=context_tar(files), custom_context=True, tag=tag,
                                   rm=True, forcerm=True, **kwargs)
    return image


def tiny_image(client, reference: str):
    """A one-file image with unique content, so every push really uploads a layer."""
    return build(client, {"Dockerfile": "FROM scratch\nCOPY hello.txt /\n",
                          "hello.txt": secrets.token_hex(16)}, reference)


def push(client, repository: str, tag: str, auth_config: dict | None = None) -> str:
    """Push and return the digest the registry reported; raises with the registry's error."""
    digest = None
    for event in client.images.push(repository, tag=tag, auth_config=auth_config, stream=True, decode=True):
        if "error" in event:
            raise RuntimeError(event["error"])
        digest = event.get("aux", {}).get("Digest", digest)
    assert digest, f"no digest reported for {repository}:{tag}"
    return digest


def get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with direct.open(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def remove_image(client, reference: str) -> None:
    try:
        client.images.remove(reference, force=True)
    except docker.errors.ImageNotFound:
        pass


def new_client_key(tmp_path):
    key_file = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_file)], check=True)
    return key_file


def run_once(client, image: str, command=None, **kwargs) -> str:
    """Run a container to completion and return its output. Unlike ``run(remove=True)``,
    this also removes the anonymous volumes of images that declare VOLUME (mariadb, host)."""
    container = client.containers.run(image, command, detach=True, **kwargs)
    try:
        code = container.wait(timeout=120)["StatusCode"]
        output = container.logs(stdout=True, stderr=True).decode()
        assert code == 0, f"{image} {command} exited {code}: {output}"
        return output
    finally:
        container.remove(force=True, v=True)


def container_ip(container) -> str:
    container.reload()
    return container.attrs["NetworkSettings"]["IPAddress"]


# --- registries ---------------------------------------------------------------------------

def test_registry_push_then_pull_returns_the_same_digest(docker_client, registry):
    repository, tag = f"{registry.address}/testenv/tiny", secrets.token_hex(4)
    tiny_image(docker_client, f"{repository}:{tag}")
    try:
        digest = push(docker_client, repository, tag)
        status, body = get(f"{registry.url}/v2/_catalog")
        assert status == 200 and b"testenv/tiny" in body

        remove_image(docker_client, f"{repository}:{tag}")
        pulled = docker_client.images.pull(repository, tag=tag)
        assert f"{repository}@{digest}" in pulled.attrs["RepoDigests"]
    finally:
        remove_image(docker_client, f"{repository}:{tag}")


def test_auth_registry_refuses_bad_credentials(auth_registry):
    assert http_status(f"{auth_registry.url}/v2/") == 401
    assert get(f"{auth_registry.url}/v2/", (auth_registry.username, "wrong"))[0] == 401
    # A private client: a login stored on the shared docker_client would leak into other tests.
    client = connect_docker()
    try:
        with pytest.raises(docker.errors.APIError):
            client.login(auth_registry.username, "wrong", registry=auth_registry.address, reauth=True)
        repository, tag = f"{auth_registry.address}/testenv/refused", secrets.token_hex(4)
        tiny_image(client, f"{repository}:{tag}")
        try:
            with pytest.raises(RuntimeError, match="(?i)auth|denied|unauthorized"):
                push(client, repository, tag, auth_config={"username": auth_registry.username, "password": "wrong"})
        finally:
            remove_image(client, f"{repository}:{tag}")
    finally:
        client.close()


def test_auth_registry_accepts_good_credentials(auth_registry):
    credentials = (auth_registry.username, auth_registry.password)
    assert get(f"{auth_registry.url}/v2/", credentials)[0] == 200
    client = connect_docker()
    try:
        answer = client.login(*credentials, registry=auth_registry.address, reauth=True)
        assert answer["Status"] == "Login Succeeded"
        repository, tag = f"{auth_registry.address}/testenv/accepted", secrets.token_hex(4)
        tiny_image(client, f"{repository}:{tag}")
        try:
            digest = push(client, repository, tag,
                          auth_config={"username": credentials[0], "password": credentials[1]})
        finally:
            remove_image(client, f"{repository}:{tag}")
    finally:
        client.close()
    status, _ = get(f"{auth_registry.url}/v2/testenv/accepted/manifests/{digest}", credentials)
    assert status == 200


# --- sshd ---------------------------------------------------------------------------------

def ssh_connect(ssh_host, known_hosts: str | None = None, key_file: str | None = None) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(known_hosts or ssh_host.known_hosts_file)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(ssh_host.host, port=ssh_host.port, username=ssh_host.user,
                   key_filename=key_file or ssh_host.key_file, look_for_keys=False,
                   allow_agent=False, timeout=10)
    return client


def run(client: paramiko.SSHClient, command: str) -> tuple[int, str, str]:
    _, stdout, stderr = client.exec_command(command, timeout=60)
    out, err = stdout.read().decode(), stderr.read().decode()
    return stdout.channel.recv_exit_status(), out, err


def test_ssh_host_pins_its_key_and_reaches_the_engine(ssh_host):
    client = ssh_connect(ssh_host)
    try:
        key = client.get_transport().get_remote_server_key()
        seen = "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
        assert (key.get_name(), seen) == ("ssh-ed25519", ssh_host.host_key_fingerprint)
        code, out, err = run(client, "docker version --format '{{.Server.Version}}'")
        assert code == 0, err
        assert out.strip()
    finally:
        client.close()


def test_ssh_host_refuses_a_changed_host_key(ssh_host, tmp_path):
    other = paramiko.Ed25519Key.from_private_key_file(ssh_host.key_file)  # any key but the host's
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{ssh_host.host}]:{ssh_host.port} ssh-ed25519 {other.get_base64()}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        ssh_connect(ssh_host, known_hosts=str(known_hosts))


def test_ssh_host_refuses_an_unknown_host(ssh_host, tmp_path):
    (tmp_path / "known_hosts").write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        ssh_connect(ssh_host, known_hosts=str(tmp_path / "known_hosts"))


def test_ssh_host_refuses_an_unauthorised_client_key(ssh_host, tmp_path):
    with pytest.raises(paramiko.AuthenticationException):
        ssh_connect(ssh_host, key_file=str(new_client_key(tmp_path)))


# --- MariaDB ------------------------------------------------------------------------------

def test_mariadb_creates_a_usable_throwaway_database(mariadb):
    name = mariadb.create_database("testenv")
    with mariadb.connect(database=name) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
        cursor.execute("INSERT INTO t VALUES (1, 'hello')")
        cursor.execute("SELECT v FROM t")
        assert cursor.fetchall() == (("hello",),)
        cursor.execute("SHOW DATABASES LIKE %s", (name,))
        assert cursor.fetchall() == ((name,),)


def test_a_container_reaches_mariadb_at_container_host(mariadb, docker_client, standin_images):
    assert mariadb.container_host == bridge_gateway()
    name = mariadb.create_database("testenv_container")
    with mariadb.connect(database=name) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE t (v VARCHAR(20))")
        cursor.execute("INSERT INTO t VALUES ('from-the-host')")
    output = run_once(
        docker_client, standin_images["mariadb"],
        ["mariadb", "-h", mariadb.container_host, "-P", str(mariadb.port), "-u", mariadb.user,
         "-N", "-B", "-e", f"SELECT v FROM `{name}`.t"],
        environment={"MYSQL_PWD": mariadb.password})
    assert output.strip() == "from-the-host"


# --- stand-in images ----------------------------------------------------------------------

SMOKE = {
    "python": (None, ["python3", "-c", "import sys; print(sys.version)"], "3.11"),
    "nginx": (None, ["nginx", "-t"], ""),
    "mariadb": (None, ["mariadbd", "--version"], "MariaDB"),
    "host": (["sh", "-c"], ["dockerd --version && /usr/sbin/sshd -V 2>&1 | head -1"], "Docker version"),
}


@pytest.mark.parametrize("key", sorted(SMOKE))
def test_standin_image_runs(docker_client, standin_images, key):
    entrypoint, command, expected = SMOKE[key]
    assert expected in run_once(docker_client, standin_images[key], command, entrypoint=entrypoint)


def test_python_standin_builds_a_dockerfile_that_pip_installs(docker_client, standin_images):
    """What the app Dockerfiles do: BASE_IMAGE build arg, pip from PyPI over HTTPS, a user."""
    dockerfile = ("ARG BASE_IMAGE=python:3.12-slim\nFROM ${BASE_IMAGE}\n"
                  "RUN pip install --no-cache-dir flask\n"
                  "RUN useradd --create-home app\nUSER app\n"
                  'CMD ["python", "-c", "import flask, getpass; print(getpass.getuser())"]\n')
    tag = f"deployctl-test/testenv-python:{secrets.token_hex(4)}"
    build(docker_client, {"Dockerfile": dockerfile}, tag, buildargs={"BASE_IMAGE": standin_images["python"]})
    try:
        assert run_once(docker_client, tag).strip() == "app"
    finally:
        remove_image(docker_client, tag)


def test_nginx_standin_serves_and_stops_with_sigquit(docker_client, standin_images):
    assert docker_client.images.get(standin_images["nginx"]).attrs["Config"]["StopSignal"] == "SIGQUIT"
    container = docker_client.containers.run(standin_images["nginx"], detach=True)
    try:
        url = f"http://{container_ip(container)}/"
        wait_until(lambda: http_status(url) == 200, 20, f"nginx stand-in at {url}")
        container.stop(timeout=10)
        assert container.wait(timeout=10)["StatusCode"] == 0
        assert b"gracefully shutting down" in container.logs()
    finally:
        container.remove(force=True)


def test_mariadb_standin_honours_the_official_env_and_keeps_data(docker_client, standin_images, tmp_path):
    (tmp_path / "password").write_text("app's secret")
    volume = docker_client.volumes.create(f"deployctl-testenv-{secrets.token_hex(4)}")
    container = docker_client.containers.run(
        standin_images["mariadb"], detach=True,
        environment={"MARIADB_ROOT_PASSWORD": "root-secret", "MARIADB_DATABASE": "appdb",
                     "MARIADB_USER": "app", "MARIADB_PASSWORD_FILE": "/run/secrets/password"},
        volumes={volume.name: {"bind": "/var/lib/mysql", "mode": "rw"},
                 str(tmp_path / "password"): {"bind": "/run/secrets/password", "mode": "ro"}})

    def connect():
        return pymysql.connect(host=container_ip(container), user="app", password="app's secret",
                               database="appdb", connect_timeout=3, autocommit=True)

    def answers() -> bool:
        try:
            connect().close()
            return True
        except pymysql.MySQLError:
            return False

    def exited() -> str | None:
        container.reload()
        return None if container.status == "running" else f"exited: {container.logs()[-2000:].decode()}"

    try:
        wait_until(answers, 60, "mariadb stand-in", interval=0.5, alive=exited)
        assert container.exec_run(["healthcheck.sh", "--connect", "--innodb_initialized"]).exit_code == 0
        with connect() as connection, connection.cursor() as cursor:
            cursor.execute("CREATE TABLE kept (v VARCHAR(20))")
            cursor.execute("INSERT INTO kept VALUES ('survives')")
        container.restart(timeout=20)
        wait_until(answers, 60, "mariadb stand-in after restart", interval=0.5, alive=exited)
        with connect() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT v FROM kept")
            assert cursor.fetchall() == (("survives",),)
        root = pymysql.connect(host=container_ip(container), user="root", password="root-secret", connect_timeout=3)
        root.close()
    finally:
        container.remove(force=True, v=True)
        volume.remove(force=True)


def test_host_standin_runs_sshd_and_dockerd_and_pulls_from_registry(docker_client, standin_images, registry,
                                                                    tmp_path):
    """An EC2-like host (testenv.md's recipe) pulls through the registry on the bridge gateway."""
    repository, tag = f"{registry.address}/testenv/fleet", secrets.token_hex(4)
    tiny_image(docker_client, f"{repository}:{tag}")
    try:
        digest = push(docker_client, repository, tag)
    finally:
        remove_image(docker_client, f"{repository}:{tag}")
    key = paramiko.Ed25519Key.from_private_key_file(str(new_client_key(tmp_path)))
    gateway_registry = f"{bridge_gateway()}:{registry.port}"
    container = docker_client.containers.run(
        standin_images["host"], detach=True,
        cap_add=["ALL"], cap_drop=["SYS_RESOURCE"], cgroupns="host",
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
        environment={"SSH_AUTHORIZED_KEYS": f"ssh-ed25519 {key.get_base64()}",
                     "DOCKERD_INSECURE_REGISTRIES": gateway_registry})
    try:
        address = container_ip(container)
        wait_until(lambda: (ssh_banner(address, 22) or "").startswith("SSH-2.0"), 30, "host stand-in sshd")
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # a fresh throwaway host
        client.connect(address, username="root", pkey=key, look_for_keys=False, allow_agent=False, timeout=10)
        try:
            deadline = time.monotonic() + 60
            while run(client, "docker info >/dev/null 2>&1")[0] != 0:
                assert time.monotonic() < deadline, "dockerd in the host stand-in did not start"
                time.sleep(0.5)
            code, out, err = run(client, f"docker pull {gateway_registry}/testenv/fleet@{digest}")
            assert code == 0, out + err
            code, out, err = run(client, "docker info --format '{{.Driver}}'")
            assert (code, out.strip()) == (0, "overlay2"), err
        finally:
            client.close()
    finally:
        container.remove(force=True, v=True)

