"""The deploy lock: only its owner releases it, --force-unlock breaks only a stale lock, a
live one only when asked for by name and confirmed. Against a state directory on this
machine (LocalConnector), with real processes racing for release and break."""

from __future__ import annotations

import json
import multiprocessing
import os
import time

import pytest

from deployctl.adapters.local import LocalConnector
from deployctl.errors import LockHeldError, UsageError
from deployctl.events import Recorder
from deployctl.plan.pipeline.build import rfc3339
from deployctl.plan.lifecycle.lock import LockRecord, Unlock, stale_reason
from deployctl.plan.lifecycle.names import StateLayout
from deployctl.services.lifecycle.host_state import HostState
from deployctl.services.hosts import machine

R1 = "20261202-010000-abc1234"


def _state(root, emit=None) -> HostState:
    return HostState(LocalConnector(), StateLayout(str(root), "shop", "prod"), emit)


def _record(who: str, *, age: float = 0.0, timeout: float = 3600.0, pid: int | None = None) -> LockRecord:
    """A holder on this machine, `age` seconds old; `pid` defaults to this (live) process."""
    return LockRecord(who=who, when=rfc3339(time.time() - age), action="deploy", release=R1,
                      pid=os.getpid() if pid is None else pid, host=machine(), timeout=timeout)


def _dead_pid() -> int:
    child = multiprocessing.get_context("fork").Process(target=lambda: None)
    child.start()
    child.join()
    return child.pid


def _info(state: HostState) -> dict:
    return json.loads(open(state.layout.lock_info).read())


def test_the_lock_records_its_owner_with_a_token_and_only_the_owner_releases_it(tmp_path):
    events = Recorder()
    a, b = _state(tmp_path, events), _state(tmp_path, events)
    a.acquire(_record("alice@ci", age=100, timeout=10))  # held past its limit: stale, although alive
    token_a = _info(a)["token"]
    assert len(token_a) == 32 and _info(a)["pid"] == os.getpid() and _info(a)["host"] == machine()
    broken = b.acquire(_record("bob@ci"), force=True)
    assert broken is not None and broken.who == "alice@ci"
    token_b = _info(b)["token"]
    assert token_b != token_a

    a.release()  # A finishes: the lock is B's now, and stays
    assert _info(b)["token"] == token_b
    warnings = [e.text for e in events.events if getattr(e, "level", "") == "warning"]
    assert any("broke a stale lock held by alice@ci" in w for w in warnings)
    assert any("our deploy lock was broken" in w and "bob@ci" in w for w in warnings)
    b.release()
    assert not b.locked()


def test_force_unlock_breaks_a_stale_lock_but_leaves_a_live_one(tmp_path):
    holder = _state(tmp_path)
    holder.acquire(_record("alice@ci"))  # this process, alive, within its limit
    with pytest.raises(LockHeldError) as refused:
        _state(tmp_path).acquire(_record("bob@ci"), force=True)
    assert "alice@ci" in str(refused.value) and "not shown stale" in str(refused.value)
    assert "--force-unlock-live" in refused.value.hint
    assert _info(holder)["who"] == "alice@ci"

    holder.release()
    _state(tmp_path).acquire(_record("carol@ci", pid=_dead_pid()))  # its process is gone
    assert _state(tmp_path).acquire(_record("bob@ci"), force=True).who == "carol@ci"


def test_force_unlock_live_names_the_holder_and_breaks_only_when_confirmed(tmp_path):
    holder = _state(tmp_path)
    holder.acquire(_record("alice@ci"))
    asked: list[str] = []
    with pytest.raises(LockHeldError, match="not confirmed"):
        _state(tmp_path).acquire(_record("bob@ci"), force=Unlock("live", confirm=lambda h: asked.append(h) or False))
    assert "alice@ci" in asked[0] and R1 in asked[0] and _info(holder)["who"] == "alice@ci"

    events = Recorder()
    broken = _state(tmp_path, events).acquire(_record("bob@ci"), force=Unlock("live", confirm=lambda h: True))
    assert broken.who == "alice@ci" and _info(holder)["who"] == "bob@ci"
    assert any("broke a LIVE lock held by alice@ci" in e.text for e in events.events if hasattr(e, "text"))


