"""The lock's owner rule over a real sshd: a holder whose lock was broken leaves its
successor's lock in place (mkdir over SFTP, removal by `rm -rf` over SSH)."""

from __future__ import annotations

import os
import time

import pytest

from deployctl.events import Message, Recorder
from deployctl.plan.pipeline.build import rfc3339
from deployctl.plan.lifecycle.lock import LockRecord
from deployctl.plan.lifecycle.names import StateLayout
from deployctl.services.lifecycle.host_state import HostState
from deployctl.services.hosts import machine
from tests.integration.test_deploy_ssh import connector

pytestmark = pytest.mark.integration


def test_a_broken_holder_releasing_over_ssh_leaves_the_new_lock(ssh_host, tmp_path):
    a_conn, b_conn = connector(ssh_host).connect(), connector(ssh_host).connect()
    layout = StateLayout(str(tmp_path), "shop", "prod")
    events = Recorder()
    try:
        a, b = HostState(a_conn, layout, events), HostState(b_conn, layout, events)
        a.acquire(LockRecord(who="alice@ci", when=rfc3339(time.time() - 100), action="deploy", pid=os.getpid(),
                             host=machine(), timeout=10))  # alive but past its limit: stale
        assert b.acquire(LockRecord(who="bob@ci", when=rfc3339(time.time()), action="deploy", pid=os.getpid(),
                                    host=machine(), timeout=3600), force=True).who == "alice@ci"
        a.release()
        assert b.holder() is not None and b.holder().who == "bob@ci"
        assert any("bob@ci" in e.text for e in events.of(Message) if e.level == "warning")
        assert not os.path.exists(layout.lock_dir + ".op")
        b.release()
        assert not os.path.exists(layout.lock_dir)
    finally:
        a_conn.close()
        b_conn.close()
