"""gunicorn settings for the frontend, tunable through the environment."""

import os

from frontend.secret_key import share_generated_key

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
# Longer than the backend's connect + read timeouts (2 s + 5 s by default), so
# a slow backend yields our own 503 page rather than a killed worker.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On SIGTERM (docker stop, the old release after a switch) workers finish
# in-flight requests for this long; keep `docker stop -t` at least as long.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "25"))
keepalive = 5
worker_tmp_dir = "/dev/shm"
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'


def on_starting(server):
    # Runs once in the master before any worker forks: a key generated here is
    # inherited by every worker, so forms posted to any worker validate.
    # See frontend/secret_key.py for why a per-worker key would break CSRF.
    if share_generated_key(os.environ):
        server.log.warning(
            "FRONTEND_SECRET_KEY(_FILE) not set: generated one for this container's workers; "
            "sessions and open forms will not survive a restart or a release switch"
        )
