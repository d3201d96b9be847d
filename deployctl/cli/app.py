"""The Typer application: global options, and one module per verb registered on it.

Verb modules import their services lazily inside the command function so that
`deployctl --help` never pays for docker, paramiko, boto3 or pydantic.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .. import __version__
from .context import AppContext

HELP = """Build, test, push, deploy and roll back the app described in deploy.toml.

Exit codes: 0 ok, 1 unexpected error, 2 usage, 3 config error, 4 cannot connect,
5 build or test failed, 6 deploy failed (previous release still serving),
7 rollback failed or state uncertain, 8 lock held by someone else.
`deployctl exec` exits with its command's code, 125 when it could not start the command.
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
    ctx.obj = AppContext(config_path=config, json_output=json_output, debug=debug)
    ctx.call_on_close(ctx.obj.close)


def click_exceptions():  # type: ignore[no-untyped-def]
    """click's exception module: recent Typer vendors its own click, older ones use click."""
    try:
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - depends on the installed Typer
        from click import exceptions
    return exceptions


def build_app() -> "typer.core.TyperGroup":
    from . import accessory as accessory_cmd
    from . import build as build_cmd
    from . import config as config_cmd
    from . import deploy as deploy_cmd
    from . import exec as exec_cmd
    from . import hosts as hosts_cmd
    from . import infra as infra_cmd
    from . import init as init_cmd
    from . import inspect as inspect_cmd
    from . import push as push_cmd
    from . import release as release_cmd
    from . import stats as stats_cmd
    from . import swarm as swarm_cmd
    from . import test as test_cmd

    app = typer.Typer(
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    app.command("init")(init_cmd.init)
    app.command("config")(config_cmd.config)
    app.command("build")(build_cmd.build)
    app.command("test")(test_cmd.test)
    app.command("push")(push_cmd.push)
    app.command("deploy")(deploy_cmd.deploy)
    app.command("rollback")(deploy_cmd.rollback)
    app.command("release")(release_cmd.release)
    app.add_typer(accessory_cmd.accessory_app, name="accessory")
    app.add_typer(hosts_cmd.hosts_app, name="hosts")
    app.add_typer(infra_cmd.infra_app, name="infra")
    app.command("status")(inspect_cmd.status)
    app.command("releases")(inspect_cmd.releases)
    app.command("logs")(inspect_cmd.logs)
    app.command("exec")(exec_cmd.exec_command)
    app.command("stats")(stats_cmd.stats)
    app.command("scale")(swarm_cmd.scale)
    return typer.main.get_command(app)
