"""Credential-shaped values are refused wherever they would reach argv or an image, whatever
their key is called (security review: DATABASE_URL = "mysql://u:pw@h/db" or a token in
build_args / test.env went onto `docker create -e` argv, --dry-run and --json output)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.config import load_config, parse_config
from deployctl.errors import ConfigError
from deployctl.plan.init.init_compose import plan_from_compose
from deployctl.plan.init.init_render import render

REPO = Path(__file__).resolve().parents[2]

MINIMAL = """
app = "shop"

[services.web]
context = "web"
routed = true

[services.web.test]
command = ["pytest"]

[accessories.db]
image = "mariadb:11"

[proxy]
context = "nginx"

[environments.local]
target = "local"
"""

# Built from parts so that this file holds no string a secret scanner would flag.
CREDENTIALS = {
    "url": "mysql://app:" + "pw-123" + "@db:3306/shop",
    "aws": "AKIA" + "IOSFODNN7EXAMPLE",
    "github": "ghp_" + "a1B2" * 9,
    "github_pat": "github_pat_" + "11ABCDEFG0" * 3,
    "slack": "xoxb-" + "123456789012-abcdefABCDEF",
    "pem": "-----BEGIN " + "OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n",
    "jwt": "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0" + ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
}
TABLES = ["services.web.env", "services.web.build_args", "services.web.test.env", "accessories.db.env",
          "environments.local.env", "proxy.build_args"]


def with_value(table: str, key: str, value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return MINIMAL + f'\n[{table}]\n{key} = "{escaped}"\n'


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
def test_a_credential_shaped_value_is_refused_naming_its_key_never_echoing_it(table, kind):
    with pytest.raises(ConfigError) as info:
        parse_config(with_value(table, "CONNECTION", CREDENTIALS[kind]))
    [line] = info.value.problems
    assert line.startswith(f"deploy.toml: {table}.CONNECTION: looks like "), line
    assert "{{ secret.NAME }}" in line
    secret_part = "pw-123" if kind == "url" else CREDENTIALS[kind][5:25]
    assert secret_part not in line


def test_a_url_password_shows_the_secret_template_way():
    with pytest.raises(ConfigError) as info:
        parse_config(with_value("services.web.env", "DATABASE_URL", CREDENTIALS["url"]))
    assert "mysql://user:{{ secret.DB_PASSWORD }}@db/app" in info.value.problems[0]


@pytest.mark.parametrize("table,value", [
    ("services.web.env", "mysql://app:{{ secret.DB_PASSWORD }}@db:3306/shop"),
    ("environments.local.env", "postgres://{{ secret.DB_USER }}:{{ secret.DB_PASSWORD }}@db/shop"),
    ("services.web.test.env", "mysql://root:{{ test_database.password }}@{{ test_database.host }}:3306/t"),
    ("services.web.env", "https://user@example.com/path"),
    ("services.web.env", "http://example.com:8080/x?a=b@c"),
    ("services.web.env", "{{ db.url }}"),
    ("services.web.build_args", "3.12-slim"),
    ("environments.local.env", "eyJ-not-a-token"),
])
def test_templates_and_ordinary_values_are_not_credentials(table, value):
    parse_config(with_value(table, "SETTING", value))


def test_the_repos_own_deploy_toml_still_loads():
    assert load_config(REPO / "deploy.toml").config.app


def test_init_on_the_example_compose_still_loads():
    import yaml

    example = REPO / "examples" / "bootcamp-users"
    compose = yaml.safe_load((example / "docker-compose.yml").read_text())

    class Files:
        def kind(self, path):
            p = example / path
            return "file" if p.is_file() else "dir" if p.is_dir() else None

        def list_files(self, path):
            return sorted(x.name for x in (example / path).iterdir() if x.is_file())

        def read_text(self, path):
            p = example / path
            return p.read_text() if p.is_file() else None

    parse_config(render(plan_from_compose(compose, files=Files(), app="users")))


def test_init_never_copies_a_credential_from_compose():
    compose = {"services": {"web": {"build": {"context": ".", "args": {"NPM_TOKEN": CREDENTIALS["github"],
                                                                          "PY": "3.12"}},
                                    "ports": ["8000:8000"],
                                    "environment": {"DATABASE_URL": CREDENTIALS["url"], "MODE": "prod"}}}}

    class NoFiles:
        def kind(self, path):
            return None

        def list_files(self, path):
            return []

        def read_text(self, path):
            return None

    plan = plan_from_compose(compose, files=NoFiles(), app="shop")
    text = render(plan)
    config = parse_config(text)
    web = config.services["web"]
    assert web.env == {"DATABASE_URL": "{{ secret.DATABASE_URL }}", "MODE": "prod"}
    assert web.build_args == {"PY": "3.12"}
    assert "pw-123" not in text and CREDENTIALS["github"] not in text
    messages = [n.message for n in plan.notes]
    assert any("DATABASE_URL looks like a URL with a password" in m for m in messages)
    assert any("build arg NPM_TOKEN looks like a GitHub token" in m for m in messages)
