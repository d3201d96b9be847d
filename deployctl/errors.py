"""One hierarchy of expected failures, each carrying the exit code the CLI returns for it.

Anything that is not a DeployctlError is a bug and maps to ExitCode.UNEXPECTED.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Sequence


class ExitCode(IntEnum):
    """Exit codes are a public contract (README, Jenkins): never renumber."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    CONFIG = 3
    CONNECT = 4
    BUILD_OR_TEST = 5
    DEPLOY_FAILED = 6  # the previous release is still serving
    # The site's state is uncertain (a switch back did not finish), or a rollout left hosts on
    # different releases. The name predates that meaning: a rollback that failed cleanly is 6.
    ROLLBACK_FAILED = 7
    LOCK_HELD = 8
    # HTTPS: a certificate could not be obtained, renewed or installed (docs/tls.md). Every
    # host still serves the certificate it had; a deploy's release itself is live.
    CERTIFICATE = 9
    # `deployctl exec` could not start the command (ExecNotStarted); otherwise exec exits
    # with the command's own code. 125 as `docker run`/`docker exec` say their own failures.
    EXEC_NOT_STARTED = 125


class DeployctlError(Exception):
    exit_code: ExitCode = ExitCode.UNEXPECTED
    # Structured facts for `--json`'s error object (a stopped deploy's verdicts), beside the lines.
    details: dict | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def lines(self) -> list[str]:
        """What the user is shown: one line per problem, then the hint."""
        out = [self.message]
        if self.hint:
            out.append(f"hint: {self.hint}")
        return out


class UsageError(DeployctlError):
    exit_code = ExitCode.USAGE


class ConfigError(DeployctlError):
    """A deploy.toml (or secret source) problem; `problems` holds one line per finding."""

    exit_code = ExitCode.CONFIG

    def __init__(self, problems: Sequence[str], *, hint: str | None = None) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems), hint=hint)

    def lines(self) -> list[str]:
        return self.problems + ([f"hint: {self.hint}"] if self.hint else [])


class ConnectError(DeployctlError):
    """Cannot reach something we depend on: Docker engine, registry, SSH host, AWS."""

    exit_code = ExitCode.CONNECT


class BuildError(DeployctlError):
    exit_code = ExitCode.BUILD_OR_TEST


class TestsFailedError(DeployctlError):
    exit_code = ExitCode.BUILD_OR_TEST
    __test__ = False  # not a pytest test class despite the name


class DeployError(DeployctlError):
    """The deploy failed but the previous release is still serving."""

    exit_code = ExitCode.DEPLOY_FAILED


class HealthCheckError(DeployError):
    pass


class RollbackError(DeployctlError):
    """A rollback failed or was refused, and every host still serves the release it served
    before the command (nothing to clean up): exit 6, as a failed deploy. Until 2026-12-02 it
    was 7, which told on-call "uncertain" about a site that was fine (issue 14)."""

    exit_code = ExitCode.DEPLOY_FAILED


class UncertainError(DeployctlError):
    """What a host serves is not known (its switch back did not finish, or the connection
    went after the proxy may have been touched), or the hosts serve different releases.
    Exit 7: look before doing anything else."""

    exit_code = ExitCode.ROLLBACK_FAILED


class LockHeldError(DeployctlError):
    exit_code = ExitCode.LOCK_HELD


class RolloutError(DeployctlError):
    """A rollout across several hosts did not reach every host. `hosts` holds each host's
    outcome (plan/lifecycle/rollout.py); the exit code is the rollout's verdict: 6 when every host
    serves what it served before, 7 when any host is uncertain or the hosts now differ."""

    def __init__(self, message: str, *, exit_code: ExitCode, hosts: Sequence = (), hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code
        self.hosts = list(hosts)


class RemoteCommandError(DeployctlError):
    """A command on a host exited non-zero. The argv is kept for the report, never secrets."""

    exit_code = ExitCode.DEPLOY_FAILED

    def __init__(self, host: str, argv: Sequence[str], rc: int, stderr: str) -> None:
        self.host, self.argv, self.rc, self.stderr = host, list(argv), rc, stderr
        tail = stderr.strip().splitlines()[-5:]
        # The last line (usually the cause) on the first line: one-line reports show only it.
        first = f": {tail[-1].strip()}" if tail else ""
        detail = ("\n  " + "\n  ".join(tail)) if len(tail) > 1 else ""
        super().__init__(f"{host}: `{' '.join(self.argv)}` exited {rc}{first}{detail}")


class ExecNotStarted(DeployctlError):
    """`deployctl exec` could not even start the command: no live release, an unknown service
    or host, a container that is not running, a release whose env file is gone, a host that
    cannot be reached. Exit 125 (as `docker run` says its own failures), so it is never
    mistaken for an exit code of the command, which deployctl exec passes through."""

    exit_code = ExitCode.EXEC_NOT_STARTED
