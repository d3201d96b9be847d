"""The Jenkinsfile against the real CLI and deploy.toml: every `deployctl` line is a valid
command line of the current CLI (expanded by a real shell with sample parameter values, then
parsed by deployctl's own click parser, types and required arguments included), every
credential is bound to a non-empty variable deployctl actually reads — and each command gets
the ones it needs — and the stages come in the documented order."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from deployctl.artifacts import DEFAULT_FILE
from deployctl.cli.app import build_app
from deployctl.cli.main import hoist_globals
from deployctl.config import load_config
from deployctl.services.deploy_inputs import secret_names
from deployctl.services.hosts import SSH_KEY_ENV

REPO = Path(__file__).resolve().parents[2]
JENKINSFILE = (REPO / "Jenkinsfile").read_text()
LOADED = load_config(REPO / "deploy.toml")
ORDER = ["Build", "Test", "Push", "Deploy to staging", "Deploy to production"]
# What Jenkins exposes to the shell: parameters and build variables, with sample values.
SAMPLE_ENVS = [
    {"ROLLBACK_ENV": "production", "ROLLBACK_TO": "", "BUILD_NUMBER": "42"},
    {"ROLLBACK_ENV": "staging", "ROLLBACK_TO": "20261127-101500-abc1234", "BUILD_NUMBER": "43"},
]
BINDING_VARIABLE = re.compile(r"\b(variable|keyFileVariable|usernameVariable|passwordVariable|passphraseVariable)\s*:\s*(['\"])(.*?)\2")


def _closing(text: str, start: int) -> int:
    """Index of the brace closing the one at `start` (quotes and // comments skipped)."""
    depth, i, quote = 0, start, None
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif text.startswith("//", i):
            i = text.index("\n", i)
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise AssertionError(f"unbalanced braces from offset {start}")


@dataclass
class Stage:
    name: str
    body: str

    @property
    def leaf(self) -> bool:
        return "steps {" in self.body and not re.search(r"\bstage\(", self.body)


def stages(text: str = JENKINSFILE) -> list[Stage]:
    found = []
    for match in re.finditer(r"\bstage\('([^']+)'\)\s*\{", text):
        found.append(Stage(match.group(1), text[match.end() - 1:_closing(text, match.end() - 1) + 1]))
    return found


def sh_commands(text: str) -> list[str]:
    """Every sh step; each must be a single-quoted one-liner, so none escapes the checks."""
    code = re.sub(r"(^|\s)//.*$", "", text, flags=re.M)  # comments may mention sh
    steps = re.findall(r"\bsh\b[ (]", code)
    commands = re.findall(r"\bsh '([^'\n]*)'", code)
    assert len(commands) == len(steps), "every sh step must be written sh '...' (single-quoted, one line)"
    return commands


def bindings(text: str) -> list[tuple[str, dict[str, str]]]:
    """(binding type, {attribute: variable name}) for every withCredentials binding."""
    out = []
    for block in re.findall(r"withCredentials\(\[(.*?)\]\)\s*\{", text, re.S):
        for kind, args in re.findall(r"(\w+)\(([^()]*)\)", block):
            out.append((kind, {key: value for key, _, value in BINDING_VARIABLE.findall(args)}))
    return out


def shell_argv(command: str, environ: dict[str, str]) -> list[str]:
    """The argv a real shell gives `deployctl` for this line (deployctl is a function here)."""
    assert re.fullmatch(r"deployctl [^;&|<>`\n]*", command) and "$(" not in command, \
        f"a stage may only call deployctl, one simple command: {command!r}"
    script = "deployctl() { printf '%s\\0' \"$@\"; }\n" + command
    done = subprocess.run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin", **environ},
                          capture_output=True, timeout=30, check=True)
    return done.stdout.decode().split("\0")[:-1]


def parse(argv: list[str]) -> tuple[str, dict]:
    """Parses argv with deployctl's own click command tree, exactly as `main` would, without
    running anything. Returns the command path and the leaf's parameter values; raises
    click's UsageError for an unknown command, an unknown option or a bad value."""
    command, ctx, path = build_app(), None, []
    args = hoist_globals(argv)
    while True:
        ctx = command.make_context(path[-1] if path else "deployctl", list(args), parent=ctx)
        if not hasattr(command, "resolve_command"):
            return " ".join(path), ctx.params
        rest = [*(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])), *ctx.args]
        name, command, args = command.resolve_command(ctx, rest)
        path.append(name)


def names_deployctl_reads() -> set[str]:
    config = LOADED.config
    names = {config.test_database.password_secret, SSH_KEY_ENV}
    if config.registry:
        names.add(config.registry.password_secret)
    for env_name in config.environments:
        names.update(secret_names(LOADED, env_name))
    return names


