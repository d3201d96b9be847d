"""`deployctl init` copies compose text into deploy.toml's comments and strings: whatever that
text holds, the file must read back as exactly what init meant to write (security review: a
healthcheck string with a newline broke init, and a crafted one injected an
[environments.local.env] table that loaded cleanly)."""

from __future__ import annotations

import tomllib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployctl.cli.main import main
from deployctl.config import parse_config
from deployctl.errors import ConfigError
from deployctl.plan.init.init_compose import plan_from_compose
from deployctl.plan.init.init_model import to_data
from deployctl.plan.init import init_render
from deployctl.plan.init.init_render import render

INJECTION = 'curl -f http://localhost:8000/\n[environments.local.env]\nINJECTED = "yes"\n#'


class Files:
    """A fake project: path -> text."""

    def __init__(self, files: dict[str, str] | None = None) -> None:
        self.files = files or {}

    def kind(self, path):
        if path in self.files:
            return "file"
        return "dir" if any(p.startswith(path.rstrip("/") + "/") for p in self.files) else None

    def list_files(self, path):
        prefix = path.rstrip("/") + "/"
        return sorted(p[len(prefix):] for p in self.files if p.startswith(prefix) and "/" not in p[len(prefix):])

    def read_text(self, path):
        return self.files.get(path)


def test_the_reproduced_healthcheck_injection_stays_a_comment():
    compose = {"services": {"web": {"build": ".", "ports": ["8000:8000"], "healthcheck": {"test": INJECTION}}}}
    plan = plan_from_compose(compose, files=Files(), app="shop")
    text = render(plan)
    assert "\n[environments.local.env]" not in text
    assert tomllib.loads(text) == to_data(plan)
    config = parse_config(text)
    assert config.environments["local"].env == {}
    assert "healthcheck (curl -f http://localhost:8000/\\n[environments.local.env]\\nINJECTED" in text


def test_a_healthcheck_with_a_newline_no_longer_breaks_init(tmp_path, capsys):
    (tmp_path / "Dockerfile").write_text("FROM python:3.12-slim\nEXPOSE 8000\n")
    (tmp_path / "docker-compose.yml").write_text(
        'services:\n  web:\n    build: .\n    ports: ["8000:8000"]\n'
        '    healthcheck:\n      test: "curl -f http://localhost:8000/\\nwget x"\n')
    code = main(["init", str(tmp_path), "--app", "shop"])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert parse_config((tmp_path / "deploy.toml").read_text()).app == "shop"


def test_comment_text_escapes_everything_that_could_end_or_break_a_comment():
    assert init_render.comment_text("a\nb\rc\td\x00e\x7ff\u2028g\u0085h\\i") == "a\\nb\\rc\\td\\u0000e\\u007ff\\u2028g\\u0085h\\\\i"
    assert init_render.comment_text("ordinary text: ü, 日本, 'quotes' and \"doubles\"") == (
        "ordinary text: ü, 日本, 'quotes' and \"doubles\"")


def test_a_rendered_string_with_delete_is_valid_toml():
    compose = {"services": {"web": {"build": ".", "ports": ["8000:8000"], "environment": {"MODE": "a\x7fb"}}}}
    plan = plan_from_compose(compose, files=Files(), app="shop")
    assert parse_config(render(plan)).services["web"].env["MODE"] == "a\x7fb"


# -- fuzz: compose documents full of text that tries to leave its comment or string ----------

FRAGMENTS = ["\n", "\r\n", "\r", "[environments.local.env]", "[services.web.env]", 'X = "1"', "INJECTED = 1",
             '"', "'", '"""', "#", "\\", "\\n", "${A}", "${B:-d}", "$$", "{{ secret.X }}", "\x7f", "\x00", "\t",
             "\u2028", "\u0085", "]]", "=", " ", "curl -f http://localhost:8000/x", "CMD-SHELL", "nginx", "mysql:8",
             "./", "..", "/", ":", "8000", "web", "db", "=", "\ufeff"]
text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=6).map("".join)
names = st.one_of(st.sampled_from(["web", "api", "db", "nginx", "cache", "Web App"]), text)
env_value = st.one_of(text, st.integers(-5, 70000), st.booleans(), st.none())
environment = st.one_of(st.dictionaries(text, env_value, max_size=3),
                        st.lists(text.map(lambda t: t if "=" in t else f"K={t}"), max_size=3))
healthcheck = st.fixed_dictionaries({"test": st.one_of(text, st.lists(st.one_of(st.just("CMD-SHELL"), text),
                                                                       max_size=3))})
build = st.one_of(st.just("."), st.fixed_dictionaries(
    {"context": st.one_of(st.just("."), text)},
    optional={"args": st.dictionaries(text, st.one_of(text, st.none()), max_size=2), "target": text,
              "dockerfile": st.one_of(st.just("Dockerfile"), text)}))
service = st.fixed_dictionaries({}, optional={
    "build": build, "image": text, "ports": st.lists(st.one_of(text, st.integers(1, 70000)), max_size=2),
    "expose": st.lists(st.one_of(text, st.integers(1, 70000)), max_size=1), "environment": environment,
    "healthcheck": healthcheck, "command": st.one_of(text, st.lists(text, max_size=2)),
    "volumes": st.lists(text, max_size=2), "secrets": st.lists(text, max_size=2),
    "depends_on": st.lists(names, max_size=2)})
composes = st.fixed_dictionaries({"services": st.dictionaries(names, service, min_size=1, max_size=3)})
dockerfiles = st.lists(st.one_of(st.sampled_from(["FROM python:3.12-slim\n", "EXPOSE 8000\n", "HEALTHCHECK CMD ",
                                                   "ARG ", "LABEL a=", "\n"]), text), max_size=6).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(composes, dockerfiles)
def test_init_output_reads_back_as_exactly_what_init_meant_whatever_compose_holds(compose, dockerfile):
    files = Files({"Dockerfile": dockerfile, "db/init.sql": "x"})
    try:
        plan = plan_from_compose(compose, files=files, app="fuzz", source="docker-compose.yml")
    except ValueError:
        return  # a compose file init refuses, with its own message
    text = render(plan)
    meant = to_data(plan)
    assert tomllib.loads(text) == meant  # no key, table or value that init did not write
    try:
        config = parse_config(text)
    except ConfigError:
        return  # refused, so nothing loads (init then says it cannot load what it wrote)
    assert set(config.environments) == {"local"} and config.environments["local"].env == {}
    assert {n: s.env for n, s in config.services.items()} == {
        n: s.get("env", {}) for n, s in meant["services"].items()}
    assert {n: a.env for n, a in config.accessories.items()} == {
        n: a.get("env", {}) for n, a in meant.get("accessories", {}).items()}
