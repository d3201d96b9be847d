"""An app whose only health checks are `http` (frontend: GET /healthz) and `tcp` (backend),
with no HEALTHCHECK and no curl in its image, on the three-node Swarm: deployctl checks
every task of the new release itself, over the app's overlay network from a short-lived
checker on the manager, before the switch. Under continuous traffic through the load
balancer: deploy v1 -> v2 (0 failed requests, v2 answers after the switch), then a v3
whose /healthz answers 503 (exit 6, 0 failed requests, v2 keeps serving, v3 removed).
Then `scale frontend=4`: recorded, kept by the rollback to v1 (under traffic) and by the
next deploy, until deploy.toml changes frontend's replicas."""

from __future__ import annotations

import pytest

from deployctl.errors import ExitCode
from tests.integration.swarm.site import ENV, Phases, json_lines

pytestmark = pytest.mark.integration


def ok(done) -> list[dict]:  # type: ignore[no-untyped-def]
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    return json_lines(done.stdout)


def test_an_app_with_only_http_and_tcp_checks_deploys_a_failing_http_check_is_refused_and_a_scale_is_kept(
        swarm, swarm_http_site, swarm_http_balancer):
    site = swarm_http_site
    under_traffic = Phases(swarm_http_balancer)

    def checkers() -> str:
        return swarm.manager.exec("docker", "ps", "-aq", "--filter", f"label=io.deployctl.app={site.app}",
                                  "--filter", "label=io.deployctl.role=check", check=False).strip()


    # The dry run names the checker and the checks it runs.
    site.artifacts("1111111aaaa")
    dry = site.cli("deploy", "--env", ENV, "--dry-run")
    assert dry.returncode == 0 and "deployctl's own check of every task" in dry.stdout, dry.stdout + dry.stderr
    assert "GET http://<" in dry.stdout and "/healthz answers 200" in dry.stdout and "accepts a TCP" in dry.stdout

    # v1: every task checked by deployctl (3 frontend over http, 2 backend over tcp).
    events = ok(site.deploy("1111111aaaa", "--json"))
    v1 = events[-1]["release"]
    checked = [e["detail"] for e in events if e.get("event") == "step_progress" and "check by deployctl" in
               e.get("detail", "")]
    assert sum("(http check" in d for d in checked) == 3 and sum("(tcp check" in d for d in checked) == 2, checked
    assert site.current() == v1
    frontend = site.service("frontend", v1)
    # No HEALTHCHECK runs in the tasks: Swarm never stops one on a check the config did not choose.
    spec = swarm.manager.exec("docker", "service", "inspect", "--format",
                              "{{json .Spec.TaskTemplate.ContainerSpec.Healthcheck}}", frontend)
    assert '"NONE"' in spec, spec
    assert checkers() == ""  # the checker is removed after the wait

    # v1 -> v2 under traffic.
    done, report, returned = under_traffic("deploy v2 (http/tcp checks)", lambda: site.deploy("2222222bbbb", "--json"))
    events = ok(done)
    v2 = events[-1]["release"]
    health = next(e for e in events if e.get("event") == "step_done" and e.get("step") == "health")
    assert "5 checked by deployctl" in health.get("detail", ""), health
    assert report.total > 50 and report.failures == [], report.summary()
    assert report.wrong_release_after(returned, v2) == [], report.summary()
    assert site.current() == v2 and checkers() == ""

    # v3's /healthz answers 503: deployctl's check refuses it, v2 never stops serving.
    site.write_config(health_timeout=6, checks="http", migrate=False)
    done, report, _ = under_traffic("failing http check v3",
                                    lambda: site.deploy("3333333cccc", frontend=site.images.broken))
    output = done.stdout + done.stderr
    assert done.returncode == ExitCode.DEPLOY_FAILED, output[-4000:]
    assert "not healthy after 6s (/healthz answered 503" in output, output[-4000:]
    assert "Traceback" not in output
    assert report.failures == [] and set(report.releases()) == {v2}, report.summary()
    assert site.current() == v2
    last = site.history().records[-1]
    assert (last.action, last.outcome) == ("deploy", "failed") and "answered 503" in last.error, last
    assert not any(last.release in name for name in swarm.services(site.app))
    assert checkers() == ""

    # `scale` is recorded and kept: a rollback and the next deploy run the scaled count
    # (deploy.toml still says frontend = 3, the count the scale overrode).
    ok(site.cli("scale", "--env", ENV, "frontend=4"))
    last = site.history().records[-1]
    assert (last.action, last.release, last.outcome) == ("scale", v2, "succeeded"), last
    assert last.extra["scaled"] == {"frontend": [4, 3]} and last.extra["replicas"] == {"backend": 2, "frontend": 4}
    listed = ok(site.cli("--json", "releases", "--env", ENV))[-1]["hosts"]
    [row] = [r for rows in listed.values() for r in rows if r["release"] == v2]
    assert row["last_scale"].startswith("backend=2, frontend=4 at ") and "last_rollback" not in row, row
    done, report, returned = under_traffic("rollback after scale frontend=4",
                                           lambda: site.cli("rollback", "--env", ENV, "--json"))
    ok(done)
    assert report.failures == [] and report.wrong_release_after(returned, v1) == [], report.summary()
    assert site.current() == v1
    assert sum(swarm.running_tasks(site.service("frontend", v1)).values()) == 4
    assert site.history().records[-1].extra["scaled"] == {"frontend": [4, 3]}  # carried forward
    site.write_config(checks="http", migrate=False)
    v4 = ok(site.deploy("4444444dddd", "--json"))[-1]["release"]
    assert sum(swarm.running_tasks(site.service("frontend", v4)).values()) == 4
    assert sum(swarm.running_tasks(site.service("backend", v4)).values()) == 2
    # deploy.toml changed frontend's replicas: its word wins over the old scale.
    site.write_config(checks="http", frontend_replicas=2, migrate=False)
    v5 = ok(site.deploy("5555555eeee", "--json"))[-1]["release"]
    assert sum(swarm.running_tasks(site.service("frontend", v5)).values()) == 2
    assert "scaled" not in site.history().records[-1].extra
    print(under_traffic.summary())
