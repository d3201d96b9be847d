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
from deployctl.services.lifecycle.deploy_inputs import secret_names
from deployctl.services.hosts import SSH_KEY_ENV
from deployctl.services.env import Env

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
        names.update(secret_names(Env.resolve(LOADED, env_name)))
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
                    needed.update(secret_names(Env.resolve(LOADED, params["env"])))
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


# -- which branches get which credentials (security review, item 11) ------------------------

# The one binding every branch gets: the CI test database (a user that can only create and
# drop the suites' throwaway databases), because branches and pull requests must run the tests.
ALL_BRANCH_CREDENTIALS = {"Test": {"usersapp-ci-test-db-password"}}


@dataclass(frozen=True)
class Build:
    """What a `when` can see: a Multibranch Pipeline sets BRANCH_NAME (and GIT_BRANCH to the
    same name); a Pipeline job from SCM sets only GIT_BRANCH, as origin/<branch>."""
    branch_name: str | None
    git_branch: str
    rollback: bool


# `expression { ... }` bodies the evaluator knows; an unknown one fails the test rather than
# being guessed at.
EXPRESSIONS = {
    "params.ROLLBACK": lambda build: build.rollback,
    "env.GIT_BRANCH == 'origin/main'": lambda build: build.git_branch == "origin/main",
}
MAIN_BUILDS = [Build(name, git, rollback) for name, git in (("main", "main"), (None, "origin/main"))
               for rollback in (False, True)]
OTHER_BUILDS = [Build(name, git, rollback)
                for name, git in (("feature/x", "feature/x"), ("PR-7", "PR-7"), (None, "origin/feature/x"),
                                  ("mainline", "mainline"), (None, "origin/main-old"))
                for rollback in (False, True)]


def _word(text: str, i: int) -> tuple[str, int]:
    match = re.compile(r"[\s;]*(\w+)").match(text, i)
    assert match, f"cannot read a when condition at {text[i:i + 40]!r}"
    return match.group(1), match.end()


def _block(text: str, i: int) -> tuple[str, int]:
    start = text.index("{", i)
    assert not text[i:start].strip(), f"expected {{ at {text[i:i + 40]!r}"
    end = _closing(text, start)
    return text[start + 1:end], end + 1


def evaluate_when(text: str, build: Build) -> bool:
    """A declarative `when` body: every condition must hold (as Jenkins reads it)."""
    text = re.sub(r"//[^\n]*", "", text)
    results, i = [], 0
    while text[i:].strip(" \t\n;"):
        word, i = _word(text, i)
        if word == "branch":
            match = re.compile(r"\s*'([^']*)'").match(text, i)
            assert match, "branch takes one quoted pattern"
            i = match.end()
            # Jenkins' branch condition: an Ant-style pattern against BRANCH_NAME (unset: false)
            results.append(build.branch_name is not None
                           and re.fullmatch(re.escape(match.group(1)).replace(r"\*", ".*"), build.branch_name) is not None)
        elif word in ("beforeInput", "beforeAgent", "beforeOptions"):
            _, i = _word(text, i)  # when it is evaluated, not whether it holds
        elif word == "expression":
            body, i = _block(text, i)
            assert body.strip() in EXPRESSIONS, f"unknown expression {{ {body.strip()} }}: teach EXPRESSIONS"
            results.append(EXPRESSIONS[body.strip()](build))
        elif word in ("not", "allOf", "anyOf"):
            body, i = _block(text, i)
            if word == "not":
                results.append(not evaluate_when(body, build))
            else:
                parts = [evaluate_when(part, build) for part in _conditions(body)]
                results.append(all(parts) if word == "allOf" else any(parts))
        else:
            raise AssertionError(f"unknown when condition {word!r}: teach evaluate_when")
    return all(results)


def _conditions(text: str) -> list[str]:
    """The conditions listed in an allOf/anyOf body, one text each."""
    parts, i = [], 0
    while text[i:].strip(" \t\n;"):
        start = i
        word, i = _word(text, i)
        if word == "branch":
            i = re.compile(r"\s*'[^']*'").match(text, i).end()
        else:
            _, i = _block(text, i)
        parts.append(text[start:i])
    return parts


def stage_spans(text: str = JENKINSFILE) -> list[tuple[str, int, int, str | None]]:
    """(name, start, end, its own `when` body or None) for every stage, nested ones included."""
    spans = []
    for match in re.finditer(r"\bstage\('([^']+)'\)\s*\{", text):
        start = match.end() - 1
        end = _closing(text, start)
        body = text[start:end + 1]
        nested = re.search(r"\bstages\s*\{", body)
        own = body[:nested.start()] if nested else body  # a stage's when precedes its stages
        when = re.search(r"\bwhen\s*\{", own)
        spans.append((match.group(1), start, end,
                      text[start + when.end():start + _closing(body, when.end() - 1)] if when else None))
    return spans


