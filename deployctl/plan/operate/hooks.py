"""[hooks] as data (docs/hooks.md): where each hook runs in the transaction, what its
environment holds, what a rollout's outcome is called in it, and the rows `--dry-run` prints.
No I/O: services/operate/hooks.py runs them, adapters/process.py starts the process.

Hooks run on the machine running deployctl, never on a host, around the one rollout every
target shares (services/lifecycle/rollout.py), so they behave the same on local, ssh and swarm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from ...config.models import Hook, Hooks
from ..lifecycle import rollout as outcomes
from ..lifecycle.steps import PlannedStep

PRE_BUILD, PRE_DEPLOY, PRE_MIGRATE = "pre_build", "pre_deploy", "pre_migrate"
POST_DEPLOY, POST_ROLLBACK, ON_REVERT = "post_deploy", "post_rollback", "on_revert"
# on_revert's DEPLOYCTL_OUTCOME when the guard did NOT switch back: the previous release was
# recorded with another database schema (plan/data/schema.py); the new release still serves.
SCHEMA_BLOCKED = "revert-refused-schema"
PRE = frozenset({PRE_BUILD, PRE_DEPLOY, PRE_MIGRATE})  # a failure stops the command before anything changes

# Where each hook runs, in the transaction's named sequence (plan -> lock -> prepare ->
# migrate -> switch -> verify -> record -> guard -> retire -> unlock). Said by --dry-run
# and docs/hooks.md.
WHERE = {
    PRE_BUILD: "before any image is built (build, release)",
    PRE_DEPLOY: "after the preflight, BEFORE the lock is taken: a failure changes nothing (deploy, rollback)",
    PRE_MIGRATE: "under the lock, after prepare, just before the migrations run once (deploy with migrations)",
    POST_DEPLOY: "AFTER the lock is released, whatever the outcome (DEPLOYCTL_OUTCOME says which)",
    POST_ROLLBACK: "AFTER the lock is released, whatever the outcome (DEPLOYCTL_OUTCOME says which)",
    ON_REVERT: "AFTER the lock is released, when a host went back: a verify's or the guard's switch back, "
               "a canary's abort, a stopped rollout's revert (or such a switch back that failed: uncertain)",
}

# Outcomes (DEPLOYCTL_OUTCOME) of a whole command, from its hosts' outcomes.
SUCCEEDED, FAILED, REVERTED, UNCERTAIN, PARTIAL = "succeeded", "failed", "reverted", "uncertain", "partial"
_WENT_BACK = frozenset({outcomes.SWITCHED_BACK, outcomes.REVERTED, outcomes.ABORTED})

# What a hook inherits from deployctl's own environment: enough to find and run programs
# (and reach the network through a proxy). Nothing else: with secrets = "env", deployctl's
# environment holds every secret, and a hook gets only the ones it lists.
INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SHELL",
             "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
             "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@dataclass(frozen=True)
class HookContext:
    """What a hook is told about the command it runs around."""

    app: str
    env: str
    action: str  # build | deploy | rollback
    release: str = ""
    previous: str = ""
    revision: str = ""
    hosts: tuple[str, ...] = ()
    outcome: str = ""  # post_* and on_revert only

    def with_outcome(self, outcome: str, previous: str | None = None) -> "HookContext":
        from dataclasses import replace

        return replace(self, outcome=outcome, previous=self.previous if previous is None else previous)


def hook_environment(name: str, hook: Hook, context: HookContext, base: Mapping[str, str],
                     secrets: Mapping[str, str]) -> dict[str, str]:
    """The hook's whole environment: the INHERITED part of `base`, the DEPLOYCTL_* variables,
    and the values of the secrets it lists (only those). `secrets` holds at least those."""
    env = {key: base[key] for key in INHERITED if key in base}
    env.update({
        "DEPLOYCTL_HOOK": name,
        "DEPLOYCTL_ACTION": context.action,
        "DEPLOYCTL_APP": context.app,
        "DEPLOYCTL_ENV": context.env,
        "DEPLOYCTL_RELEASE": context.release,
        "DEPLOYCTL_PREVIOUS": context.previous,
        "DEPLOYCTL_REVISION": context.revision,
        "DEPLOYCTL_HOSTS": ",".join(context.hosts),
    })
    if name not in PRE:
        env["DEPLOYCTL_OUTCOME"] = context.outcome
    env.update({key: secrets[key] for key in hook.secrets})
    return env


def configured(hooks: Hooks, names: Iterable[str]) -> list[tuple[str, Hook]]:
    """(name, hook) of each of `names` that deploy.toml sets, in the order given."""
    return [(name, getattr(hooks, name)) for name in names if getattr(hooks, name) is not None]


def secret_names(hooks: Hooks) -> list[str]:
    """Every secret some hook lists (fetched with the command's other secrets, and masked)."""
    return list(dict.fromkeys(s for name in Hooks.model_fields for s in (getattr(hooks, name) or _NONE).secrets))


class _NoHook:
    secrets: Sequence[str] = ()


_NONE = _NoHook()


def rollout_outcome(host_outcomes: Iterable[str]) -> str:
    """DEPLOYCTL_OUTCOME of a deploy or rollback from its hosts' outcomes (plan/lifecycle/rollout.py):
    succeeded (every host on the release), uncertain (a host's state is unknown), reverted (a
    host went back and every host serves what it served before), partial (hosts now serve
    different releases), failed (nothing switched)."""
    values = set(host_outcomes)
    if values <= outcomes.DONE:
        return SUCCEEDED
    if outcomes.UNCERTAIN in values:
        return UNCERTAIN
    if values <= outcomes.AS_BEFORE:
        return REVERTED if values & _WENT_BACK else FAILED
    return PARTIAL


def went_back(host_outcomes: Iterable[str]) -> bool:
    """Whether on_revert fires: some host went back (or tried to, and is uncertain)."""
    return bool(set(host_outcomes) & (_WENT_BACK | {outcomes.UNCERTAIN}))


def hook_rows(hooks: Hooks, names: Sequence[str], *, enabled: bool = True) -> list[PlannedStep]:
    """What --dry-run says of the hooks a command would run: each with its argv (a hook's
    argv never holds a secret: they reach it by name, in its environment) and where it runs."""
    rows = []
    for name, hook in configured(hooks, names):
        if not enabled:
            rows.append(PlannedStep(f"hook {name}", "SKIPPED (--no-hooks)"))
            continue
        extra = f"; secrets in its environment: {', '.join(hook.secrets)}" if hook.secrets else ""
        rows.append(PlannedStep(f"hook {name}", f"{WHERE[name]} (timeout {hook.timeout:g}s{extra})",
                                tuple(hook.command)))
    return rows
