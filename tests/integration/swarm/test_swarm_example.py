"""An app we did not write on the three-node Swarm (issue 12's "any app"): the example
(examples/bootcamp-users) as `deployctl init` wrote its deploy.toml from its compose file,
with what a team moving it to a Swarm adds: a registry, a swarm environment, the database
pinned to a node (its data is in a volume there), and images its nodes can pull (this
machine's nodes reach no public registry, so mysql and nginx come from the session one).
Its database is initialised by the compose file's init SQL, which reaches the pinned node
as a Docker config. Deploy v1; under traffic through a load balancer in front of every
node: release v2, roll back to v1. No failed request; after each switch every answer comes
from the switched-to release (the proxy's stamp); the rows from init.sql are served. v2
comes by `deployctl release --env swarm` (build, test, push, deploy: the whole pipeline
against the Swarm), its images pushed by this machine's engine and pulled by the nodes."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from deployctl.artifacts import read_artifacts, write_artifacts
from tests.integration.test_example_deploy import (a_second_revision, cli, events, example,  # noqa: F401 - a fixture
                                                   page_at, result, step_done_at)
from tests.support.swarm import wait_for
from tests.support.traffic import Traffic

pytestmark = pytest.mark.integration


def test_the_example_from_init_deploys_and_rolls_back_on_the_swarm_under_traffic(swarm, swarm_images, example):
    project, app, env = example
    fleet = swarm.fleet
    port = fleet.proxy_port()  # the proxy port on every node, no other app's on this fleet
    pinned = swarm.workers[0].exec("hostname").strip()
    mysql = fleet.publish("mysql:5.7", f"{app}/mysql", "5.7")  # the stand-in, under the compose file's name
    toml = project / "deploy.toml"
    text = toml.read_text()
    assert 'files = ["db/init.sql:/docker-entrypoint-initdb.d/init.sql"]' in text  # init kept the compose mount
    # The registry as this machine's engine pushes to it and, through a forwarder on each
    # node's loopback, as the nodes pull from it: `deployctl release` builds, pushes, deploys.
    text = text.replace(f'app = "{app}"', f'app = "{app}"\n\n[registry]\nserver = "{fleet.local_registry}"', 1)
    text = text.replace('image = "mysql:5.7"', f'image = "{mysql}"\nplacement = ["node.hostname=={pinned}"]', 1)
    text += (f'\n[proxy]\nimage = "{swarm_images.proxy}"\n'
             f'\n[environments.swarm]\ntarget = "swarm"\nmanager = "{swarm.manager.address}"\nproxy_port = {port}\n'
             'state_dir = "/var/lib/deployctl"\nsecrets = "env"\naccessories = ["db"]\n'
             f'[environments.swarm.ssh]\nuser = "root"\nkey_file = "{fleet.key_file}"\n'
             f'known_hosts = "{fleet.known_hosts_file}"\n')
    toml.write_text(text)
    balancer = swarm.load_balancer(port)
    try:
        with swarm.registry_on_loopback(swarm_images.proxy):
            _cycle(project, app, env, fleet, balancer, swarm)
    finally:
        balancer.close()
        swarm.remove_app(app)
        for node in swarm.nodes:  # the database's volume, on the node it was pinned to
            node.exec("sh", "-c", f"docker volume ls -q --filter name={app}- | xargs -r docker volume rm -f",
                      check=False)


def _cycle(project, app, env, fleet, balancer, swarm) -> None:  # type: ignore[no-untyped-def]
    def ok(*argv: str):  # type: ignore[no-untyped-def]
        done = cli(*argv, cwd=project, env=env)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
        return done

    def build() -> None:
        """`deployctl build`, then its images pushed where the nodes pull (what `deployctl
        push` does against a registry this machine's engine may push to over plain HTTP)."""
        ok("build")
        path = project / ".deployctl" / "build.json"
        artifacts = read_artifacts(path)
        for name, image in artifacts.images.items():
            ref = fleet.publish(image.image_id, f"{app}/{name}", image.tag)
            artifacts = artifacts.with_image(name, replace(image, repository=ref.split("@")[0],
                                                           digest=ref.split("@")[1]))
        write_artifacts(path, artifacts)

    url = balancer.url
    build()
    first = ok("deploy", "--env", "swarm", "--json")
    v1 = result(first)["release"]
    print("\nv1's steps: " + ", ".join(f"{e['step']} {e.get('seconds') or 0:.1f}s" for e in events(first)
                                      if e.get("event") == "step_done"))
    assert env["DB_PASSWORD"] not in first.stdout + first.stderr
    # init.sql ran in the pinned database (a Docker config there): its rows come back.
    try:
        wait_for(lambda: "Ada Lovelace" in page_at(url), 180, "the example's users (from init.sql) through the proxy")
    except TimeoutError as error:
        logs = {name: swarm.manager.exec("sh", "-c", f"docker service logs --tail 15 {service} 2>&1", check=False)
                for name, service in (("db", f"{app}-swarm-db"), ("backend", f"{app}-swarm-backend-{v1}"),
                                      ("frontend", f"{app}-swarm-frontend-{v1}"))}
        raise AssertionError(f"{error}; the page: {page_at(url)[-1500:]!r}; logs: {logs}") from None
    db = f"{app}-swarm-db"
    assert {t for t in swarm.running_tasks(db)} == {swarm.workers[0].exec("hostname").strip()}

    a_second_revision(project)
    with Traffic(f"{url}/", workers=4, max_seconds=600) as traffic:
        time.sleep(1)
        # The whole pipeline against the Swarm: build, test, push (this machine's engine to
        # the registry), deploy (the nodes pull what was pushed, by digest).
        second = ok("release", "--env", "swarm", "--json")
        v2 = result(second)["release"]
        stages = {s["stage"]: s["outcome"] for s in result(second)["stages"]}
        print("release on the swarm: " + ", ".join(f"{s['stage']} {s['outcome']} {s['seconds']:.1f}s"
                                                   for s in result(second)["stages"]))
        print("its deploy's steps: " + ", ".join(f"{e['step']} {e.get('seconds') or 0:.1f}s" for e in events(second)
                                                 if e.get("event") == "step_done"))
        assert stages == {"build": "ok", "test": stages["test"], "push": "ok", "deploy": "ok"}, stages
        assert stages["test"] in ("ok", "skipped"), result(second)["stages"]
        pushed = read_artifacts(project / ".deployctl" / "build.json").images
        assert all(image.repository.startswith(fleet.local_registry) and image.digest for image in pushed.values())
        frontend = swarm.manager.exec("docker", "service", "inspect", "--format",
                                      "{{.Spec.TaskTemplate.ContainerSpec.Image}}", f"{app}-swarm-frontend-{v2}")
        assert frontend.strip().startswith(f"{fleet.local_registry}/") and "@sha256:" in frontend, frontend
        time.sleep(1)
        rollback_started = time.time()
        back = ok("rollback", "--env", "swarm", "--json")
        time.sleep(1.5)
    report = traffic.report
    # Inside the warm window (600 s by default) the example's rollback is every node's standby
    # flag, as test_swarm.py proves for the probe app: no reload before the verify.
    assert any(e.get("step") == "route" and "standby flag" in e.get("detail", "") for e in events(back)), \
        [e for e in events(back) if e.get("event") == "step_done"]
    print(f"example on the swarm: {report.summary()}")
    assert report.total > 50, report.summary()
    assert report.failures == [], report.summary() + repr(report.failures[:3])
    # On a Swarm the route reloads each node's proxy (`nginx -s reload` returns before the
    # old workers stop accepting); the verify after it is when every node answers with the
    # release, as tests/integration/swarm/test_swarm.py counts it.
    to_v2, to_v1 = step_done_at(second, "verify"), step_done_at(back, "verify")
    routed = step_done_at(second, "route")
    late = [round(s.started - routed, 3) for s in report.samples
            if routed <= s.started < rollback_started and set(s.releases) != {v2}]
    print(f"answers from v1 after the route to v2 ended: {len(late)}, at +{late} s")
    assert [s for s in report.samples if to_v2 <= s.started < rollback_started and set(s.releases) != {v2}] == []
    assert report.wrong_release_after(to_v1, v1) == []
    assert {v1, v2} <= set(report.releases()), report.summary()
    assert "<p>v2</p>" not in page_at(url) and "Ada Lovelace" in page_at(url)
