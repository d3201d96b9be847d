"""deployctl's SSH adapter imports paramiko without `invoke` (adapters/ssh._paramiko): invoke
pulls asyncio and unittest.mock, most of paramiko's import time on a loaded machine, for an
ssh_config feature deployctl never uses. Run in a fresh interpreter: the test process may
have imported either already."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from deployctl.adapters import ssh
paramiko = ssh._paramiko()
client = paramiko.SSHClient()  # usable
print("invoke" in sys.modules, "asyncio" in sys.modules, "unittest.mock" in sys.modules)
"""


def test_paramiko_comes_without_invoke_and_what_it_pulls():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "False"]


def test_an_invoke_imported_before_is_left_alone():
    probe = "import invoke\n" + PROBE
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "True"
