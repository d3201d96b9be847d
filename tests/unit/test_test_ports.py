"""free_port() under pytest-xdist (tests/support/net.py): each worker hands out ports from a
block of its own below the kernel's ephemeral range, one after another, so two workers never
pick the same port between one's check and its bind."""

from __future__ import annotations

import pytest

from tests.support import net


@pytest.mark.parametrize("worker, block", [("gw0", range(20000, 21000)), ("gw3", range(23000, 24000))])
def test_a_worker_takes_ports_from_its_own_block_in_turn(monkeypatch, worker, block):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setattr(net, "_next_ports", None)
    ports = [net.free_port() for _ in range(5)]
    assert all(port in block for port in ports) and len(set(ports)) == 5, ports


def test_outside_xdist_the_kernel_picks(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.setattr(net, "_next_ports", None)
    low, _ = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    assert net.free_port() >= low  # bind(0): from the ephemeral range, never a worker block
