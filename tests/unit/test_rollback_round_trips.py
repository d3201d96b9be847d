"""The engine calls of a warm rollback on the fake host (issue 26 item 2: an instant rollback;
each `docker` call is a process and a round trip to the engine, 0.03-0.2 s): after its verify,
no `docker exec` (the target's own nginx.conf was tested beside the verify: only renamed and
HUPed), the retire's listings at once (the running workers read from its `docker ps`), and
the engine check of the connect (`docker version`) runs beside the target's
check instead of before it, while a host whose docker is unusable is still said first."""

from __future__ import annotations

import re
import threading

import pytest

from deployctl.adapters.connector import CommandResult
from deployctl.errors import ConnectError, ExitCode, RollbackError
from deployctl.plan.lifecycle import rollout as plan
from tests.support.fake_host import FakeHost, Fault
from tests.unit.test_lifecycle_rules import (PROXY, WARM, Site, current, local_site, locked,  # noqa: F401
                                             virtual_time)

UNUSABLE = CommandResult(1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock")


def docker_processes(text: str) -> int:
    """The `docker` CLI processes one run call starts (each part of an `sh -c` chain counted)."""
    if text.startswith("sh -c "):
        return len(re.findall(r"(?:^|&& |; |\()docker ", text[len("sh -c "):]))
    return 1 if text.startswith("docker ") else 0


def after_verify(host: FakeHost, since: int) -> list[str]:
    """The run calls after the rollback's last request through the proxy (its verify)."""
    calls = host.calls[since:]
    last = max(i for i, (call, text) in enumerate(calls) if call == "http_get" and re.search(PROXY, text))
    return [text for call, text in calls[last + 1:] if call == "run"]


@pytest.fixture
def warm():
    gen = local_site("warm")
    site, host = next(gen)
    site.r2 = site.deploy()
    yield site, host
    next(gen, None)


def test_after_a_warm_rollbacks_verify_no_docker_exec_runs_and_fewer_docker_processes(warm):
    site, host = warm
    before = len(host.calls)
    [outcome] = site.rollback()
    assert outcome.outcome == plan.SUCCEEDED and host.serving() == site.r1 and current(host, WARM) == site.r1
    ran = after_verify(host, before)
    assert not [text for text in ran if "docker exec" in text or "nginx -t" in text], ran
    # The rename and HUP (one sh -c: mv, docker kill), the retire's two listings at once (its
    # docker ps, whose worker label says the running workers, and prune's docker network ls):
    # 5 before (the `nginx -t` exec, and the workers' own docker ps).
    assert sum(docker_processes(text) for text in ran) == 3, ran
    assert not [text for text in ran if "label=io.deployctl.worker=true" in text]


def test_the_engine_check_runs_beside_the_targets_check(warm):
    """`docker version` (the connect's check) is not waited for before the target's containers
    are listed: it answers here only once that listing started (bounded: 2 s)."""
    site, host = warm
    listed = threading.Event()
    seen: list[bool] = []

    def version(argv):  # type: ignore[no-untyped-def]
        seen.append(listed.wait(2.0))
        return host._run(argv)

    def listing(argv):  # type: ignore[no-untyped-def]
        listed.set()
        return host._run(argv)

    host.faults.append(Fault("run", r"^docker version ", effect=version))
    host.faults.append(Fault("run", r"^docker ps --all .*io\.deployctl\.release", effect=listing))
    [outcome] = site.rollback()
    assert outcome.outcome == plan.SUCCEEDED and seen == [True]


@pytest.mark.parametrize("to", [None, "20990101-000000-0000009"], ids=["the previous release", "never deployed"])
def test_a_host_whose_docker_is_unusable_is_said_first_and_nothing_is_locked(warm, to):
    # Before, the connect waited for `docker version`: its failure came before any look at the
    # history or the target's containers. It still does, though they ran beside it.
    site, host = warm
    host.faults.append(Fault("run", r"^docker version ", effect=lambda argv: UNUSABLE))
    host.faults.append(Fault("run", r"^docker (ps|container inspect) ", times=0, effect=lambda argv: UNUSABLE))
    error = site.failing_rollback(ConnectError, to=to)
    assert error.message.startswith("local: docker is not usable: Cannot connect to the Docker daemon")
    assert error.exit_code == ConnectError("x").exit_code
    assert current(host, WARM) == site.r2 and not locked(host, WARM) and host.serving() == site.r2


def test_a_refused_target_on_a_usable_engine_is_refused_as_before(warm):
    site, host = warm
    error = site.failing_rollback(RollbackError, to="20990101-000000-0000009")
    assert error.exit_code == ExitCode.DEPLOY_FAILED and "was never deployed successfully here" in error.message
    assert not locked(host, WARM)


def test_every_host_whose_docker_is_unusable_is_named_beside_one_whose_reads_failed():
    hosts = [FakeHost("h1"), FakeHost("h2")]
    site = Site("prod", hosts)
    site.deploy()
    site.deploy()
    hosts[0].put_file(site.layout.current, b"not a release id\n")  # h1's reads fail (exit 7: edited)
    hosts[1].faults.append(Fault("run", r"^docker version ", effect=lambda argv: UNUSABLE))
    error = site.failing_rollback()
    assert error.message.startswith("h1: /srv/state/shop/prod/current: ")
    assert "\nh2: docker is not usable: Cannot connect" in error.message
    assert not locked(hosts[0], site.layout) and not locked(hosts[1], site.layout)
