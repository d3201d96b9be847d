"""A connector's failure named for the user (services/lifecycle/host_calls.py): the host, the step,
and the exit code from where the site stands (4 before the lock, 6 on the previous release,
7 unknown); anything that is not a connection failure passes through unchanged."""

from __future__ import annotations

from deployctl.adapters.connector import ConnectionLost
from deployctl.errors import DeployError, ExitCode
from deployctl.services.lifecycle.host_calls import PREVIOUS, UNCHANGED, UNKNOWN, host_error, mapped, why


def test_lost_connection_names_host_and_step_with_the_site_exit_code():
    lost = ConnectionLost("web1:2222: SSH connection lost during `docker pull x`: EOFError: ")
    codes = {site: host_error("web1:2222", "pull", lost, site) for site in (UNCHANGED, PREVIOUS, UNKNOWN)}
    assert {site: e.exit_code for site, e in codes.items()} == {
        UNCHANGED: ExitCode.CONNECT, PREVIOUS: ExitCode.DEPLOY_FAILED, UNKNOWN: ExitCode.ROLLBACK_FAILED}
    assert codes[PREVIOUS].message == ("web1:2222: connection failed during pull: SSH connection lost during "
                                       "`docker pull x`: EOFError: ")
    assert "previous release is still serving" in codes[PREVIOUS].hint
    assert "uncertain" in codes[UNKNOWN].hint


def test_a_plain_oserror_keeps_its_type_in_the_message():
    error = host_error("h", "secrets", BrokenPipeError(32, "Broken pipe"), PREVIOUS)
    assert error.message == "h: connection failed during secrets: BrokenPipeError: [Errno 32] Broken pipe"


def test_other_errors_pass_through_unchanged():
    bug, expected = KeyError("x"), DeployError("h: migration exited 3")
    assert mapped("h", "migrate", bug, PREVIOUS) is bug
    assert mapped("h", "migrate", expected, PREVIOUS) is expected
    assert why(ConnectionLost("h: SSH connection lost")) == "h: SSH connection lost"


def test_a_full_disk_is_named_as_such_not_as_a_connection_failure():
    full = OSError(28, "No space left on device")
    error = host_error("localhost", "taking the lock", full, UNCHANGED)
    assert error.message == "localhost: no space left on the disk during taking the lock: OSError: [Errno 28] No space left on device"
    assert error.exit_code == ExitCode.CONNECT  # nothing changed: the same code as an unreachable host
    assert error.hint.startswith("free space on the host's disk under the state directory")
    assert "rerun once there is space" in error.hint
    assert host_error("h", "secrets", full, PREVIOUS).exit_code == ExitCode.DEPLOY_FAILED
