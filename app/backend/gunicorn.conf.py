"""gunicorn settings for the backend, tunable through the environment."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Sync workers: each request holds one DB connection for its short life.
worker_class = "sync"
# A request may wait up to 3 s to connect and 5 s to read from MySQL.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On SIGTERM (docker stop, a release switch) workers finish in-flight requests
# for this long before being killed; keep `docker stop -t` at least as long.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "25"))
keepalive = 5
# The heartbeat file lives in memory: a container's overlay filesystem can
# stall fsync-like updates long enough to get healthy workers killed.
worker_tmp_dir = "/dev/shm"
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
