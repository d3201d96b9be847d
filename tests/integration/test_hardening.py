"""A service's least-privilege and limit keys on the real engine: the container deploy
creates (plan/docker_commands.create_service, the very argv) runs with no-new-privileges, a
read-only root with a writable /tmp, the dropped capabilities and the limits."""

from __future__ import annotations

import json
import uuid

import pytest

from deployctl.adapters.connector import check
from deployctl.adapters.local import LocalConnector
from deployctl.plan import docker_commands as dc
from deployctl.plan.containers import ContainerSpec
from deployctl.plan.hardening import Hardening

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
