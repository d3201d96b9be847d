"""Entry point: parses argv, runs one command, maps exceptions to exit codes. The only place
that turns an exception into output and an exit status.
"""

from __future__ import annotations

import gc
import sys
from typing import Sequence

from ..errors import DeployctlError, ExitCode

# Global flags may be written anywhere on the line (`deployctl config --env x --json`); they
# are moved in front of the verb before click parses, up to a `--` that ends options.
GLOBAL_FLAGS = {"--json", "--debug"}
GLOBAL_OPTIONS = {"--config", "-c"}


def hoist_globals(argv: Sequence[str]) -> list[str]:
    front: list[str] = []
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in GLOBAL_FLAGS:
            front.append(arg)
        elif arg in GLOBAL_OPTIONS and i + 1 < len(args):
            front.extend(args[i : i + 2])
            i += 1
        elif arg.startswith("--config="):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def main(argv: Sequence[str] | None = None) -> int:
    import typer

    from .app import build_app, click_exceptions

    usage_error = click_exceptions().UsageError

    args = hoist_globals(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    json_output = "--json" in args
    command = build_app(args)
    try:
        result = command.main(args=args, prog_name="deployctl", standalone_mode=False)
        return int(result) if isinstance(result, int) else ExitCode.OK
    except DeployctlError as exc:
        report(exc.lines(), exc.exit_code, json_output, exc.details)
        if debug:
            print_traceback()
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except usage_error as exc:
        exc.show()
        return ExitCode.USAGE
    except (typer.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place unexpected errors are reported
        if debug:
            print_traceback()
        report([f"unexpected error: {type(exc).__name__}: {exc}",
                "hint: rerun with --debug for the traceback, and please report it"],
               ExitCode.UNEXPECTED, json_output)
        return ExitCode.UNEXPECTED


def print_traceback() -> None:
    """--debug's traceback, through the redactor like every other output: an exception's
    message (a command's stderr, a value a library put in it) may hold a secret value."""
    import traceback

    from ..secrets import redactor

    sys.stderr.write(redactor(traceback.format_exc()))
    sys.stderr.flush()


def report(lines: list[str], code: int, json_output: bool, details: dict | None = None) -> None:
    from ..secrets import redactor

    lines = [redactor(line) for line in lines]
    if json_output:
        import json

        error = {"event": "error", "exit_code": int(code), "problems": lines}
        if details:
            error["details"] = json.loads(redactor(json.dumps(details)))
        print(json.dumps(error), flush=True)
    for line in lines:
        print(f"error: {line}" if not line.startswith("hint:") else line, file=sys.stderr)


def run() -> None:
    """The console script. A command is a short-lived process whose start-up makes a few
    hundred thousand objects (the modules, Typer's and pydantic's models, the configuration)
    that live until it exits: the collector's passes over them are pure cost, about 0.07 s
    of CPU of a 0.4 s rollback start-up (bench/rollback_startup.py). So the young
    generation is collected every 100,000 allocations, not every 700 (a long command,
    `logs --follow` or a deploy under traffic, still collects its garbage), and what lives
    at the end is frozen out of the interpreter's last collection at exit."""
    gc.set_threshold(100_000, 10, 10)
    code = main()
    gc.freeze()
    sys.exit(code)
