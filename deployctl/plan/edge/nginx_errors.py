"""What an `nginx -t` refusal says, read for what the user needs next.

nginx resolves every `upstream` server name when it loads a configuration, so a container
that exited (or is between two restarts of its restart policy) makes the test fail with
`host not found in upstream "NAME:PORT"`: true, but silent on why. The caller looks those
names up (services/edge/proxy.py) and says the container's own state beside it."""

from __future__ import annotations

import re

_UNRESOLVED = re.compile(r'host not found in upstream "([^":\s]+)(?::\d+)?"')


def unresolved_upstreams(message: str) -> list[str]:
    """The upstream host names nginx could not resolve, in order, each once."""
    return list(dict.fromkeys(_UNRESOLVED.findall(message)))
