"""A service's least-privilege and limit keys on the real engine: the container deploy
creates (plan/lifecycle/docker_commands.create_service, the very argv) runs with no-new-privileges, a
read-only root with a writable /tmp, the dropped capabilities and the limits."""

from __future__ import annotations

import json
import uuid

import pytest

from deployctl.adapters.connector import check
from deployctl.adapters.local import LocalConnector
from deployctl.plan.lifecycle import docker_commands as dc
from deployctl.plan.lifecycle.containers import ContainerSpec
from deployctl.plan.cloud.hardening import Hardening

pytestmark = pytest.mark.integration

PROBE = ("grep NoNewPrivs /proc/self/status; grep CapBnd /proc/self/status; touch /probe 2>/dev/null || echo root-ro; "
         "touch /tmp/probe && echo tmp-rw")


def test_the_created_container_runs_hardened(standin_images) -> None:
    conn, name = LocalConnector(), f"deployctl-hardening-{uuid.uuid4().hex[:8]}"
    spec = ContainerSpec("web", name, standin_images["python"], 8000, "/", {}, hardening=Hardening(
        cap_drop=("ALL",), read_only=True, memory="64m", cpus=0.5, pids_limit=50))
    create = dc.create_service(spec, "bridge")
    create[create.index(spec.image) + 1:] = ["sh", "-c", PROBE]
    create[create.index("--network-alias"):create.index("--network-alias") + 2] = []  # none on the default bridge
    try:
        check(conn, create)
        out = check(conn, ["docker", "start", "--attach", name], timeout=60)
        host = json.loads(check(conn, ["docker", "inspect", "--format", "{{json .HostConfig}}", name]))
    finally:
        conn.run(dc.remove([name]))
    assert "NoNewPrivs:\t1" in out and "CapBnd:\t0000000000000000" in out
    assert "root-ro" in out and "tmp-rw" in out
    assert host["SecurityOpt"] == ["no-new-privileges"] and host["ReadonlyRootfs"] is True
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (64 * 1024 * 1024, 500_000_000, 50)


def test_this_engines_docker_cli_takes_the_swarm_flags() -> None:
    """The Swarm argv (plan/swarm/services.py: create_service) as this machine's docker CLI parses it:
    a flag it does not know, or a value it cannot read, fails before anything is sent; the
    network that does not exist is what stops it here. (That a Swarm runs tasks with the
    limits is not covered: that needs the fleet's Swarm.)"""
    from deployctl.plan.swarm import services as sw
    from deployctl.plan.lifecycle.release_spec import HealthProbe

    svc = sw.SwarmService("web", f"deployctl-flags-{uuid.uuid4().hex[:8]}", "deployctl-standin/python:3.11-bookworm",
                          8000, 1, {}, HealthProbe("c", "web", "docker", 8000),
                          hardening=Hardening(cap_drop=("ALL", "NET_RAW"), read_only=True, memory="512m", cpus=1.5,
                                              pids_limit=50))
    argv = sw.create_service(svc, f"deployctl-no-such-network-{uuid.uuid4().hex[:8]}")
    assert "--limit-pids" in argv
    result = LocalConnector().run(argv, timeout=60)
    if result.ok:  # this engine is a Swarm manager and the network existed after all: clean up
        LocalConnector().run(["docker", "service", "rm", svc.name])
    assert "unknown flag" not in result.stderr and "invalid argument" not in result.stderr, result.stderr
    assert "not found" in result.stderr or "not a swarm manager" in result.stderr, result.stderr
