"""The key that signs session cookies and CSRF tokens.

Every worker of every frontend container that may answer the same browser must
use the same key. A key generated per process breaks that: gunicorn runs
several workers, the form a browser got from worker A carries a token signed
with A's key, and the POST that lands on worker B fails CSRF validation with a
400 — at random, about (workers-1)/workers of the time. The same happens across
a release switch, where old and new containers must accept each other's forms.
So: production mounts a key file (FRONTEND_SECRET_KEY_FILE); when none is
given, gunicorn's master generates one before forking (see
`share_generated_key`, called from gunicorn.conf.py), which keeps a single
container consistent but still loses sessions on restart.
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Mapping, MutableMapping

log = logging.getLogger(__name__)

KEY_ENV = "FRONTEND_SECRET_KEY"
KEY_FILE_ENV = "FRONTEND_SECRET_KEY_FILE"
MIN_KEY_LENGTH = 16


class SecretKeyError(Exception):
    pass


def configured_key(env: Mapping[str, str]) -> str | None:
    """The key from the file or the variable, or None when neither is set."""
    path = env.get(KEY_FILE_ENV)
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                key = handle.read().strip()
        except OSError as exc:
            raise SecretKeyError(f"cannot read {KEY_FILE_ENV} {path}: {exc.strerror}") from None
    else:
        key = env.get(KEY_ENV, "").strip()
        if not key:
            return None
    if len(key) < MIN_KEY_LENGTH:
        raise SecretKeyError(f"the frontend secret key must be at least {MIN_KEY_LENGTH} characters")
    return key


def load_key(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    key = configured_key(env)
    if key is None:
        log.warning(
            "no %s or %s: using a random key for this process only; "
            "forms will fail CSRF checks across processes and restarts",
            KEY_FILE_ENV, KEY_ENV,
        )
        key = secrets.token_hex(32)
    return key


def share_generated_key(environ: MutableMapping[str, str]) -> bool:
    """In gunicorn's master, before workers fork: make sure every worker
    inherits one key. Returns True when it had to generate one."""
    if configured_key(environ) is not None:
        return False
    environ[KEY_ENV] = secrets.token_hex(32)
    return True
