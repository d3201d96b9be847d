"""Issue 26 item 5, on the fake host (a whole deploy): the owner of an image named by its
content is remembered on the host (plan/pipeline/image_user.owner_cache_path), so a redeploy
of that image asks the engine nothing about its user: main ran `docker image inspect
--format {{.Config.User}}` on every deploy, and for a named USER the accounts script too (a
`docker create`, two `docker cp`, a `docker rm`: 5 docker processes and a container created
and removed per deploy of the probe app, ~1,500 times in a CI run)."""

from __future__ import annotations

from deployctl.events import Recorder
from deployctl.plan.lifecycle import docker_commands as dc
from deployctl.services.env import Env
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.lifecycle.release_images import ReleaseImages
from tests.support.fake_host import FakeHost
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
