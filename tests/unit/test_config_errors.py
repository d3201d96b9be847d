"""deploy.toml validation: every kind of mistake gets one line naming the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.config import load_config, parse_config
from deployctl.errors import ConfigError, ExitCode

MINIMAL = """
app = "shop"

[services.web]
context = "web"
routed = true

[environments.local]
target = "local"
"""

REPO_ROOT = Path(__file__).resolve().parents[2]


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.exit_code == ExitCode.CONFIG
    return info.value.problems


def test_minimal_config_is_valid_and_filled_with_defaults():
    config = parse_config(MINIMAL)
    web = config.services["web"]
    assert (web.port, web.dockerfile, web.healthcheck.path) == (8000, "Dockerfile", "/healthz")
    assert config.proxy.port == 80
    assert config.environments["local"].rollout.keep == 5
    assert config.routed_service == "web"


def test_the_projects_own_deploy_toml_is_valid():
    loaded = load_config(REPO_ROOT / "deploy.toml")
    assert set(loaded.config.environments) >= {"local", "staging", "production"}
    assert loaded.root == REPO_ROOT


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "deploy.toml")
    assert info.value.problems == [f"{tmp_path / 'deploy.toml'}: no such file"]
    assert "--config" in info.value.hint


def test_toml_syntax_error_has_line_and_column():
    [line] = problems('app = "x"\n[services.web]\ncontext = \n')
    assert line.startswith("deploy.toml: line 3, column 11: TOML syntax error")


def test_unknown_key_suggests_the_right_one():
    [line] = problems(MINIMAL.replace("routed = true", "routed = true\nprot = 9000"))
    assert line == "deploy.toml: services.web.prot: unknown key (did you mean 'port'?)"


def test_unknown_top_level_key_suggests():
    [line] = problems(MINIMAL + '\n[enviroments.staging]\ntarget = "local"\n')
    assert line == "deploy.toml: enviroments: unknown key (did you mean 'environments'?)"


def test_unknown_key_far_from_anything_has_no_suggestion():
    [line] = problems(MINIMAL.replace("routed = true", "routed = true\nzzzqqq = 1"))
    assert line == "deploy.toml: services.web.zzzqqq: unknown key"


def test_wrong_type_names_expected_type_and_value():
    [line] = problems(MINIMAL.replace('context = "web"', 'context = "web"\nport = "8000"'))
    assert line == "deploy.toml: services.web.port: expected an integer, got '8000'"


def test_bool_is_not_accepted_as_an_integer():
    [line] = problems(MINIMAL.replace('context = "web"', 'context = "web"\nport = true'))
    assert line == "deploy.toml: services.web.port: expected an integer, got True"


def test_value_out_of_range():
    [line] = problems(MINIMAL.replace('context = "web"', 'context = "web"\nport = 70000'))
    assert line == "deploy.toml: services.web.port: 70000 is out of range: must be less than or equal to 65535"


def test_health_interval_above_ten_seconds_is_refused():
    text = MINIMAL + "\n[services.web.healthcheck]\ninterval = 12\n"
    [line] = problems(text)
    assert line.startswith("deploy.toml: services.web.healthcheck.interval: 12 is out of range")


def test_health_command_with_another_type_is_refused():
    text = MINIMAL + "\n[services.web.healthcheck]\ntype = \"tcp\"\ncommand = [\"true\"]\n"
    [line] = problems(text)
    assert "services.web.healthcheck" in line and "only used with type" in line


def test_secret_reference_in_env_is_not_a_secret_value():
    text = MINIMAL + "\n[services.web.env]\nDATABASE_PASSWORD = \"{{ secret.DB_PASSWORD }}\"\n"
    assert parse_config(text).services["web"].env["DATABASE_PASSWORD"] == "{{ secret.DB_PASSWORD }}"


def test_secret_literal_in_env_is_still_refused():
    text = MINIMAL + "\n[services.web.env]\nDATABASE_PASSWORD = \"hunter22\"\n"
    [line] = problems(text)
    assert "services.web.env.DATABASE_PASSWORD" in line and "{{ secret.NAME }}" in line


def test_invalid_host_in_a_list_names_its_index():
    text = MINIMAL + """
