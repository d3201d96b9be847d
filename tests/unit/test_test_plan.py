"""plan/pipeline/testing.py: which flow a service's tests take, test.env rendering, report paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.config.load import LoadedConfig, parse_config
from deployctl.config import models  # (not TestReports by name: pytest would try to collect it)
from deployctl.errors import ConfigError
from deployctl.plan.pipeline.testing import COMMAND, NO_TESTS, STAGE, TestEnvError, check_test_env, flow_of, render_test_env, report_paths, secrets_used
from deployctl.secrets import Secret
from deployctl.services.pipeline.test_command import command_env, database_values, fetch_test_secrets
from deployctl.services.pipeline.testing import SuiteDatabase

CONFIG = """
app = "shop"
[services.api]
context = "api"
target = "runtime"
test_target = "test"
[services.web]
context = "web"
routed = true
[services.web.test]
command = ["python", "-m", "unittest"]
reports = { junit = "out/junit.xml", coverage = "/tmp/cov.xml" }
[services.web.test.env]
API_TOKEN = "{{ secret.WEB_TOKEN }}"
DB = "mysql://{{ test_database.user }}:{{ test_database.password }}@{{ test_database.host }}:{{ test_database.port }}/t"
PLAIN = "1"
[services.worker]
context = "worker"
[environments.local]
target = "local"
"""


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedConfig:
    return LoadedConfig(tmp_path / "deploy.toml", parse_config(CONFIG))


def test_flows(loaded):
    services = loaded.config.services
    assert [flow_of(services[n]) for n in ("api", "web", "worker")] == [STAGE, COMMAND, NO_TESTS]


def test_empty_test_target_means_none(loaded):
    config = parse_config(CONFIG.replace('test_target = "test"', 'test_target = ""'))
    assert flow_of(config.services["api"]) == NO_TESTS


DB = {"host": "172.17.0.1", "port": "3306", "user": "tester", "password": Secret("db-pass-9876")}


def test_render_replaces_secrets_and_database_fields(loaded):
    env = loaded.config.services["web"].test.env
    assert secrets_used(env) == ["WEB_TOKEN"]
    rendered = render_test_env(env, secrets={"WEB_TOKEN": Secret("tok-12345")}, database=DB, where="x")
    assert rendered == {"API_TOKEN": "tok-12345", "DB": "mysql://tester:db-pass-9876@172.17.0.1:3306/t", "PLAIN": "1"}


def test_unset_database_fields_name_the_key_and_how_to_set_it():
    env = {"U": "{{ test_database.user }}", "P": "{{test_database.password}}", "H": "{{ test_database.host }}"}
    with pytest.raises(TestEnvError) as info:
        render_test_env(env, secrets={}, database={**DB, "user": None, "password": None}, where="services.web.test.env",
                        unset_help={"user": "set test_database.user"})
    assert info.value.problems == [
        "services.web.test.env.U: {{ test_database.user }} is not set; set test_database.user",
        "services.web.test.env.P: {{ test_database.password }} is not set",
    ]


@pytest.mark.parametrize("value", ["{{ backend.url }}", "{{ test_database.name }}", "{{ secrets.X }}", "{{ x }}"])
def test_other_placeholders_are_refused(value):
    (problem,) = check_test_env({"K": value}, "services.web.test.env")
    assert problem.startswith(f"services.web.test.env.K: {value} is not available in a test env")


def test_a_secret_that_was_not_fetched_is_named_never_shown():
    with pytest.raises(TestEnvError, match="the secret 'NOPE' was not fetched"):
        render_test_env({"K": "{{ secret.NOPE }}"}, secrets={}, database=DB, where="w")


def test_problem_messages_never_carry_values():
    try:
        render_test_env({"K": "{{ secret.A }}-{{ test_database.user }}"}, secrets={"A": Secret("value-abc-123")},
                        database={**DB, "user": None}, where="w")
    except TestEnvError as exc:
        assert "value-abc-123" not in str(exc)
    else:
        pytest.fail("expected a TestEnvError")


def test_report_paths_are_absolute_in_the_container():
    reports = models.TestReports(junit="out/junit.xml", coverage="/tmp/cov.xml")
    assert report_paths(reports, "/home/app") == {"junit.xml": "/home/app/out/junit.xml", "coverage.xml": "/tmp/cov.xml"}
    assert report_paths(models.TestReports(junit="./j.xml"), None) == {"junit.xml": "/j.xml"}
    assert report_paths(models.TestReports(), "/app") == {}


def test_fetch_test_secrets_reads_the_source_and_registers_values(loaded, monkeypatch):
    from deployctl.secrets import redactor
    from deployctl.services.secret_sources import EnvSecrets

    secrets = fetch_test_secrets(loaded, ["api", "web"], EnvSecrets({"WEB_TOKEN": "tok-from-source-1"}))
    assert secrets == {"WEB_TOKEN": Secret("tok-from-source-1")}
    assert redactor("x tok-from-source-1 y") == "x *** y"
    # Only the selected command-flow services count: api's stage flow needs none.
    assert fetch_test_secrets(loaded, ["api"], EnvSecrets({})) == {}
    with pytest.raises(ConfigError, match="secret 'WEB_TOKEN' is missing from the environment for test.env"):
        fetch_test_secrets(loaded, ["web"], EnvSecrets({}))


def test_command_env_uses_the_suite_database(loaded):
    database = SuiteDatabase("127.0.0.1", 3307, "tester", Secret("pw-12345"))
    env = command_env(loaded, "web", {"WEB_TOKEN": Secret("t-1234")}, database_values(database, "172.17.0.1"))
    assert env["DB"] == "mysql://tester:pw-12345@172.17.0.1:3307/t"
    with pytest.raises(ConfigError, match=r"services.web.test.env.DB: \{\{ test_database.password \}\} is not set"):
        command_env(loaded, "web", {"WEB_TOKEN": Secret("t-1234")},
                    database_values(SuiteDatabase("h", 1, "u", None), "h"))
