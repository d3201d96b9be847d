"""The process-level pieces: the Docker health probe and gunicorn's config."""

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from backend.healthcheck import main as healthcheck

BACKEND_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def served(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    thread.join(timeout=5)


def test_probe_passes_on_200(served, monkeypatch):
    monkeypatch.setenv("PORT", str(served))
    assert healthcheck([]) == 0
    assert healthcheck(["/readyz"]) == 0


def test_probe_fails_on_an_error_status(served, monkeypatch, capsys):
    monkeypatch.setenv("PORT", str(served))
    assert healthcheck(["/no-such-page"]) == 1
    assert "404" in capsys.readouterr().err


def test_probe_fails_when_nothing_listens(closed_port, monkeypatch):
    monkeypatch.setenv("PORT", str(closed_port))
    assert healthcheck(["/healthz"]) == 1


def test_gunicorn_serves_with_the_shipped_config_and_stops_gracefully(clean_database, closed_port):
    env = {
        **os.environ,
        "PORT": str(closed_port),
        "WEB_CONCURRENCY": "1",
        "DATABASE_HOST": clean_database.host,
        "DATABASE_PORT": str(clean_database.port),
        "DATABASE_NAME": clean_database.name,
        "DATABASE_USER": clean_database.user,
        "DATABASE_PASSWORD": clean_database.password,
        "DEPLOYCTL_RELEASE": "r-gunicorn",
        "PYTHONPATH": str(BACKEND_DIR),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "backend.wsgi:app"],
        cwd=BACKEND_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{closed_port}/readyz", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{closed_port}/version", timeout=2) as resp:
            assert b"r-gunicorn" in resp.read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = proc.stdout.read()
    assert '"GET /readyz HTTP/1.1" 200' in output
