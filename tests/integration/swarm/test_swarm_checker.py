"""The checker of plan/swarm/swarm_health.py run for real on this machine's engine, without a
Swarm: the nginx stand-in started by the very argv deployctl runs, relaying to a probe
container on the same bridge. What its answers read as must hold for a real nginx: 200
passes, the task's 503 is named, a closed port is "no connection (refused)", a task that
never answers is "no answer in time"; the tcp probe (bash's /dev/tcp in this image) tells
an open port from a closed one."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

from deployctl.plan.swarm import swarm_health as sh
from deployctl.plan.lifecycle.names import Names

pytestmark = pytest.mark.integration

TARGET = """
import http.server, socket, threading, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(5)
        code = 200 if self.path in ("/healthz", "/slow") else 503
        self.send_response(code); self.send_header("Content-Length", "6"); self.end_headers()
        self.wfile.write(b"fine\\n\\n" if code == 200 else b"broke\\n")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8000), H).serve_forever()
"""


def docker(*args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0 or not check, done.stderr
    return done.stdout.strip()


def get(address: str, path: str) -> tuple[int, dict, str]:
    try:
        with urllib.request.urlopen(f"http://{address}:{sh.CHECKER_PORT}{path}", timeout=4) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read().decode()


def test_the_checker_relays_to_a_task_and_its_answers_read_as_on_ssh_hosts(standin_images):
    names = Names("t" + uuid.uuid4().hex[:8], "check")
    release = "20261202-000000-abcdef0"
    target = f"{names.prefix}-target"
    checker = sh.checker_name(names, release)
    try:
        docker("run", "--detach", "--name", target, "--label", f"io.deployctl.app={names.app}",
               "--entrypoint", "python3", standin_images["python"], "-c", TARGET)
        run = sh.run_checker(names, release, standin_images["nginx"], 1.0)
        docker(*run[1:])
        address = docker(*sh.checker_address(checker)[1:])
        task = docker("inspect", "--format", "{{.NetworkSettings.Networks.bridge.IPAddress}}", target)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if get(address, sh.CHECKER_HEALTH)[0] == 200 and get(address, sh.check_path(task, 8000, "/healthz"))[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.25)
        where = f"http {task}:8000"

        def read(port: int, path: str) -> sh.ProbeAnswer:
            status, headers, body = get(address, sh.check_path(task, port, path))
            return sh.http_answer(status, headers, body, path, f"http {task}:{port}")

        assert read(8000, "/healthz") == sh.ProbeAnswer(True)
        assert read(8000, "/broken") == sh.ProbeAnswer(False, "/broken answered 503: broke")
        assert read(8001, "/healthz") == sh.ProbeAnswer(False, f"http {task}:8001: no connection (refused)")
        assert read(8000, "/slow") == sh.ProbeAnswer(False, f"{where}/slow: no answer in time")  # 1 s attempt
        assert get(address, "/deployctl-check/example.com/80/")[0] == 404  # addresses only, no names
        # tcp: the very argv deployctl runs, here against the local engine.
        assert subprocess.run(sh.tcp_probe(checker, task, 8000, 1.0), capture_output=True).returncode == 0
        closed = subprocess.run(sh.tcp_probe(checker, task, 8001, 1.0), capture_output=True)
        assert closed.returncode != 0
    finally:
        docker("rm", "--force", target, check=False)
        docker(*sh.remove_checker(checker)[1:], check=False)
