"""A compose `healthcheck:` as deployctl health-check keys. Pure."""

from __future__ import annotations

import re
from typing import Any

# curl -f http://localhost:5000/health, wget -qO- http://127.0.0.1/ready …
URL_RE = re.compile(r"""https?://[^/\s'"]+(?P<path>/[^\s'"|;&)]*)?""")
HTTP_CLIENT_RE = re.compile(r"\b(curl|wget)\b")


def health_argv(health: dict[str, Any]) -> list[str] | None:
    """The check's command as argv (CMD-SHELL and strings run through sh -c); None when the
    healthcheck is disabled or has no test."""
    if not isinstance(health, dict) or health.get("disable") is True:
        return None
    test = health.get("test")
    if isinstance(test, str):
        return ["sh", "-c", test] if test.strip() else None
    if not isinstance(test, list) or not test or not all(isinstance(t, str) for t in test):
        return None
    kind, rest = test[0].upper(), list(test[1:])
    if kind == "NONE" or not rest:
        return None
    if kind == "CMD":
        return rest
    if kind == "CMD-SHELL":
        return ["sh", "-c", " ".join(rest)]
    return None


def translate_healthcheck(health: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """(the [healthcheck] keys, a one-line comment) or None when there is no usable check."""
    argv = health_argv(health)
    if argv is None:
        return None
    line = " ".join(argv[2:] if argv[:2] == ["sh", "-c"] else argv)
    url = URL_RE.search(line)
    if HTTP_CLIENT_RE.search(line) and url:
        path = url.group("path") or "/"
        return {"type": "http", "path": path}, f"from compose's healthcheck ({line})"
    return {"type": "command", "command": argv}, "compose's healthcheck command, run in the container"