def test_the_checker_fails_on_an_unknown_verb_option_or_value():
    from deployctl.cli.app import click_exceptions

    UsageError = click_exceptions().UsageError
    assert parse(["deploy", "--env", "staging", "--json"])[0] == "deploy"
    for bad in (["deplyo"], ["deploy", "--enviroment", "x"], ["logs", "--lines", "many"], ["accessory", "boot"]):
        with pytest.raises(UsageError):
            parse(bad)
    with pytest.raises(AssertionError):
        shell_argv("deployctl build && rm -rf /tmp/x", {})


def test_every_deployctl_line_is_a_valid_command_of_the_current_cli():
    commands = sh_commands(JENKINSFILE)
    assert len(commands) >= 6
    seen = set()
    for command in commands:
        for environ in SAMPLE_ENVS:
            argv = shell_argv(command, environ)
            verb, params = parse(argv)
            seen.add(verb)
            if "env" in params and params["env"] is not None:
                LOADED.environment(params["env"])  # an environment deploy.toml defines
            if verb == "rollback":
                assert params["to"] == (environ["ROLLBACK_TO"] or None)
                assert params["env"] == environ["ROLLBACK_ENV"]
    assert seen == {"build", "test", "push", "deploy", "rollback"}


def test_every_credential_is_bound_to_a_name_deployctl_reads():
    found = bindings(JENKINSFILE)
    assert found
    reads = names_deployctl_reads()
    for kind, variables in found:
        assert kind in {"string", "sshUserPrivateKey", "file", "usernamePassword"}, kind
        assert variables, f"{kind} binding without a variable"
        for attribute, name in variables.items():
            assert name.strip(), f"{kind} binds {attribute} to an empty name"
            assert name in reads, f"{kind} binds {attribute}={name!r}, which deployctl never reads"


def test_each_command_gets_the_credentials_it_needs():
    """Per stage: the secrets of an `env`-sourced environment, the registry password where
    images are pushed or pulled with it, the SSH key for ssh targets, the test DB password."""
    config = LOADED.config
    for stage in (s for s in stages() if s.leaf):
        bound = {name for _, variables in bindings(stage.body) for name in variables.values()}
        for command in sh_commands(stage.body):
            verb, params = parse(shell_argv(command, SAMPLE_ENVS[0]))
            needed: set[str] = set()
            if verb == "test":
                needed.add(config.test_database.password_secret)
            if verb == "push" and config.registry.username:
                needed.add(config.registry.password_secret)
            if verb in ("deploy", "rollback"):
                environment = LOADED.environment(params["env"])
                if environment.target == "ssh":
                    needed.add(SSH_KEY_ENV)
                if verb == "deploy" and environment.secrets == "env":
                    needed.update(secret_names(LOADED, params["env"]))
                    if environment.target == "ssh" and config.registry.username:
                        needed.add(config.registry.password_secret)
            assert needed <= bound, f"stage {stage.name!r}: {command!r} lacks {sorted(needed - bound)}"


def test_stages_come_in_order_and_production_waits_for_main_and_an_approval():
    names = [s.name for s in stages()]
    positions = [names.index(n) for n in ORDER]
    assert positions == sorted(positions), names
    production = next(s for s in stages() if s.name == "Deploy to production")
    assert "input {" in production.body and "branch 'main'" in production.body
    assert "beforeInput true" in production.body
    rollback = next(s for s in stages() if s.name == "Rollback")
    assert "params.ROLLBACK" in rollback.body
    for parameter in ("ROLLBACK", "ROLLBACK_ENV", "ROLLBACK_TO"):
        assert re.search(rf"name: '{parameter}'", JENKINSFILE), parameter


def test_pipeline_options_reports_and_the_stashed_artifacts_file():
    for needle in ("disableConcurrentBuilds()", "timestamps()", "githubPush()"):
        assert needle in JENKINSFILE, needle
    test_stage = next(s for s in stages() if s.name == "Test")
    assert "junit testResults: 'reports/*/junit.xml'" in test_stage.body
    assert "parser: 'COBERTURA', pattern: 'reports/*/coverage.xml'" in test_stage.body
    assert "archiveArtifacts artifacts: 'reports/*/htmlcov/**'" in test_stage.body
    stashes = re.findall(r"stash name: '(\w+)', includes: '([^']+)'", JENKINSFILE)
    assert stashes and all(includes == str(DEFAULT_FILE) for _, includes in stashes)
    stashed = {name for name, _ in stashes}
    for stage in (s for s in stages() if s.leaf and s.name not in ("Build", "Rollback")):
        assert re.search(r"unstash '(\w+)'", stage.body).group(1) in stashed, stage.name
