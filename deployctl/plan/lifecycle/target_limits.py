"""What a target cannot do yet, in one table: a feature a target lacks is refused by name,
before anything is touched (exit 2), rather than run differently or silently skipped.

Every refusal reads the same way (the feature as the user asked for it, the environment and
its target, why, what to do instead), and docs/swarm.md's "Not done yet" lists the same
entries (tests/unit/test_target_limits.py keeps the two in step). This machine's engine
and SSH hosts share one implementation of every feature, so only the Swarm has entries.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import UsageError


@dataclass(frozen=True)
class Missing:
    feature: str  # as the user asks for it: the key, the option or the command
    why: str
    instead: str  # the hint: what to do now


SWARM: dict[str, Missing] = {
    "jobs": Missing("scheduled jobs ([jobs] tables)", "a Swarm has no one-off container of a release for a job to run in",
                    "remove the [jobs] tables for this environment's config, or run them on an ssh or local "
                    "environment (docs/jobs.md, \"Swarm\")"),
    "stop_first": Missing("stop_first (services.NAME.stop_first)",
                          "each release's worker is a service started beside the live one",
                          "remove stop_first (the worker then runs beside the live one until the switch), or deploy "
                          "this worker to an ssh or local environment (docs/jobs.md)"),
    "backups": Missing("accessory backups (accessory backup, backup.schedule, rollout.backup_before_migrate, "
                       "rollback --restore-data)",
                       "an accessory's task runs on its pinned node, which deployctl does not reach by SSH, and a "
                       "Swarm release records no schema",
                       "docs/backups.md says how; on hosts (local, ssh) it works"),
    "drill": Missing("deployctl drill",
                     "its fault wrapper would be a service beside the live one, which the drill does not build "
                     "for a Swarm",
                     "drill an ssh or local environment that runs the same images (docs/release-safety.md, "
                     "\"Drills\")"),
    "shared_proxy": Missing("a shared proxy (environments.NAME.shared_proxy)",
                            "the global proxy publishes one app's port on every node",
                            "give each app its own proxy_port on the Swarm and route host names at a load balancer "
                            "in front of it (docs/proxy.md, \"Several apps on one host\")"),
}

LIMITS: dict[str, dict[str, Missing]] = {"swarm": SWARM}


def refuse(target: str, env_name: str, key: str, detail: str = "") -> None:
    """Raises the refusal of `key` (an entry of the table) when `target` lacks it. `detail`:
    what of the user's config asked for it (e.g. the service's name)."""
    missing = LIMITS.get(target, {}).get(key)
    if missing is None:
        return
    asked = f" (asked by {detail})" if detail else ""
    raise UsageError(f"{missing.feature} is not available on environments.{env_name} "
                     f"(target = \"{target}\") yet{asked}: {missing.why}", hint=missing.instead)
