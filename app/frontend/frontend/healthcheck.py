"""Docker HEALTHCHECK probe: `python -m frontend.healthcheck [PATH]`.

Python's standard library instead of curl, so the image needs no extra package.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def probe(path: str, port: str, timeout: float = 2.0) -> int:
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return probe(argv[0] if argv else "/healthz", os.environ.get("PORT", "8000"))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