def credential_sites(text: str = JENKINSFILE) -> list[tuple[int, list[str]]]:
    """(offset, credential ids) of every withCredentials block."""
    return [(m.start(), [cid for _, cid in re.findall(r"credentialsId:\s*(['\"])(.*?)\1", m.group(1))])
            for m in re.finditer(r"withCredentials\(\[(.*?)\]\)\s*\{", text, re.S)]


def runs(text: str, offset: int, build: Build) -> bool:
    """Whether the code at `offset` runs for `build`: every enclosing stage's when holds."""
    return all(evaluate_when(when, build) for _, start, end, when in stage_spans(text)
               if start < offset < end and when is not None)


def branch_leaks(text: str) -> list[str]:
    """Each credential some branch other than main would get (outside ALL_BRANCH_CREDENTIALS)."""
    leaks = []
    for offset, ids in credential_sites(text):
        stage = [name for name, start, end, _ in stage_spans(text) if start < offset < end][-1]
        if set(ids) <= ALL_BRANCH_CREDENTIALS.get(stage, set()):
            continue
        for build in OTHER_BUILDS:
            if runs(text, offset, build):
                leaks.append(f"{stage}: {ids} on {build}")
    return leaks


def test_the_when_evaluator_reads_the_conditions_as_jenkins_does():
    feature, main, scm_main = Build("feature/x", "feature/x", False), MAIN_BUILDS[0], MAIN_BUILDS[2]
    assert evaluate_when("branch 'main'", main) and not evaluate_when("branch 'main'", feature)
    assert not evaluate_when("branch 'main'", scm_main)  # no BRANCH_NAME outside Multibranch
    assert evaluate_when("anyOf { branch 'main'; expression { env.GIT_BRANCH == 'origin/main' } }", scm_main)
    assert evaluate_when("beforeInput true\nallOf { not { expression { params.ROLLBACK } }\nbranch 'main' }", main)
    assert not evaluate_when("allOf { expression { params.ROLLBACK }; branch 'main' }", main)
    assert evaluate_when("branch 'feature/*'", feature)
    with pytest.raises(AssertionError, match="unknown expression"):
        evaluate_when("expression { return true }", main)


def test_no_branch_but_main_gets_a_deploy_or_registry_credential():
    """Every withCredentials (but the CI test database's) sits under a `when` that no other
    branch, pull request or SCM job on another branch passes, and that main does pass."""
    assert not branch_leaks(JENKINSFILE), branch_leaks(JENKINSFILE)
    sites = credential_sites()
    assert len(sites) >= 5
    for offset, ids in sites:
        assert any(runs(JENKINSFILE, offset, build) for build in MAIN_BUILDS), f"{ids} never runs on main"
    # The checker catches the pipeline the security review found: staging on every branch.
    unguarded = JENKINSFILE.replace(
        "when { anyOf { branch 'main'; expression { env.GIT_BRANCH == 'origin/main' } } }\n                    steps {\n"
        "                        unstash 'artifacts'\n                        withCredentials([\n", "steps {\n"
        "                        unstash 'artifacts'\n                        withCredentials([\n", 1)
    assert unguarded != JENKINSFILE and any("Deploy to staging" in leak for leak in branch_leaks(unguarded))


def test_each_credential_is_named_for_its_stage():
    """No literal credential id is bound in two stages (the registry password was shared by
    Push and staging), and a deploy stage's ids name its environment; Rollback picks the
    chosen environment's SSH key by name."""
    owner: dict[str, str] = {}
    for offset, ids in credential_sites():
        stage = [name for name, start, end, _ in stage_spans() if start < offset < end][-1]
        for cid in ids:
            if "${" in cid:
                assert stage == "Rollback" and cid == "usersapp-${params.ROLLBACK_ENV}-ssh", cid
                continue
            assert owner.setdefault(cid, stage) == stage, f"{cid} is bound in {owner[cid]} and {stage}"
            if stage.startswith("Deploy to "):
                assert f"-{stage.removeprefix('Deploy to ')}-" in cid, f"{stage} binds {cid}"


def test_the_approval_and_rollback_say_they_need_a_trusted_jenkinsfile():
    assert "Pipeline script from SCM" in JENKINSFILE and "shared library" in JENKINSFILE
    for name in ("Deploy to production", "Rollback"):
        start = JENKINSFILE.index(f"stage('{name}')")
        comment = JENKINSFILE[JENKINSFILE.rindex("\n\n", 0, start):start]
        assert "trusted Jenkinsfile" in comment, name
