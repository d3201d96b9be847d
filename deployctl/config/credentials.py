"""Values shaped like a credential, whatever their key is called.

Pure (no I/O): config/load.py refuses them in deploy.toml and `deployctl init` (plan/
init_compose.py) never copies one from a compose file.
"""

from __future__ import annotations

import re

# Values shaped like a credential, whatever their key is called (security review: a
# DATABASE_URL with its password, or a token in build_args, went onto `docker create -e`
# argv, into --dry-run and --json output and `docker inspect`). The name says what was
# found; the value is never echoed.
CREDENTIAL_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an AWS access key id", re.compile(r"(?<![A-Z0-9])(AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])")),
    ("a GitHub token", re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})")),
    ("a GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a Stripe secret key", re.compile(r"\b[sr]k_live_[A-Za-z0-9]{16,}")),
    ("a Google API key", re.compile(r"\bAIza[A-Za-z0-9_-]{35}")),
    ("a private key", re.compile(r"-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----")),
    ("a JSON Web Token", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{20,}")),
)
# scheme://user:PASSWORD@host, the password part checked once {{ ... }} templates are taken out.
URL_PASSWORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:([^/\s@]+)@")
TEMPLATE_RE = re.compile(r"\{\{.*?\}\}")
TEMPLATE_MARK = "\x00"


def credential_shape(value: str) -> str | None:
    """What kind of credential `value` holds written out, or None. A `{{ secret.NAME }}` (or
    any other template) standing for the password of a URL is no credential."""
    masked = TEMPLATE_RE.sub(TEMPLATE_MARK, value)
    for match in URL_PASSWORD_RE.finditer(masked):
        if match.group(1).replace(TEMPLATE_MARK, ""):
            return "a URL with a password (user:password@)"
    for what, pattern in CREDENTIAL_SHAPES:
        if pattern.search(masked):
            return what
    return None
