"""The CLI run in-process: exit codes, --json output, global flags anywhere, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deployctl import __version__
from deployctl.cli.main import hoist_globals, main
from deployctl.cli.render import JsonRenderer, PlainRenderer
from deployctl.errors import ExitCode
from deployctl.events import Message, StepDone, StepFailed, StepProgress, StepStarted
from deployctl.secrets import Redactor, Secret, redactor

REPO = Path(__file__).resolve().parents[2]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert (code, out.strip()) == (0, f"deployctl {__version__}")


def test_help_lists_exit_codes(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "8 lock held" in out and "config" in out


def test_config_json_is_valid_and_has_no_secret_values(capsys, monkeypatch):
    monkeypatch.setenv("DEPLOYCTL_REGISTRY_PASSWORD", "registry-pass-123")
    monkeypatch.setenv("DATABASE_PASSWORD", "db-pass-456")
    code, out, err = run(capsys, "--config", str(REPO / "deploy.toml"), "config", "--env", "production", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["environment"] == "production" and data["target"] == "ssh"
    assert data["hosts"] == [] and data["infra"]["database"]["password_secret"] == "DATABASE_PASSWORD"
    assert data["registry"]["password"] == "***"
    assert data["services"]["backend"]["secrets"] == {"DATABASE_PASSWORD": "***"}
    assert data["services"]["frontend"]["env"]["BACKEND_URL"] == "{{ backend.url }}"
    assert "registry-pass-123" not in out and "db-pass-456" not in out


def test_global_flags_work_after_the_verb(capsys):
    code, out, _ = run(capsys, "config", "--env", "local", "--json", "--config", str(REPO / "deploy.toml"))
    assert code == 0
    assert json.loads(out)["proxy"]["port"] == 8080


def test_config_plain_output_uses_key_paths(capsys):
    code, out, _ = run(capsys, "-c", str(REPO / "deploy.toml"), "config", "--env", "staging")
    assert code == 0
    assert "hosts[0] = 10.0.1.10" in out
    assert "services.backend.secrets.DATABASE_PASSWORD = ***" in out
    assert "\x1b[" not in out  # not a TTY: no escape codes


def test_unknown_environment_exit_3(capsys):
    code, _, err = run(capsys, "-c", str(REPO / "deploy.toml"), "config", "--env", "prod")
    assert code == ExitCode.CONFIG
    assert "no environment 'prod'" in err and "did you mean 'production'" in err
    assert "Traceback" not in err


def test_bad_config_exit_3_one_line_per_problem(tmp_path, capsys):
    path = tmp_path / "deploy.toml"
    path.write_text('app = "x"\n[services.web]\ncontext = "w"\nroutd = true\n[environments.local]\ntarget = "lokal"\n')
    code, out, err = run(capsys, "-c", str(path), "config", "--json")
    assert code == ExitCode.CONFIG
    problems = json.loads(out)["problems"]
    assert "deploy.toml: services.web.routd: unknown key (did you mean 'routed'?)" in problems
    assert any(p.startswith("deploy.toml: environments.local.target: 'lokal' is not allowed") for p in problems)
    assert err.count("error: ") == len(problems)


def test_missing_config_file_exit_3(tmp_path, capsys):
    code, _, err = run(capsys, "-c", str(tmp_path / "nope.toml"), "config")
    assert code == ExitCode.CONFIG and "no such file" in err


@pytest.mark.parametrize("argv", [["bogus"], ["config", "--bad"], []])
def test_usage_errors_exit_2(capsys, argv):
    code, _, _ = run(capsys, *argv)
    assert code == ExitCode.USAGE


def test_unexpected_error_exit_1_without_traceback_unless_debug(capsys, monkeypatch):
    import deployctl.plan.resolved_config as resolve

    def boom(*_a, **_k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(resolve, "resolve", boom)
    code, _, err = run(capsys, "-c", str(REPO / "deploy.toml"), "config")
    assert code == ExitCode.UNEXPECTED and "kaboom" in err and "Traceback" not in err
    code, _, err = run(capsys, "-c", str(REPO / "deploy.toml"), "config", "--debug")
    assert code == ExitCode.UNEXPECTED and "Traceback" in err


def test_hoist_globals_stops_at_double_dash():
    assert hoist_globals(["test", "--json", "--", "--json"]) == ["--json", "test", "--", "--json"]
    assert hoist_globals(["config", "-c", "x.toml", "--env", "a"]) == ["-c", "x.toml", "config", "--env", "a"]


def test_exit_codes_are_stable():
    assert [(c.name, c.value) for c in ExitCode] == [
        ("OK", 0), ("UNEXPECTED", 1), ("USAGE", 2), ("CONFIG", 3), ("CONNECT", 4),
        ("BUILD_OR_TEST", 5), ("DEPLOY_FAILED", 6), ("ROLLBACK_FAILED", 7), ("LOCK_HELD", 8),
        ("CERTIFICATE", 9),  # added with HTTPS (docs/tls.md): a new code, none renumbered
        ("EXEC_NOT_STARTED", 125),  # `deployctl exec` only: it otherwise exits with its command's code
    ]


def test_console_script_runs_as_a_subprocess():
    exe = Path(sys.executable).with_name("deployctl")
    done = subprocess.run([str(exe), "-c", str(REPO / "deploy.toml"), "config", "--env", "nope"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "no environment 'nope'" in done.stderr


# --- renderers ---------------------------------------------------------------------------

def test_plain_renderer_timestamps_and_throttles(capsys):
    render = PlainRenderer(progress_every=10)
    render(StepStarted("build", service="backend", at=0))
    render(StepProgress("build", "Step 1/9", service="backend", at=1))
    render(StepProgress("build", "Step 2/9", service="backend", at=2))  # throttled
    render(StepDone("build", seconds=3.25, service="backend", at=3))
    render(StepFailed("deploy", "health check failed", ("line a", "line b"), host="h1", at=4))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "1970-01-01T00:00:00Z [backend] build ..."
    assert lines[1].endswith("[backend] build: Step 1/9")
    assert lines[2].endswith("[backend] build done (3.2s)")
    assert lines[3].endswith("[h1] deploy FAILED: health check failed")
    assert lines[4:] == ["    | line a", "    | line b"]


def test_json_renderer_writes_one_object_per_line(capsys):
    render = JsonRenderer()
    render(StepDone("push", "already present", 0.5, service="frontend", at=5))
    render(Message("hello", level="warning", at=6))
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first == {"event": "step_done", "service": "frontend", "at": 5, "step": "push",
                     "detail": "already present", "seconds": 0.5}
    assert second["event"] == "message" and second["level"] == "warning"


def test_renderers_mask_registered_secrets(capsys):
    redactor.add(Secret("very-secret-value"))
    PlainRenderer()(Message("echo very-secret-value here"))
    JsonRenderer()(Message("echo very-secret-value here"))
    out = capsys.readouterr().out
    assert "very-secret-value" not in out and out.count("***") == 2


def test_secret_never_prints_itself():
    s = Secret("abcdef")
    assert "abcdef" not in f"{s} {s!r} {[s]}" and s.reveal() == "abcdef"


def test_redactor_ignores_tiny_values_and_prefers_longest():
    r = Redactor(["ab", "token-1", "token-12"])
    assert r("ab token-12 token-1") == "ab *** ***"


def test_rich_renderer_prints_finished_steps_and_clears_spinners():
    import io

    from rich.console import Console

    from deployctl.cli.render import RichRenderer

    console = Console(file=io.StringIO(), force_terminal=True, width=100, record=True)
    render = RichRenderer(console)
    render(StepStarted("build", service="backend"))
    render(StepProgress("build", "Step 3/9 : RUN pip install", service="backend"))
    render(StepDone("build", seconds=1.5, service="backend"))
    render(StepFailed("build", "exit 1", ("boom",), service="proxy"))
    render.close()
    text = console.export_text()
    assert "✓ [backend] build done (1.5s)" in text
    assert "✗ [proxy] build FAILED: exit 1" in text and "| boom" in text
    assert not render.tasks


def test_json_renderer_masks_strings_but_never_digits_of_numbers(capsys):
    # A secret made of digits must not eat digits out of timestamps (seen in CI).
    redactor.add(Secret("4711"))
    JsonRenderer()(StepDone("push", "token 4711 used", 47.11, service="x", at=1795754711.25))
    data = json.loads(capsys.readouterr().out)
    assert data["at"] == 1795754711.25 and data["seconds"] == 47.11
    assert data["detail"] == "token *** used"