[registry]
server = "reg:5000"
[environments.production]
target = "ssh"
hosts = ["ok.example.com", "ex ample"]
"""
    [line] = problems(text)
    assert line == (
        "deploy.toml: environments.production.hosts[1]: 'ex ample' is not a valid host "
        "(a hostname or IP address, optionally :port)"
    )


@pytest.mark.parametrize("host", ["10.0.0.1", "web-1.internal", "[::1]:2222", "127.0.0.1:2222", "::1"])
def test_valid_hosts(host):
    text = MINIMAL + f'\n[registry]\nserver = "r:5000"\n[environments.p]\ntarget = "ssh"\nhosts = ["{host}"]\n'
    assert parse_config(text).environments["p"].hosts == [host]


@pytest.mark.parametrize("host", ["h:0", "h:99999", "h:abc", "-bad-", "a..b", ""])
def test_invalid_hosts(host):
    text = MINIMAL + f'\n[registry]\nserver = "r:5000"\n[environments.p]\ntarget = "ssh"\nhosts = ["{host}"]\n'
    [line] = problems(text)
    assert line.startswith("deploy.toml: environments.p.hosts[0]: ")


def test_literal_choices_are_listed():
    [line] = problems(MINIMAL.replace('target = "local"', 'target = "k8s"'))
    assert line == "deploy.toml: environments.local.target: 'k8s' is not allowed: expected 'local', 'ssh' or 'swarm'"


def test_missing_required_key():
    [line] = problems(MINIMAL.replace('context = "web"\n', ""))
    assert line == "deploy.toml: services.web.context: required key is missing"


def test_several_problems_are_all_reported_once_each():
    text = MINIMAL.replace('context = "web"', 'context = 1\nport = 0\nbogus = 1')
    lines = problems(text)
    assert len(lines) == 3
    assert len(set(lines)) == 3


def test_ssh_environment_needs_hosts_and_a_registry():
    lines = problems(MINIMAL + '\n[environments.prod]\ntarget = "ssh"\n')
    assert lines == ["deploy.toml: environments.prod: an ssh environment needs at least one entry in hosts, "
                     "a discover table or an infra table"]
    lines = problems(MINIMAL + '\n[environments.prod]\ntarget = "ssh"\nhosts = ["h1"]\n')
    assert lines == ["deploy.toml: an ssh environment pulls images from a registry: add a [registry] table"]


def test_exactly_one_routed_service():
    lines = problems(MINIMAL.replace("routed = true", ""))
    assert lines == [
        "deploy.toml: exactly one service must have routed = true (the one nginx sends traffic to); found 0"
    ]


def test_placeholder_must_name_a_service():
    text = MINIMAL + '\n[services.web.env]\nAPI = "{{ api.url }}"\n'
    [line] = problems(text)
    assert "services.web.env.API: {{ api... }} names no service (services: web)" in line


def test_bad_names():
    [line] = problems(MINIMAL.replace('app = "shop"', 'app = "Shop App"'))
    assert line.startswith("deploy.toml: app: 'Shop App' is not a valid name")


def test_bad_secret_source():
    [line] = problems(MINIMAL.replace('target = "local"', 'target = "local"\nsecrets = "vault:/x"'))
    assert line.startswith("deploy.toml: environments.local.secrets: 'vault:/x' is not a secret source")


# --- secret values where only names belong ---------------------------------------------

def test_registry_password_in_file_is_refused_without_echoing_it():
    text = MINIMAL + '\n[registry]\nserver = "r:5000"\npassword = "hunter2-secret"\n'
    [line] = problems(text)
    assert line.startswith("deploy.toml: registry.password: secret values never belong in deploy.toml")
    assert "hunter2" not in line


def test_secrets_given_as_a_table_of_values_is_refused():
    text = MINIMAL + '\n[services.web.secrets]\nDATABASE_PASSWORD = "s3cr3t-value"\n'
    lines = problems(text)
    assert lines[0].startswith("deploy.toml: services.web.secrets: secret values never belong in deploy.toml")
    assert not any("s3cr3t" in line for line in lines)


@pytest.mark.parametrize("where", ["services.web.env", "environments.local.env"])
def test_secret_looking_env_value_is_refused(where):
    text = MINIMAL + f'\n[{where}]\nAPI_TOKEN = "abc123abc123"\n'
    [line] = problems(text)
    assert line.startswith(f"deploy.toml: {where}.API_TOKEN: looks like a secret value")
    assert "abc123" not in line


def test_file_pointer_and_placeholders_are_not_secret_values():
    text = MINIMAL + '\n[services.web.env]\nDATABASE_PASSWORD_FILE = "/run/secrets/DATABASE_PASSWORD"\n'
    assert parse_config(text).services["web"].env["DATABASE_PASSWORD_FILE"].startswith("/run/")


def test_same_name_in_env_and_secrets_is_refused():
    text = MINIMAL.replace("routed = true", 'routed = true\nsecrets = ["DB_URL"]') + '\n[services.web.env]\nDB_URL = "x"\n'
    [line] = problems(text)
    assert "'DB_URL' is both in env and in secrets" in line


def test_not_utf8():
    [line] = problems(b"app = '\xff'")
    assert line.startswith("deploy.toml: not UTF-8")


def test_bad_table_name_is_reported_at_that_key():
    lines = problems(MINIMAL.replace("[services.web]", '[services."Web App"]'))
    assert lines == ["deploy.toml: services.Web App: 'Web App' is not a valid name "
                     "(lowercase letters, digits and '-', starting with a letter, at most 30)"]


def test_a_key_spelled_like_pydantics_marker_is_just_unknown():
    # Found by the fuzz test: '[key]' is also what pydantic appends for bad dict keys.
    [line] = problems('"[key]" = 1\n' + MINIMAL)
    assert line == "deploy.toml: [key]: unknown key"