def test_force_unlock_live_without_a_terminal_needs_yes():
    from deployctl.cli.unlock import unlock_policy

    with pytest.raises(UsageError, match="no one can answer"):
        unlock_policy(False, True, False, interactive=False)
    assert unlock_policy(False, True, True, interactive=False).confirm("h: x") is True
    asked = []
    policy = unlock_policy(False, True, False, interactive=True, ask=lambda q: asked.append(q) or False)
    assert policy.mode == "live" and policy.confirm("web1: alice@ci") is False and "alice@ci" in asked[0]
    assert unlock_policy(True, False, False).mode == "stale" and unlock_policy(False, False, False).mode == "none"


def test_a_lock_held_past_its_time_limit_is_stale_from_any_machine():
    now = time.time()
    old = LockRecord(who="x", when=rfc3339(now - 7200), action="deploy", pid=1, host="elsewhere", timeout=3600)
    assert stale_reason(old, "here", alive=lambda pid: True, now=now) == "held for 2h00m, longer than its 1h00m limit"
    assert stale_reason(old, "here", alive=lambda pid: True, now=now - 3700) is None
    assert LockRecord.parse(json.dumps({"who": "x", "when": "t", "action": "deploy", "pid": "12"})) is None


def test_a_lock_left_by_this_process_is_stale_once_it_no_longer_holds_it(tmp_path):
    left = _state(tmp_path)
    left.acquire(_record("alice@ci"))
    left._token = None  # its release never ran to the end (the connection dropped)
    from deployctl.services.lifecycle import host_state

    host_state._HELD.discard(_info(left)["token"])
    assert _state(tmp_path).acquire(_record("bob@ci"), force=True).who == "alice@ci"


# -- two processes racing: the holder releasing while another breaks its (stale) lock ------

ROUNDS = 30


def _holder(root: str, barrier, broke, tokens) -> None:
    for i in range(ROUNDS):
        state = _state(os.path.join(root, str(i)))
        state.acquire(_record("holder", age=100, timeout=10))  # alive, but past its limit
        barrier.wait()
        if i % 2:
            broke.wait()  # odd rounds: the breaker surely goes first
            broke.clear()
        state.release()
        barrier.wait()


def _breaker(root: str, barrier, broke, tokens) -> None:
    for i in range(ROUNDS):
        state = _state(os.path.join(root, str(i)))
        barrier.wait()
        state.acquire(_record("breaker"), force=True)
        tokens.put((i, state._token))
        if i % 2:
            broke.set()
        barrier.wait()


def test_release_and_force_unlock_racing_in_two_processes_leave_the_breaker_holding_the_lock(tmp_path):
    ctx = multiprocessing.get_context("fork")
    barrier, broke, tokens = ctx.Barrier(2, timeout=30), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=f, args=(str(tmp_path), barrier, broke, tokens)) for f in (_holder, _breaker)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    mine = dict(tokens.get(timeout=5) for _ in range(ROUNDS))
    for i in range(ROUNDS):
        # Whichever went first, the breaker holds the lock: the holder never deleted it.
        state = _state(tmp_path / str(i))
        assert state.holder() is not None, f"round {i}: the breaker's lock was deleted"
        assert state.holder().token == mine[i]
        assert not os.path.exists(state.layout.lock_dir + ".op")


def test_the_cli_refuses_force_unlock_live_without_a_terminal_or_yes_before_touching_a_host(capsys):
    from pathlib import Path

    from deployctl.cli.main import main
    from deployctl.errors import ExitCode

    config = str(Path(__file__).resolve().parents[2] / "deploy.toml")
    code = main(["-c", config, "rollback", "--env", "staging", "--force-unlock-live"])  # 10.0.1.x: unreachable
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE and "add --yes" in err and "Traceback" not in err
