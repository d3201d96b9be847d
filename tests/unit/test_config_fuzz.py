"""Whatever a user writes, loading deploy.toml ends in a valid Config or a clean ConfigError.

Two generators: structured documents built from the real key vocabulary (so validation gets
deep, not just rejected at the top), and byte-level mutations of the project's own file
(so the TOML parser and the secret-value scan see broken text).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployctl.config import parse_config
from deployctl.config.models import Config
from deployctl.errors import ConfigError

PROJECT_TOML = (Path(__file__).resolve().parents[2] / "deploy.toml").read_text()

KEYS = [
    "app", "registry", "services", "proxy", "environments", "backend", "frontend", "local", "production",
    "context", "dockerfile", "target", "test_target", "build_args", "port", "healthcheck", "path",
    "interval", "timeout", "env", "secrets", "migrate", "routed", "coverage_floor", "provider", "server",
    "namespace", "username", "password", "password_secret", "region", "hosts", "ssh", "rollout", "user",
    "key_file", "known_hosts", "connect_timeout", "parallel", "batch", "pause", "max_failures",
    "on_failure", "drain", "keep", "proxy_port", "state_dir", "DATABASE_PASSWORD", "API_TOKEN",
]

scalars = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["local", "ssh", "ecr", "basic", "revert", "halt", "env", "ssm:/x/", "web", "/healthz",
                     "{{ backend.url }}", "ex ample", "10.0.0.1", "[::1]:22", "r:5000"]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
    st.dates(),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(min_size=1, max_size=12))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=6)),
    max_leaves=40,
).filter(lambda doc: isinstance(doc, dict))


def outcome(text: str | bytes) -> None:
    try:
        config = parse_config(text)
    except ConfigError as exc:
        assert exc.problems, "a ConfigError must say what is wrong"
        for line in exc.problems:
            assert isinstance(line, str) and line.startswith("deploy.toml: "), line
            assert "Traceback" not in line
    else:
        assert isinstance(config, Config)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_structured_random_documents(doc):
    # tomli_w cannot express every Python value (e.g. NaN keys are fine, but mixed arrays are);
    # what it writes is what a user could have written.
    outcome(tomli_w.dumps(doc))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_project_file(data):
    text = PROJECT_TOML.encode()
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        where = data.draw(st.integers(min_value=0, max_value=len(text)))
        op = data.draw(st.sampled_from(["delete", "insert", "replace", "duplicate-line"]))
        if op == "delete":
            n = data.draw(st.integers(min_value=1, max_value=40))
            text = text[:where] + text[where + n:]
        elif op == "insert":
            text = text[:where] + data.draw(st.binary(min_size=1, max_size=8)) + text[where:]
        elif op == "replace":
            chunk = data.draw(st.sampled_from([b"=", b"[", b"]", b'"', b"\n", b"0", b"-1", b"true", b"x"]))
            text = text[:where] + chunk + text[where + 1:]
        else:
            start = text.rfind(b"\n", 0, where) + 1
            end = text.find(b"\n", where)
            end = len(text) if end == -1 else end + 1
            text = text[:end] + text[start:end] + text[end:]
    outcome(text)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["port", "interval", "timeout", "keep", "batch", "pause", "proxy_port", "coverage_floor"]),
       st.one_of(st.integers(), st.floats(allow_nan=True), st.text(max_size=5), st.booleans()))
def test_numeric_keys_with_any_value(key, value):
    section = {
        "port": "[services.backend]", "interval": "[services.backend.healthcheck]",
        "timeout": "[services.backend.healthcheck]", "keep": "[environments.production.rollout]",
        "batch": "[environments.production.rollout]", "pause": "[environments.production.rollout]",
        "proxy_port": "[environments.local]", "coverage_floor": "[services.backend]",
    }[key]
    line = tomli_w.dumps({key: value}).strip()
    text = PROJECT_TOML.replace(section + "\n", section + "\n" + line + "\n", 1)
    outcome(text)
