"""Start-up: `deployctl --help` must not import the heavy libraries (they cost most of its
start-up) nor any verb's module; `deployctl rollback` on a local environment imports its own
verb only, and none of boto3, paramiko, the Docker SDK or rich (not on a TTY)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest


HEAVY = ("docker", "paramiko", "boto3", "botocore", "pydantic")
REPO = Path(__file__).resolve().parents[2]
VERB_MODULES = [f"deployctl.cli.{m}" for m in ("accessory", "build", "config", "deploy", "hosts", "infra", "init",
                                                 "inspect", "push", "release", "stats", "swarm", "test")]


def _imported_after(code: str, env: dict[str, str] | None = None, cwd: str | None = None) -> list[str]:
    """Runs `code` in a fresh interpreter; the last line it prints is the list of modules."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=env, cwd=cwd)
    assert done.stdout.strip(), done.stderr
    return eval(done.stdout.strip().splitlines()[-1])  # noqa: S307 - our own subprocess's repr of a list


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


def test_help_imports_no_verb_module():
    """The root --help lists the verbs from cli/app.VERBS: none of their modules (nor the
    renderers and events a command needs) is imported for it."""
    modules = _imported_after(
        "import sys\n"
        "from deployctl.cli.main import main\n"
        "main(['--help'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('deployctl.')))\n"
    )
    assert not set(modules) & {*VERB_MODULES, "deployctl.cli.context", "deployctl.cli.render",
                               "deployctl.events"}, modules


def test_root_help_is_the_help_of_every_verb_imported():
    """VERBS' help texts are the verbs' own: the root --help built without importing a verb
    reads exactly as the one built from every verb's module."""
    import typer

    from deployctl.cli import app as cli_app

    full = cli_app.build_app()
    lazy = cli_app.build_app(["--help"])
    assert list(lazy.commands) == list(full.commands) == list(cli_app.VERBS)
    for name, command in full.commands.items():
        assert cli_app.VERBS[name][2] == (command.help or "").split("\n\n")[0], name
    for width in (60, 80, 120):
        texts = []
        for group in (full, lazy):
            with typer.Context(group, info_name="deployctl", terminal_width=width) as ctx:
                texts.append(group.get_help(ctx))
        assert texts[0] == texts[1]


@pytest.mark.parametrize("argv, verb", [
    (["rollback", "--env", "local"], "rollback"),
    (["--config", "x.toml", "--json", "status"], "status"),
    (["-c", "x.toml", "--debug", "accessory", "boot", "db"], "accessory"),
    (["--config=x.toml", "deploy"], "deploy"),
    (["--help"], None), (["rollbak"], None), ([], None), (["--version"], None),
])
def test_the_invoked_verb_is_read_from_the_hoisted_argv(argv, verb):
    from deployctl.cli import app as cli_app

    assert cli_app.invoked_verb(argv) == verb


ENGINE_DOWN = "echo 'Cannot connect to the Docker daemon' >&2\nexit 1\n"
ENGINE_EMPTY = '[ "$1" = version ] && echo 20.10.24\nexit 0\n'  # answers, and runs nothing of the app


def _with_engine(tmp_path: Path, argv: list[str], engine: str = ENGINE_DOWN) -> list[str]:
    """The modules `deployctl ARGV` imported, run with a `docker` on PATH that acts as
    `engine` (down: the command goes its whole way to the first docker call)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    docker = fake / "docker"
    docker.write_text(f"#!/bin/sh\n{engine}")
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return _imported_after(
        "import sys\n"
        "from deployctl.cli.main import main\n"
        f"rc = main({argv!r})\n"
        "print(rc, file=sys.stderr)\n"
        "print(sorted(sys.modules))\n",
        env=env, cwd=str(tmp_path),
    )


def test_a_local_rollback_imports_its_verb_only_and_no_remote_or_tty_library(tmp_path):
    """The whole `deployctl rollback --env local` path: no boto3, paramiko, Docker SDK, rich
    (stdout is no TTY), and no other verb's module."""
    modules = _with_engine(tmp_path, ["rollback", "--env", "local", "--config", str(REPO / "deploy.toml")])
    assert "deployctl.services.lifecycle.rollback" in modules  # the path was taken
    heavy = {"boto3", "botocore", "paramiko", "docker", "rich"}
    assert not {m.split(".")[0] for m in modules} & heavy, sorted({m.split(".")[0] for m in modules} & heavy)
    others = set(VERB_MODULES) - {"deployctl.cli.deploy", "deployctl.cli.config"}  # config: the --env option
    assert not set(modules) & others, sorted(set(modules) & others)
    # Parts a local rollback never uses: AWS names (its hook secrets come from the
    # environment), the canary and the access log it reads (a rollback has no canary).
    unused = {"deployctl.plan.cloud.aws", "deployctl.plan.judging.canary", "deployctl.plan.judging.access_log", "deployctl.adapters.aws",
              "deployctl.adapters.ssh", *RESTORE_AND_DEPLOY_ONLY}
    assert not set(modules) & unused, sorted(set(modules) & unused)


