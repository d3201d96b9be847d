"""The Typer application: global options, and one module per verb registered on it.

Verb modules import their services lazily inside the command function so that
`deployctl --help` never pays for docker, paramiko, boto3 or pydantic. And only the verb
on the command line is imported at all (`build_app(args)`): `deployctl rollback` does not
import the modules of infra, accessory, stats, init... nor their Typer signatures. The
root `--help` lists every verb from VERBS (its help's first paragraph) without importing
one; tests/unit/test_startup.py holds VERBS to the verbs' own docstrings.
"""

from __future__ import annotations

from importlib import import_module
from typing import Annotated, Optional, Sequence

import typer

from .. import __version__

# verb -> (module under deployctl.cli, its command function or Typer app, its help's first
# paragraph: what the root --help shows). In the order the root --help lists them (Typer's:
# the verbs, then the groups).
VERBS: dict[str, tuple[str, str, str]] = {
    "init": ("init", "init",
             "Write a deploy.toml for an existing project (from docker-compose.yml or its Dockerfiles)."),
    "config": ("config", "config",
               "Print the resolved configuration of an environment (secret values shown as ***)."),
    "build": ("build", "build",
              "Build the images deploy.toml names, tagged with the git revision, and record them."),
    "test": ("test", "test",
             "Run each service's tests: pytest in its test-stage image (test_target), or its [test]\ncommand "
             "in the shipped image; write JUnit and coverage reports under reports/<service>/."),
    "push": ("push", "push",
             "Push the images of the last build to the registry in deploy.toml and record their digests."),
    "deploy": ("deploy", "deploy",
               "Deploy a release: zero-downtime switch behind nginx, the old release kept for rollback."),
    "rollback": ("deploy", "rollback",
                 "Switch back to an earlier release still on the hosts: no build, no registry."),
    "drill": ("drill", "drill",
              "Deploy a release made from the live one that fails on purpose; record how fast the safety nets\n"
              "detected it and restored the live release."),
    "release": ("release", "release",
                "Build, test, push and deploy in one go; stops at the first failed stage with its exit code."),
    "status": ("inspect", "status",
               "Per host: the live release, its revision and age, container health, the lock holder."),
    "releases": ("inspect", "releases", "The release history on each host, newest first."),
    "logs": ("inspect", "logs", "The live release's container logs (secret values masked)."),
    "exec": ("exec", "exec_command",
             "Run a command in the live release's container (or a one-off one); exits with its code."),
    "stats": ("stats", "stats", "Deployment frequency, lead time, change failure rate and time to restore."),
    "maintenance": ("maintenance", "maintenance",
                    "Maintenance mode on or off: 503 with Retry-After and a page while the app keeps running."),
    "remove": ("remove", "remove",
               "Take the app's environment off its hosts: every release's containers, its proxy, networks, certificates "
               "and state."),
    "scale": ("swarm", "scale",
              "Change the live release's task count on a Swarm (no new release), waiting until every task "
              "is healthy."),
    "hosts": ("hosts", "hosts_app",
              "List an environment's hosts (EC2 discovery asked afresh; no host is contacted); `hosts trust` "
              "pins their SSH host keys."),
    "certs": ("certs", "certs_app",
              "The HTTPS certificate of an environment's hosts: status (names, issuer, expiry), renew."),
    "accessory": ("accessory", "accessory_app",
                  "Long-lived containers beside the app, such as its database: boot, stop, status, logs, exec, remove, "
                  "backup."),
    "infra": ("infra", "infra_app",
              "The AWS network, hosts and database of an environment (CloudFormation): plan, apply, destroy, "
              "output, template."),
    "jobs": ("jobs", "jobs_app",
             "Scheduled jobs ([jobs.NAME]) and their last runs; `jobs run NAME` starts one now."),
}

HELP = """Build, test, push, deploy and roll back the app described in deploy.toml.

Exit codes: 0 ok, 1 unexpected error, 2 usage, 3 config error, 4 cannot connect,
5 build or test failed, 6 deploy failed (previous release still serving),
7 rollback failed or state uncertain, 8 lock held by someone else,
9 a certificate could not be obtained or renewed (the current one keeps serving).
`deployctl exec` exits with its command's code, 125 when it could not start the command;
`deployctl accessory exec` with its command's code (its own errors: 2, 3, 4 as above).
"""


def _version(value: bool) -> None:
    if value:
        print(f"deployctl {__version__}")
        raise typer.Exit()


def _root(
    ctx: typer.Context,
    config: Annotated[str, typer.Option("--config", "-c", envvar="DEPLOYCTL_CONFIG",
                                        help="Path to deploy.toml.")] = "deploy.toml",
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON).")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    from .context import AppContext

    ctx.obj = AppContext(config_path=config, json_output=json_output, debug=debug)
    ctx.call_on_close(ctx.obj.close)


def click_exceptions():  # type: ignore[no-untyped-def]
    """click's exception module: recent Typer vendors its own click, older ones use click."""
    try:
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - depends on the installed Typer
        from click import exceptions
    return exceptions


def invoked_verb(args: Sequence[str]) -> str | None:
    """The verb of an argv whose global options were hoisted in front (cli/main.py), when
    it names one: the first word that is not a global option or its value."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("--config", "-c"):
            i += 2
            continue
        if arg in ("--json", "--debug") or arg.startswith("--config="):
            i += 1
            continue
        return arg if arg in VERBS else None
    return None


def _placeholder(name: str, help_text: str) -> "typer.core.TyperCommand":
    """What the root --help lists for a verb not imported: its name and help."""
    from typer.core import TyperCommand

    return TyperCommand(name, help=help_text)


def build_app(args: Sequence[str] | None = None) -> "typer.core.TyperGroup":
    """The click command for `args` (hoisted): only the verb they name is imported and
    registered; with no verb (the root --help, --version, a typo), every verb is listed from
    VERBS without importing one. `args=None`: every verb, imported (tests, docs)."""
    app = typer.Typer(
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    verb = None if args is None else invoked_verb(args)
    wanted = list(VERBS) if args is None else [verb] if verb else []
    for name in wanted:
        module, attribute, _ = VERBS[name]
        target = getattr(import_module(f"{__package__}.{module}"), attribute)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)
    group = typer.main.get_command(app)
    if args is not None and verb is None:
        for name, (_, _, help_text) in VERBS.items():
            group.add_command(_placeholder(name, help_text), name)  # type: ignore[attr-defined]
    return group
