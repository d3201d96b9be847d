"""The process-level pieces: the Docker health probe, and gunicorn with the shipped config."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from frontend.healthcheck import main as healthcheck

FRONTEND_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def gunicorn(stub_backend, closed_port):
    """gunicorn with two workers, the shipped config and no secret key configured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTEND_SECRET_KEY")}
    env.update({
        "PORT": str(closed_port),
        "WEB_CONCURRENCY": "2",
        "BACKEND_URL": stub_backend.url,
        "PYTHONPATH": str(FRONTEND_DIR),
    })
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "frontend.wsgi:app"],
        cwd=FRONTEND_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{closed_port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(base + "/healthz", timeout=2)
            break
        except requests.RequestException:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"gunicorn did not start:\n{proc.stdout.read()}")
            time.sleep(0.2)
    yield proc, base
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_probe_passes_on_200_and_fails_otherwise(gunicorn, monkeypatch):
    _proc, base = gunicorn
    monkeypatch.setenv("PORT", base.rsplit(":", 1)[1])
    assert healthcheck([]) == 0
    assert healthcheck(["/no-such-page"]) == 1


def test_probe_fails_when_nothing_listens(closed_port, monkeypatch, capsys):
    monkeypatch.setenv("PORT", str(closed_port))
    assert healthcheck(["/healthz"]) == 1
    assert "healthcheck: http://127.0.0.1:" in capsys.readouterr().err


def test_forms_validate_on_any_worker_and_gunicorn_stops_gracefully(gunicorn, stub_backend):
    from werkzeug.wrappers import Response

    def backend(request):
        if request.method == "POST":
            return Response('{"username": "alice", "created_at": "2026-11-27T10:15:00Z"}', 201,
                            content_type="application/json")
        return Response('{"users": [], "total": 0}', 200, content_type="application/json")

    stub_backend.handler = backend
    proc, base = gunicorn
    # Each round is a new browser: the page and the post can land on different
    # workers. With a key per worker about half of these posts would get a 400.
    for _ in range(20):
        browser = requests.Session()
        page = browser.get(base + "/", timeout=5).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        response = browser.post(base + "/users", data={"username": "alice", "csrf_token": token},
                                allow_redirects=False, timeout=5)
        assert response.status_code == 303, response.text[:300]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    log = proc.stdout.read()
    assert "generated one for this container's workers" in log
    assert '"POST /users HTTP/1.1" 303' in log
