"""Running [hooks] (docs/hooks.md) around the one rollout every target shares.

A `pre_*` hook that fails (or times out) stops the command before anything changes: exit 6
for deploy and rollback (pre_deploy runs before the lock is taken; pre_migrate under it,
before the migrations), 5 for build. A `post_*` or `on_revert` hook that fails is a warning:
the command's exit code stays what the rollout made it. Each hook is a step (`hook NAME`)
in the event stream; its output is shown as progress lines, passed through the secret
redactor, and the last lines are repeated with a failure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from ...config import LoadedConfig
from ...config.models import Hooks
from ...errors import BuildError, DeployError
from ...events import Emit, Message, StepProgress, StepSkipped, Timer
from ...plan.operate import hooks as plan
from ...plan.operate.hooks import HookContext
from ...secrets import Secret, redactor

TAIL = 20  # output lines repeated with a failed hook


class HookFailed(DeployError):
    """A pre_deploy or pre_migrate hook failed: nothing was changed (exit 6)."""


class BuildHookFailed(BuildError):
    """A pre_build hook failed: nothing was built (exit 5)."""


class HookRunner:
    """The configured hooks of one command. `enabled=False` (--no-hooks) skips them all, each
    said as a warning where it would have run."""

    def __init__(self, hooks: Hooks, emit: Emit, *, root: Path, enabled: bool = True,
                 secrets: Mapping[str, Secret] | None = None, base: Mapping[str, str] | None = None,
                 stopped: Callable[[], bool] = lambda: False) -> None:
        self.hooks, self.emit, self.root, self.enabled = hooks, emit, root, enabled
        self.secrets = dict(secrets or {})
        self.base = os.environ if base is None else base
        self.stopped = stopped

    @classmethod
    def for_config(cls, loaded: LoadedConfig, emit: Emit, *, enabled: bool = True,
                   secrets: Mapping[str, Secret] | None = None,
                   stopped: Callable[[], bool] = lambda: False) -> "HookRunner":
        return cls(loaded.config.hooks, emit, root=loaded.root, enabled=enabled, secrets=secrets, stopped=stopped)

    def has(self, name: str) -> bool:
        return getattr(self.hooks, name) is not None

    def run(self, name: str, context: HookContext) -> bool:
        """Runs hook `name` (when configured). True when it ran and exited 0 (or is not set).
        A pre_* failure raises (HookFailed, BuildHookFailed); a post_* failure warns."""
        hook = getattr(self.hooks, name)
        if hook is None:
            return True
        step = f"hook {name}"
        if not self.enabled:
            self.emit(StepSkipped(step, "--no-hooks"))
            self.emit(Message(f"HOOK {name} SKIPPED (--no-hooks): {' '.join(hook.command)} did not run",
                              level="warning"))
            return True
        from ...adapters.process import run_group

        timer = Timer(self.emit, step, detail=" ".join(hook.command))
        lines: list[str] = []
        missing = [s for s in hook.secrets if s not in self.secrets]
        if missing:  # the commands fetch every hook's secrets first; a library caller may not have
            return self._failed(name, context, timer, f"not run: its secrets were not fetched ({', '.join(missing)})",
                                ())
        values = {key: self.secrets[key].reveal() for key in hook.secrets}
        environment = plan.hook_environment(name, hook, context, self.base, values)

        def on_line(line: str) -> None:
            line = redactor(line)
            lines.append(line)
            self.emit(StepProgress(step, line))

        try:
            status, why = run_group(hook.command, cwd=self.root, environment=environment, on_line=on_line,
                                    timeout=hook.timeout, stopped=self.stopped)
        except BaseException as exc:  # an interrupt while it ran: its process group is gone
            timer.failed(f"interrupted ({type(exc).__name__}); its process group was killed")
            raise
        if status == 0 and not why:
            timer.done()
            return True
        if why == "timeout":
            error = f"killed after its timeout of {hook.timeout:g}s (its whole process group)"
        elif why == "stopped":
            error = "killed (its whole process group): the command was interrupted"
        elif why:
            error = why
        elif status < 0:  # ended by a signal it did not handle (subprocess's negative status)
            error = f"killed by {_signal_name(-status)}"
        else:
            error = f"exited {status}"
        return self._failed(name, context, timer, error, tuple(lines[-TAIL:]))

    def _failed(self, name: str, context: HookContext, timer: Timer, error: str, tail: tuple[str, ...]) -> bool:
        """A pre_* hook's failure raises; a post_* one is a warning (returns False)."""
        hook = getattr(self.hooks, name)
        timer.failed(error, tail)
        if name in plan.PRE:
            shown = ("\n  " + "\n  ".join(tail)) if tail else ""
            cls = BuildHookFailed if name == plan.PRE_BUILD else HookFailed
            done = ("no migration ran and nothing was switched: the previous release still serves"
                    if name == plan.PRE_MIGRATE else f"nothing was changed: hooks.{name} runs "
                                                     f"{plan.WHERE[name].split(':')[0]}")
            raise cls(f"hook {name} ({' '.join(hook.command)}) {error}{shown}",
                      hint=f"{done}; fix it, or pass --no-hooks to skip every hook")
        self.emit(Message(f"hook {name} {error}: the {context.action} itself is not affected (its outcome: "
                          f"{context.outcome or 'n/a'})", level="warning"))
        return False


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def post_rollout(runner: HookRunner | None, context: HookContext, host_outcomes: Sequence[str], *,
                 post: str) -> None:
    """After the rollout (its locks released): on_revert when a host went back, then `post`
    (post_deploy, post_rollback) with the rollout's outcome. Never raises for a hook."""
    if runner is None:
        return
    ctx = context.with_outcome(plan.rollout_outcome(host_outcomes))
    if plan.went_back(host_outcomes):
        runner.run(plan.ON_REVERT, ctx)
    runner.run(post, ctx)


def previous_of(values: Iterable[str | None]) -> str:
    """DEPLOYCTL_PREVIOUS: the release the hosts served (several, comma-separated, when they
    differ; empty on a first deploy)."""
    return ",".join(dict.fromkeys(v for v in values if v))
