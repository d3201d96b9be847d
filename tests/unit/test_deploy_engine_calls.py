"""Issue 26 item 5 (the test suite's CPU: every `docker` call is a process on the host and
work for dockerd), on the fake host, whole deploys: the engine calls a deploy no longer makes.

- The owner of an image named by its content is remembered on the host
  (plan/pipeline/image_user.owner_record, one file per service), so a redeploy of that image asks the engine
  nothing about its user: main ran `docker image inspect --format {{.Config.User}}` on every
  deploy, and for a named USER the accounts script too (a `docker create`, two `docker cp`,
  a `docker rm`: 5 docker processes and a container created and removed per deploy).
- The app's and the release's networks are looked up in one `docker network inspect` (main: two).
- The migration's one-off container is created first; the `docker rm` of a leftover runs
  only when one holds the name (main: a `docker rm` before every create, finding nothing)."""

from __future__ import annotations

import pytest

from deployctl.adapters.connector import CommandResult
from deployctl.events import Recorder
from deployctl.plan.lifecycle import docker_commands as dc
from deployctl.services.env import Env
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.errors import DeployctlError
from tests.support.fake_host import FakeHost, Fault
from tests.unit.test_lifecycle_rules import LOADED, PROXY_IMAGE, SECRETS, virtual_time  # noqa: F401


def test_a_deploy_of_an_image_deployed_before_asks_the_engine_nothing_about_its_user():
    """On the fake host (the whole deploy): the second deploy of the same backend image runs
    no `docker image inspect --format {{.Config.User}}` (main: one on every deploy, and the
    accounts script for a named user); a new image is asked once."""
    back, back2, front = ("sha256:" + c * 64 for c in "abc")
    host = FakeHost("local", images=[back, back2, front, PROXY_IMAGE])

    def user_lookups(backend: str, revision: str) -> list[str]:
        before = len(host.calls)
        deploy(Env.resolve(LOADED, "local"), ReleaseImages({"backend": backend, "frontend": front}, revision),
               SECRETS, Recorder(), connectors=[host])
        return [text for call, text in host.calls[before:] if call == "run" and "{{.Config.User}}" in text]

    assert user_lookups(back, "0000001") == [" ".join(dc.image_user(back))]
    assert user_lookups(back, "0000002") == []
    assert user_lookups(back2, "0000003") == [" ".join(dc.image_user(back2))]
    assert not host.unknown


def deploy_calls(host: FakeHost, revision: str, images: tuple[str, str]) -> list[str]:
    before = len(host.calls)
    deploy(Env.resolve(LOADED, "local"), ReleaseImages({"backend": images[0], "frontend": images[1]}, revision),
           SECRETS, Recorder(), connectors=[host])
    return [text for call, text in host.calls[before:] if call == "run"]


IMAGES = ("sha256:back1", "sha256:front1")


def fake_host() -> FakeHost:
    return FakeHost("local", images=[*IMAGES, PROXY_IMAGE])


def test_a_deploy_looks_its_networks_up_in_one_docker_process():
    host = fake_host()
    for revision in ("0000001", "0000002"):  # the first creates the app's network, the second finds it
        ran = deploy_calls(host, revision, IMAGES)
        lookups = [t for t in ran if t.startswith("docker network inspect ") and "IPAM" not in t]  # IPAM: a subnet's pick
        assert len(lookups) == 1, ran
    assert not host.unknown


def test_a_migration_removes_no_container_before_its_create_when_none_holds_the_name():
    host = fake_host()
    ran = deploy_calls(host, "0000001", IMAGES)
    creates = [i for i, t in enumerate(ran) if t.startswith("docker create --name shop-local-migrate-")]
    removes = [i for i, t in enumerate(ran) if t.startswith("docker rm ") and "-migrate-" in t]
    assert len(creates) == 1 and len(removes) == 1 and removes[0] > creates[0], ran  # only the one after it ran


def test_a_leftover_holding_the_migrations_name_goes_and_the_create_runs_again():
    host = fake_host()
    conflict = Fault("run", r"^docker create --name shop-local-migrate-",
                     effect=lambda argv: CommandResult(
                         125, "", 'Error response from daemon: Conflict. The container name "/x" is already in use'))
    host.faults.append(conflict)
    ran = deploy_calls(host, "0000001", IMAGES)
    first = next(i for i, t in enumerate(ran) if t.startswith("docker create --name shop-local-migrate-"))
    assert ran[first + 1].startswith("docker rm --force --volumes shop-local-migrate-"), ran
    assert ran[first + 2].startswith("docker create --name shop-local-migrate-"), ran
    assert conflict.fired == 1


def test_a_migration_create_failing_otherwise_fails_the_deploy_with_no_retry():
    host = fake_host()
    host.faults.append(Fault("run", r"^docker create --name shop-local-migrate-", times=0))
    before = len(host.calls)
    with pytest.raises(DeployctlError):
        deploy(Env.resolve(LOADED, "local"), ReleaseImages(dict(zip(("backend", "frontend"), IMAGES)), "0000001"),
               SECRETS, Recorder(), connectors=[host])
    creates = [t for c, t in host.calls[before:] if c == "run" and t.startswith("docker create --name shop-local-migrate-")]
    assert len(creates) == 1
