"""A service's least-privilege and resource settings (`[services.X]` no_new_privileges,
cap_drop, read_only, memory, cpus, pids_limit) as the flags of `docker create` on hosts and of
`docker service create` on a Swarm. Pure: the argv functions in docker_commands.py and
swarm.py put these lists in place, and tests compare them.

Swarm's `docker service create` (Docker 20.10) has no `--security-opt`, so no_new_privileges
cannot reach a Swarm task: config/models.py refuses it when set explicitly and a Swarm
environment exists, and docs/swarm.md says so.
"""

from __future__ import annotations

from dataclasses import dataclass

# A read-only root still needs a scratch directory: gunicorn's worker heartbeat, Python's
# tempfile, most web servers' request buffering write to /tmp.
SCRATCH = "/tmp"


@dataclass(frozen=True)
class Hardening:
    no_new_privileges: bool = True  # setuid binaries cannot raise the process's privileges
    cap_drop: tuple[str, ...] = ()  # Linux capabilities taken away ("ALL" for every one)
    read_only: bool = False  # the container's root filesystem, with a tmpfs on SCRATCH
    memory: str | None = None  # docker's byte notation: "512m", "1g"
    cpus: float | None = None
    pids_limit: int | None = None

    def create_flags(self) -> list[str]:
        """For `docker create` / `docker run` on a host."""
        return [
            *(["--security-opt", "no-new-privileges"] if self.no_new_privileges else []),
            *[arg for cap in self.cap_drop for arg in ("--cap-drop", cap)],
            *(["--read-only", "--tmpfs", SCRATCH] if self.read_only else []),
            *(["--memory", self.memory] if self.memory else []),
            *(["--cpus", f"{self.cpus:g}"] if self.cpus else []),
            *(["--pids-limit", str(self.pids_limit)] if self.pids_limit else []),
        ]

    def swarm_flags(self) -> list[str]:
        """For `docker service create` (no no_new_privileges: Swarm has no flag for it)."""
        return [
            *[arg for cap in self.cap_drop for arg in ("--cap-drop", cap)],
            *(["--read-only", "--mount", f"type=tmpfs,destination={SCRATCH}"] if self.read_only else []),
            *(["--limit-memory", self.memory] if self.memory else []),
            *(["--limit-cpu", f"{self.cpus:g}"] if self.cpus else []),
            *(["--limit-pids", str(self.pids_limit)] if self.pids_limit else []),
        ]


def hardening_for(service) -> Hardening:  # type: ignore[no-untyped-def]
    """From a config.models.Service."""
    return Hardening(no_new_privileges=service.no_new_privileges, cap_drop=tuple(service.cap_drop),
                     read_only=service.read_only, memory=service.memory, cpus=service.cpus,
                     pids_limit=service.pids_limit)