# What only `rollback --restore-data` (the backups and their stores) or a deploy (its images,
# the registry login, the build plan) needs: a plain local rollback imports none of them.
RESTORE_AND_DEPLOY_ONLY = {"deployctl.services.data.release_schema", "deployctl.services.data.backups",
                           "deployctl.plan.data.backups", "deployctl.adapters.backup_store",
                           "deployctl.services.pipeline.registry_auth", "deployctl.services.lifecycle.release_images",
                           "deployctl.artifacts", "deployctl.plan.pipeline.build", "deployctl.plan.stats"}


def test_a_warm_local_rollback_imports_no_remote_library_on_its_whole_way():
    """Past the first docker call too (the test above stops there): a warm rollback of a
    local environment (the standby's flag, the verify, the record, its own configuration
    written, retire and prune, the unlock) on the scripted host of the unit tests
    (tests/support/fake_host.py) imports none of boto3, botocore, paramiko or the Docker SDK,
    nor what only a restore or a deploy needs. In a fresh interpreter: the deploys that set
    the site up come first, and what the rollback imported is what appeared after them."""
    code = (
        "import sys\n"
        "from tests.support.virtual_time import virtual_time\n"
        "from tests.unit import test_lifecycle_rules as rules\n"
        "class Patch:\n"
        "    def setattr(self, owner, name, value): setattr(owner, name, value)\n"
        "virtual_time(Patch())\n"
        "site, host = next(rules.local_site('warm'))\n"
        "site.r2 = site.deploy()\n"
        "before = set(sys.modules)\n"
        "[outcome] = site.rollback()\n"
        "assert outcome.outcome == 'succeeded' and host.serving() == site.r1, outcome\n"
        "assert any(call == 'put_file' and '/proxy/standby-' in text for call, text in host.calls), 'no flag'\n"
        "print(sorted(sys.modules), file=sys.stderr)\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=str(REPO),
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                                                        os.environ.get("PYTHONPATH")]))})
    assert done.returncode == 0, done.stderr[-3000:]
    during = eval(done.stdout.strip().splitlines()[-1])  # noqa: S307 - our own subprocess's repr of a list
    everything = eval(done.stderr.strip().splitlines()[-1])  # noqa: S307
    heavy = {"boto3", "botocore", "paramiko", "docker"}
    assert not {m.split(".")[0] for m in everything} & heavy, sorted({m.split(".")[0] for m in everything} & heavy)
    assert not set(during) & {*RESTORE_AND_DEPLOY_ONLY, "deployctl.adapters.ssh", "deployctl.adapters.aws"}, during


def test_status_in_plain_text_does_not_import_rich(tmp_path):
    """`status` prints its lines through AppContext.out: off a TTY, without Rich."""
    modules = _with_engine(tmp_path, ["status", "--env", "local", "--config", str(REPO / "deploy.toml")],
                           ENGINE_EMPTY)
    assert "deployctl.services.inspect" in modules  # the path was taken
    assert not [m for m in modules if m.split(".")[0] == "rich"]


@pytest.mark.parametrize("markup", [
    "[cyan]a.b[/] = 1", r"\[not a tag]", r"\\[bold]x[/]", r"\\\[lit]", "list [] and {} and [1, 2]",
    "[bold]host[/]  [dim]x[/dim]", "a [b=c]d[/b] e", "[#ff0000]red[/]", "arr[0] = [x]", "[@click]x[/]",
    r"path\\ end", "[ok] done", "[]", "[A]upper", "",
])
def test_plain_text_reads_as_rich_prints_it_without_styles(markup):
    from rich.text import Text

    from deployctl.cli.render import plain_text

    assert plain_text(markup) == Text.from_markup(markup).plain
