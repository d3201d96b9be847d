"""Maintenance mode in deployctl's proxy (hosts): every request but the proxy's own health
check gets 503 with `Retry-After` and a page, while the app keeps running.

The state lives in the proxy's rendered nginx.conf on each host, in one marked block at
server level (`render_proxy_config` always renders it, off by default), and the page beside
it (PAGE_FILE). So every command sees it on the host, whoever runs it from wherever:
`maintenance on|off` rewrites the block of the live file (staged, `nginx -t`, renamed,
reloaded: the switch's own swap), and a deploy or rollback carries the block of the file it
replaces into the one it writes (`carry`), so maintenance stays on until `off`.

deployctl's own verify must still reach the new release through the proxy: a request
carrying the block's token in VERIFY_HEADER passes. The token is random per `on`, and only
on the host (the file is the host's) and in deployctl's requests from the host itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PAGE_FILE = "maintenance.html"  # in the proxy directory, beside nginx.conf
VERIFY_HEADER = "X-Deployctl-Verify"
DEFAULT_RETRY_AFTER = 300
DEFAULT_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Down for maintenance</title></head>
<body><h1>Down for maintenance</h1><p>We will be back shortly. Please try again in a few minutes.</p></body></html>
"""
_BEGIN, _END = "        # deployctl maintenance {\n", "        # } deployctl maintenance\n"
_BLOCK = re.compile(re.escape(_BEGIN) + r"(.*?)" + re.escape(_END), re.S)
_STATE = re.compile(r"^        # on since (\S+) retry-after (\d+) token ([0-9a-f]{16,64})$", re.M)


@dataclass(frozen=True)
class Maintenance:
    since: str  # RFC 3339, when it was turned on
    retry_after: int  # seconds, the Retry-After header's value
    token: str  # lets deployctl's verify through (VERIFY_HEADER)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-f]{16,64}", self.token) or not re.fullmatch(r"\S+", self.since):
            raise ValueError("maintenance: a token of hex digits and a time without spaces")
        if not 0 <= self.retry_after <= 86400:
            raise ValueError("maintenance: retry-after is 0..86400 seconds")


def server_block(state: Maintenance | None) -> str:
    """The server-level lines `location /` and `@deployctl_maintenance` read (off: empty)."""
    if state is None:
        body = '        set $deployctl_maintenance "";\n        set $deployctl_retry_after "";\n'
    else:
        body = (f"        # on since {state.since} retry-after {state.retry_after} token {state.token}\n"
                f"        set $deployctl_maintenance on;\n"
                f"        set $deployctl_retry_after {state.retry_after};\n"
                f"        if ($http_{VERIFY_HEADER.lower().replace('-', '_')} = \"{state.token}\") {{\n"
                f"            set $deployctl_maintenance \"\";\n"
                f"        }}\n")
    return _BEGIN + body + _END


# In `location /`, before the route: `if` with `return` only (the safe use of nginx's `if`).
LOCATION_CHECK = """            if ($deployctl_maintenance) {
                return 503;
            }
            error_page 503 @deployctl_maintenance;
"""

# The page: only for the 503 above (error_page), never for a 503 of the app (nginx passes
# those on: proxy_intercept_errors is off). No page file: nginx's own 503 text.
def page_location(mount: str) -> str:
    """`mount`: the proxy directory as nginx sees it (plan/edge/proxy_config.PROXY_MOUNT)."""
    return f"""        location @deployctl_maintenance {{
            root {mount};
            default_type text/html;
            add_header Retry-After $deployctl_retry_after always;
            add_header Cache-Control "no-store" always;
            try_files /{PAGE_FILE} =503;
        }}
"""


def state_of(config: str | bytes | None) -> Maintenance | None:
    """The maintenance state a rendered configuration holds (None: off, or not ours)."""
    if not config:
        return None
    text = config.decode(errors="replace") if isinstance(config, bytes) else config
    block = _BLOCK.search(text)
    match = _STATE.search(block.group(1)) if block else None
    if match is None:
        return None
    try:
        return Maintenance(match.group(1), int(match.group(2)), match.group(3))
    except ValueError:
        return None


def with_state(config: str, state: Maintenance | None) -> str:
    """`config` with its maintenance block set to `state`. A configuration without the block
    (rendered before maintenance existed) cannot hold it: ValueError, so nothing half-done
    is written (the next deploy renders one that can)."""
    if not _BLOCK.search(config):
        raise ValueError("the proxy's configuration has no maintenance block (rendered by an older deployctl): "
                         "deploy once, then turn maintenance on")
    return _BLOCK.sub(lambda _: server_block(state), config, count=1)


def carry(previous: str | bytes | None, config: str) -> str:
    """The configuration a switch writes, with the maintenance state of the one it replaces:
    a deploy or rollback never turns maintenance off."""
    state = state_of(previous)
    return with_state(config, state) if state is not None and _BLOCK.search(config) else config


def verify_headers(config: str | bytes | None) -> dict[str, str]:
    """The header that lets deployctl's own requests through while maintenance is on."""
    state = state_of(config)
    return {VERIFY_HEADER: state.token} if state is not None else {}
