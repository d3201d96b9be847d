"""deployctl init's compose translation (plan/init/init_compose.py): compose dicts in, deploy.toml
values and notes out; every output is checked by deployctl's own parse_config."""

from __future__ import annotations

import random
import tomllib

import pytest

from deployctl.config.load import parse_config
from deployctl.plan.init.init_compose import plan_from_compose
from deployctl.plan.init.init_model import to_data, to_secret_refs, with_defaults
from deployctl.plan.init.init_ports import parse_port
from deployctl.plan.init.init_render import render


class Files:
    """A fake project: path -> text; directories are implied by the paths."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def kind(self, path):
        if path in self.files:
            return "file"
        return "dir" if any(p.startswith(path.rstrip("/") + "/") for p in self.files) else None

    def list_files(self, path):
        prefix = path.rstrip("/") + "/"
        return sorted(p[len(prefix):] for p in self.files if p.startswith(prefix) and "/" not in p[len(prefix):])

    def read_text(self, path):
        return self.files.get(path)


BOOTCAMP = {
    "version": "3.8",
    "services": {
        "frontend": {"build": "./frontend", "ports": ["5000:5000"], "depends_on": ["backend"],
                     "environment": {"BACKEND_URL": "http://backend:5001"}},
        "backend": {"build": "./backend", "depends_on": ["db"],
                    "environment": {"DATABASE_URI": "mysql+pymysql://root:${DB_PASSWORD}@db:3306/users"}},
        "db": {"image": "mysql:5.7",
               "environment": {"MYSQL_ROOT_PASSWORD": "${DB_PASSWORD}", "MYSQL_DATABASE": "users"},
               "volumes": ["db-data:/var/lib/mysql", "./db/init.sql:/docker-entrypoint-initdb.d/init.sql"]},
    },
    "volumes": {"db-data": None},
}
BOOTCAMP_FILES = {
    "frontend/Dockerfile": "FROM python:3.12-slim\nEXPOSE 5000\n",
    "backend/Dockerfile": "FROM python:3.12-slim\nWORKDIR /app\nEXPOSE 5001\nCMD [\"gunicorn\"]\n",
    "db/init.sql": "CREATE TABLE users (id INT);\n",
}


def plan(compose, files=None, **kw):
    kw.setdefault("app", "demo")
    return plan_from_compose(compose, files=Files(files or {}), **kw)


def valid(p):
    """The rendered text: tomllib reads back exactly to_data, and parse_config accepts it."""
    text = render(p)
    assert tomllib.loads(text) == to_data(p)
    return parse_config(text), text


def notes(p, subject=None):
    return [n.message for n in p.notes if subject is None or n.subject == subject]


def test_bootcamp_compose_becomes_services_an_accessory_and_a_local_environment():
    p = plan(BOOTCAMP, BOOTCAMP_FILES)
    config, _ = valid(p)
    front, back = config.services["frontend"], config.services["backend"]
    assert (front.context, front.port, front.routed) == ("frontend", 5000, True)
    assert front.env == {"BACKEND_URL": "http://backend:5001"}  # hostnames stay as they are
    assert (back.context, back.port, back.routed) == ("backend", 5001, False)  # port from EXPOSE
    assert back.env == {"DATABASE_URI": "mysql+pymysql://root:{{ secret.DB_PASSWORD }}@db:3306/users"}
    db = config.accessories["db"]
    assert db.image == "mysql:5.7" and db.port == 3306
    assert db.volumes == ["db-data:/var/lib/mysql"]
    assert db.files == ["db/init.sql:/docker-entrypoint-initdb.d/init.sql"]
    assert db.env == {"MYSQL_DATABASE": "users", "MYSQL_ROOT_PASSWORD": "{{ secret.DB_PASSWORD }}"}
    local = config.environments["local"]
    assert (local.target, local.accessories, local.proxy_port, local.secrets) == ("local", ["db"], 5000, "env")
    assert config.proxy.context is None  # deployctl's own proxy
    assert p.secret_names == ["DB_PASSWORD"]


def test_no_health_path_is_invented_tcp_and_a_note_instead():
    p = plan(BOOTCAMP, BOOTCAMP_FILES)
    config, text = valid(p)
    for name in ("frontend", "backend"):
        assert config.services[name].healthcheck.kind == "tcp"
        assert any("no health path" in m and f"[services.{name}.healthcheck]" in m for m in notes(p, name))
    assert "/healthz" not in text and "/health\"" not in text


def test_paths_are_relative_to_deploy_toml():
    p = plan(BOOTCAMP, BOOTCAMP_FILES, base="examples/app")
    config, _ = valid(p)
    assert config.services["frontend"].context == "examples/app/frontend"
    assert config.accessories["db"].files == ["examples/app/db/init.sql:/docker-entrypoint-initdb.d/init.sql"]


@pytest.mark.parametrize("raw, value, variables, defaults", [
    ("${A}", "{{ secret.A }}", ("A",), ()),
    ("$A", "{{ secret.A }}", ("A",), ()),
    ("x:${A:-dflt}/y", "x:{{ secret.A }}/y", ("A",), (("A", "dflt"),)),
    ("${A-d}${B:?must be set}", "{{ secret.A }}{{ secret.B }}", ("A", "B"), (("A", "d"),)),
    ("cost $$5 ${A}${A}", "cost $5 {{ secret.A }}{{ secret.A }}", ("A",), ()),
    ("plain", "plain", (), ()),
])
def test_interpolations_become_secret_refs(raw, value, variables, defaults):
    done = to_secret_refs(raw)
    assert (done.value, done.variables, done.defaults) == (value, variables, defaults)


def test_env_forms_and_secrets_are_never_copied():
    compose = {"services": {"web": {"build": ".", "ports": ["8000:8000"], "environment": [
        "MODE=${MODE:-prod-mode-x}", "PASSTHROUGH", "API_TOKEN=abc123", "DEBUG=0", "DB_PASSWORD_FILE=/run/secrets/db",
        "URL=http://$HOST:${PORT}/x"]}}}
    p = plan(compose)
    config, text = valid(p)
    env = config.services["web"].env
    assert env == {
        "API_TOKEN": "{{ secret.API_TOKEN }}",  # a literal secret-looking value is not copied
        "DB_PASSWORD_FILE": "/run/secrets/db",
        "DEBUG": "0",
        "MODE": "{{ secret.MODE }}",  # the default is not copied...
        "PASSTHROUGH": "{{ secret.PASSTHROUGH }}",
        "URL": "http://{{ secret.HOST }}:{{ secret.PORT }}/x",
    }
    assert "abc123" not in text and "prod-mode-x" not in text
    web = notes(p, "web")
    assert any("'prod-mode-x'" in m and "not copied" in m for m in web)  # ...but reported
    assert any("API_TOKEN has a literal value" in m for m in web)
    assert list(env) == sorted(env)


def test_env_mapping_with_numbers_bools_and_null():
    compose = {"services": {"web": {"build": ".", "environment": {"WORKERS": 4, "FLAG": True, "FROM_SHELL": None}}}}
    config, _ = valid(plan(compose))
    assert config.services["web"].env == {"FLAG": "true", "FROM_SHELL": "{{ secret.FROM_SHELL }}", "WORKERS": "4"}


def test_env_file_is_never_read_and_said_so():
    compose = {"services": {"web": {"build": ".", "env_file": ".env"}}}
    p = plan(compose, {".env": "SECRET_KEY=hunter2\n"})
    _, text = valid(p)
    assert "hunter2" not in text and "SECRET_KEY" not in text
    assert any("env_file" in m and "not read" in m for m in notes(p, "web"))


NGINX_PROXY = {"services": {
    "proxy": {"image": "nginx:1.25", "ports": ["80:80"], "depends_on": ["web", "api"],
              "volumes": ["./nginx/default.conf:/etc/nginx/conf.d/default.conf:ro"]},
    "web": {"build": "./web", "expose": ["3000"], "depends_on": ["api"]},
    "api": {"build": "./api", "expose": ["8000"]},
}}


def test_reverse_proxy_is_replaced_and_what_it_proxied_to_is_routed():
    files = {"nginx/default.conf": "server { location / { proxy_pass http://web:3000; } location /api { proxy_pass http://api:8000; } }"}
    # both web and api appear in proxy_pass: then depends_on decides... both, so fall back
    p = plan(NGINX_PROXY, {"nginx/default.conf": "upstream app { server web:3000; }\nserver { location / { proxy_pass http://app; } }"})
    config, text = valid(p)
    assert set(config.services) == {"web", "api"} and "proxy" not in config.accessories
    assert config.routed_service == "web"
    assert config.environments["local"].proxy_port == 80  # the proxy's published port
    assert config.proxy.context is None
    assert p.replaced_proxy == ["proxy-app"]  # 'proxy' is a reserved name, renamed
    assert "replaces compose's proxy-app" in text
    p2 = plan(NGINX_PROXY, files)
    assert valid(p2)[0].routed_service == "web"  # not depended on by the other service


def test_proxy_found_through_depends_on_when_no_config_is_mounted():
    compose = {"services": {
        "lb": {"image": "traefik:v3", "ports": ["8081:80"], "links": ["app:app"]},
        "app": {"build": "."}, "worker": {"build": ".", "depends_on": ["app"]}}}
    config, _ = valid(plan(compose))
    assert config.routed_service == "app" and config.environments["local"].proxy_port == 8081


def test_built_nginx_proxy_only_adding_config_is_replaced_but_one_with_content_is_a_service():
    base = {"web": {"build": "./web", "ports": ["5000:5000"]}}
    only_config = {"services": {**base, "nginx": {"build": "./nginx", "ports": ["80:80"], "depends_on": ["web"]}}}
    files = {"nginx/Dockerfile": "ARG BASE=nginx:alpine\nFROM ${BASE}\nCOPY nginx.conf /etc/nginx/nginx.conf\n"}
    config, _ = valid(plan(only_config, files))
    assert set(config.services) == {"web"} and config.routed_service == "web"
    spa = {"nginx/Dockerfile": "FROM node:20 AS build\nRUN npm run build\nFROM nginx:alpine\nCOPY --from=build /out /usr/share/nginx/html\nCOPY dist/ /usr/share/nginx/html/\n"}
    config, _ = valid(plan(only_config, spa))
    assert set(config.services) == {"web", "nginx"}


def test_database_accessory_with_directory_of_init_files_anonymous_volume_and_build():
    compose = {"services": {
        "app": {"build": ".", "ports": ["8000:8000"]},
        "postgres": {"image": "postgres:16", "volumes": ["pgdata:/var/lib/postgresql/data", "./initdb:/docker-entrypoint-initdb.d"],
                     "environment": {"POSTGRES_PASSWORD": "${PG_PASS}"},
                     "healthcheck": {"test": ["CMD-SHELL", "pg_isready -U postgres"], "interval": "5s"}},
        "cache": {"image": "redis:7", "volumes": ["/data"], "command": "redis-server --appendonly yes"},
        "search_db": {"build": "./search"},
    }, "volumes": {"pgdata": {}}}
    files = {"initdb/01-schema.sql": "x", "initdb/02-seed.sql": "y", "search/Dockerfile": "FROM mongo:7\nCOPY seed.js /x\n"}
    p = plan(compose, files)
    config, _ = valid(p)
    pg = config.accessories["postgres"]
    assert pg.port == 5432 and pg.volumes == ["pgdata:/var/lib/postgresql/data"]
    assert pg.files == ["initdb/01-schema.sql:/docker-entrypoint-initdb.d/01-schema.sql",
                        "initdb/02-seed.sql:/docker-entrypoint-initdb.d/02-seed.sql"]
    assert pg.healthcheck.command == ["sh", "-c", "pg_isready -U postgres"]
    assert pg.env == {"POSTGRES_PASSWORD": "{{ secret.PG_PASS }}"}
    cache = config.accessories["cache"]
    assert (cache.port, cache.volumes, cache.command) == (6379, ["data:/data"], ["redis-server", "--appendonly", "yes"])
    search = config.accessories["search-db"]  # renamed: deploy.toml names use '-'
    assert (search.build, search.image, search.port) == ("search", None, 27017)
    assert any("'search_db' is named 'search-db'" in m for m in notes(p, "search-db"))
    assert config.environments["local"].accessories == ["cache", "postgres", "search-db"]
    assert config.services["app"].routed


@pytest.mark.parametrize("health, expected", [
    ({"test": ["CMD", "curl", "-f", "http://localhost:5000/health"]}, {"type": "http", "path": "/health"}),
    ({"test": "wget -qO- http://127.0.0.1:8000/ready?full=1 || exit 1"}, {"type": "http", "path": "/ready?full=1"}),
    ({"test": ["CMD-SHELL", "curl -fs http://localhost:5000 || exit 1"]}, {"type": "http", "path": "/"}),
    ({"test": ["CMD", "python", "-c", "import app"]}, {"type": "command", "command": ["python", "-c", "import app"]}),
    ({"test": ["CMD-SHELL", "pgrep gunicorn"]}, {"type": "command", "command": ["sh", "-c", "pgrep gunicorn"]}),
    ({"test": ["NONE"]}, {"type": "tcp"}),
    ({"disable": True}, {"type": "tcp"}),
])
def test_compose_healthchecks_translate(health, expected):
    compose = {"services": {"web": {"build": ".", "healthcheck": health}}}
    p = plan(compose)
    valid(p)
    assert p.services[0].health == expected


def test_image_healthcheck_is_used_when_compose_has_none():
    p = plan({"services": {"web": {"build": "."}}}, {"Dockerfile": "FROM python:3.12\nHEALTHCHECK --interval=5s CMD [\"/check\"]\n"})
    config, _ = valid(p)
    assert config.services["web"].healthcheck.kind == "docker"


def test_build_details_carry_over():
    compose = {"services": {"web": {"build": {"context": "./src", "dockerfile": "docker/Prod.Dockerfile", "target": "runtime",
                                              "args": {"PY": "3.12", "TAG": "${TAG:-latest}", "SHA": "${GIT_SHA}"}},
                                    "command": "gunicorn app:app", "volumes": ["./src:/app"]}}}
    p = plan(compose)
    config, _ = valid(p)
    web = config.services["web"]
    assert (web.context, web.dockerfile, web.target) == ("src", "docker/Prod.Dockerfile", "runtime")
    assert web.build_args == {"PY": "3.12", "TAG": "latest"}
    messages = " ".join(notes(p, "web"))
    assert "SHA" in messages and "command is not carried over" in messages and "volumes are not carried over" in messages


@pytest.mark.parametrize("entry, expected", [
    ("5000:5000", (5000, 5000)), ("5000", (None, 5000)), (5000, (None, 5000)),
    ("127.0.0.1:8080:80", (8080, 80)), ("127.0.0.1::80", (None, 80)), ("80/tcp", (None, 80)),
    ("8000-8001:8000-8001", (8000, 8000)), ("[::1]:8080:80", (8080, 80)),
    ("${WEB_PORT:-8080}:80", (8080, 80)), ({"target": 80, "published": "8081"}, (8081, 80)),
])
def test_port_forms(entry, expected):
    assert parse_port(entry) == expected


def test_busy_published_port_falls_back_to_8080_and_says_so():
    p = plan(BOOTCAMP, BOOTCAMP_FILES, port_is_free=lambda port: port != 5000)
    config, _ = valid(p)
    assert config.environments["local"].proxy_port == 8080
    assert any("5000" in m and "in use" in m for m in notes(p, "environment"))


def test_routing_guess_when_several_publish_is_reported():
    compose = {"services": {"ui": {"build": "./ui", "ports": ["3000:3000"], "depends_on": ["api"]},
                            "api": {"build": "./api", "ports": ["8000:8000"]}}}
    p = plan(compose)
    config, _ = valid(p)
    assert config.routed_service == "ui"
    assert any("routed on a guess" in m for m in notes(p, "ui"))


def test_nothing_to_build_is_refused():
    with pytest.raises(ValueError, match="no service with a build context"):
        plan({"services": {"db": {"image": "postgres"}}})
    with pytest.raises(ValueError, match="no services"):
        plan({"version": "3"})


def test_output_is_deterministic_whatever_the_compose_order():
    first = render(plan(BOOTCAMP, BOOTCAMP_FILES))
    for seed in range(5):
        items = list(BOOTCAMP["services"].items())
        random.Random(seed).shuffle(items)
        env = dict(BOOTCAMP["services"]["db"]["environment"])
        shuffled = {**BOOTCAMP, "services": dict(items)}
        shuffled["services"]["db"] = {**shuffled["services"]["db"], "environment": dict(reversed(list(env.items())))}
        assert render(plan(shuffled, BOOTCAMP_FILES)) == first


def test_with_defaults_for_non_env_values():
    assert with_defaults("${IMG:-mysql:8}") == ("mysql:8", [])
    assert with_defaults("${REGISTRY}/app") == ("/app", ["REGISTRY"])


def test_a_migration_tool_in_a_build_context_gets_a_schema_version_note():
    files = {**BOOTCAMP_FILES, "backend/alembic.ini": "[alembic]\n", "frontend/manage.py": "import django\n"}
    p = plan(BOOTCAMP, files)
    [backend] = [n for n in notes(p, "backend") if "schema_version" in n]
    assert backend.startswith('alembic.ini found: add schema_version = ["alembic", "current"]')
    [frontend] = [n for n in notes(p, "frontend") if "schema_version" in n]
    assert '"manage.py", "showmigrations", "--plan"]' in frontend
    assert not [n for n in notes(plan(BOOTCAMP, BOOTCAMP_FILES)) if "schema_version" in n]
