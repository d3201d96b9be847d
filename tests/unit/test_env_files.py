"""A release's rendered env file (secrets) leaves the host once its containers exist; a
one-off `exec --new` makes it again from the live container's config, and removes it."""

from __future__ import annotations

from pathlib import Path

from deployctl.config import LoadedConfig, parse_config
from deployctl.events import Recorder
from deployctl.plan.operate import exec as exec_plan
from deployctl.secrets import Secret
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.hosts import layout_for
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.env import Env
from tests.support.fake_host import FakeHost
from tests.unit.test_lifecycle_rules import CONFIG, PROXY_IMAGE, virtual_time  # noqa: F401

LOADED = LoadedConfig(Path("/project/deploy.toml"), parse_config(CONFIG.replace(
    '[services.frontend.env]\n', '[services.frontend.env]\nAPI_KEY = "key-{{ secret.API_KEY }}"\n')))
SECRETS = {"DB_PASSWORD": Secret("s3cret"), "API_KEY": Secret("k3y-value")}
LAYOUT = layout_for(LOADED, "local")


def test_the_env_file_is_written_for_the_create_and_gone_once_the_containers_exist():
    host = FakeHost("local", images=["sha256:back1", "sha256:front1", PROXY_IMAGE])
    images = ReleaseImages({"backend": "sha256:back1", "frontend": "sha256:front1"}, "0000001")
    release = deploy(Env.resolve(LOADED, "local"), images, SECRETS, Recorder(), connectors=[host], now=1_780_000_060).release
    env_file = LAYOUT.env_file(release, "frontend")
    texts = [text for _, text in host.calls]
    created = next(i for i, t in enumerate(texts) if t.startswith("docker create") and "frontend" in t)
    removed = next(i for i, t in enumerate(texts) if t.startswith("rm -f") and env_file in t)
    assert f"--env-file {env_file}" in texts[created] and removed > created
    assert host.text(env_file) is None  # gone; the secret mounts (the live release's) stay
    assert host.text(LAYOUT.secret_file(release, "backend", "DB_PASSWORD")) == "s3cret"
    assert not [t for t in texts if "k3y-value" in t]


def test_exec_new_rebuilds_the_env_file_on_the_host_from_the_live_container():
    argv = exec_plan.env_file_from("shop-local-web-R", ["B_KEY", "A_KEY"], "/srv/state/secrets/R/web.env")
    assert argv == ["sh", "-c", 'umask 077 && docker inspect --format "{{range .Config.Env}}{{println .}}{{end}}" "$1" '
                                '| grep -E "$2" > "$3"', "sh", "shop-local-web-R", "^(A_KEY|B_KEY)=",
                    "/srv/state/secrets/R/web.env"]


def test_a_swarm_manager_loses_the_env_files_once_the_services_exist():
    from types import SimpleNamespace

    from deployctl.adapters.connector import CommandResult
    from deployctl.events import Message
    from deployctl.services.swarm.swarm_deploy import _forget_env

    ran: list[list[str]] = []
    manager = SimpleNamespace(run=lambda argv: ran.append(list(argv)) or CommandResult(0, "", ""))
    plan = SimpleNamespace(target=SimpleNamespace(release="R"), services=[
        SimpleNamespace(env_file="/s/R/web.env"), SimpleNamespace(env_file=""), SimpleNamespace(env_file="/s/R/api.env")])
    events: list = []
    _forget_env(SimpleNamespace(manager=manager), plan, events.append, "manager")
    assert ran == [["rm", "-f", "--", "/s/R/web.env", "/s/R/api.env"]] and events == []
    failing = SimpleNamespace(run=lambda argv: CommandResult(1, "", "read-only"))
    _forget_env(SimpleNamespace(manager=failing), plan, events.append, "manager")
    assert [e.level for e in events if isinstance(e, Message)] == ["warning"]
