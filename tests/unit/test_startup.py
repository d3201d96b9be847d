"""`deployctl --help` must not import the heavy libraries: they cost most of its start-up."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("docker", "paramiko", "boto3", "botocore", "pydantic")


def test_help_imports_no_heavy_library():
    code = (
        "import sys\n"
        "from deployctl.cli.main import main\n"
        "rc = main(['--help'])\n"
        f"print(rc, sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 []"
