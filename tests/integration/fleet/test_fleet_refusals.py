"""What the fleet refuses, and when: a lock held on one host or one host unreachable stops a
deploy before any host changes (exit 8 / exit 4, naming the host); `status` shows a down host
as unreachable; `halt` leaves hosts on different releases (exit 7), after which a rollback
refuses to guess a release until `--to` names one.

Both tests run on one app (the module's site, tests/support/fleet_fixtures.py): the
first changes nothing on any host, so the second starts from the same live release."""

from __future__ import annotations

import json

import pytest

from deployctl.errors import ExitCode
from tests.integration.fleet.site import ENV, json_lines, live_release
from tests.integration.fleet.test_fleet_rollout import HEALTH_PORT

pytestmark = pytest.mark.integration


def test_a_held_lock_or_an_unreachable_host_stops_the_deploy_before_any_host_changes(fleet_module_site, fleet):
    site = fleet_module_site
    v1 = live_release(site, "5555555eeee")
    first, second, third = site.hosts
    before = {h: len(site.history(h).records) for h in site.hosts}

    lock = f"/var/lib/deployctl/{site.app}/{ENV}/lock"
    holder = json.dumps({"who": "alice@laptop", "when": "2026-11-27T10:00:00Z", "action": "deploy",
                         "message": "hotfix"})
    site.host(third).exec("sh", "-c", f"mkdir {lock} && printf '%s' '{holder}' > {lock}/info.json")
    held = site.deploy("6666666ffff")
    assert held.returncode == ExitCode.LOCK_HELD, held.stdout[-2000:] + held.stderr
    assert f"{third}: the deploy lock is held by alice@laptop" in held.stderr and "hotfix" in held.stderr
    # The locks taken on the other hosts were given back; nothing else happened anywhere.
    assert not site.locked(first) and not site.locked(second)
    assert {h: len(site.history(h).records) for h in site.hosts} == before
    site.host(third).exec("rm", "-rf", lock)

    fleet.stop_host(site.host(third))
    try:
        down = site.deploy("6666666ffff")
        assert down.returncode == ExitCode.CONNECT, down.stdout[-2000:] + down.stderr
        assert f"{third}: cannot connect over SSH" in down.stderr
        assert all(not site.locked(h) for h in (first, second))
        assert {h: len(site.history(h).records) for h in (first, second)} == {h: before[h] for h in (first, second)}

        status = site.cli("status", "--env", ENV, "--json")
        assert status.returncode == 0, status.stderr
        hosts = {h["host"]: h for h in json_lines(status.stdout)[-1]["hosts"]}
        assert [hosts[h]["reachable"] for h in site.hosts] == [True, True, False]
        assert hosts[first]["live"] == hosts[second]["live"] == v1 and "cannot connect" in hosts[third]["error"]
        plain = site.cli("status", "--env", ENV)
        assert plain.returncode == 0 and f"{third}: UNREACHABLE (" in plain.stdout, plain.stdout + plain.stderr
    finally:
        fleet.start_host(site.host(third))


def test_halt_leaves_hosts_apart_and_a_rollback_must_name_the_release(fleet_module_site):
    site = fleet_module_site
    v1 = live_release(site, "7777777aaaa")  # the one release the test before left live
    site.write_config(batch=1, on_failure="halt")
    first, second, third = site.hosts
    rule = ["OUTPUT", "-p", "tcp", "--dport", HEALTH_PORT, "-j", "REJECT"]
    site.host(second).exec("iptables", "-w", "-I", *rule)
    try:
        halted = site.deploy("8888888bbbb", "--json")
    finally:
        site.host(second).exec("iptables", "-w", "-D", *rule)
    assert halted.returncode == ExitCode.ROLLBACK_FAILED, halted.stdout[-3000:] + halted.stderr
    result, error = json_lines(halted.stdout)[-2:]
    assert result["ok"] is False and error == {**error, "event": "error", "exit_code": 7}
    assert [(h["host"], h["outcome"]) for h in result["hosts"]] == [(first, "kept"), (second, "failed"),
                                                                     (third, "skipped")]
    v2 = result["hosts"][0]["release"]
    assert [site.current(h) for h in site.hosts] == [v2, v1, v1]
    finals = {e["host"]: e["event"] for e in json_lines(halted.stdout) if e.get("step") == "deploy"
              and e["event"] != "step_started"}
    assert finals == {first: "step_failed", second: "step_failed", third: "step_skipped"}  # the host in every event

    # The first host would go back to v1, the others (live v1) further back: refused, unchanged.
    refused = site.cli("rollback", "--env", ENV)
    assert refused.returncode == ExitCode.ROLLBACK_FAILED and "disagree" in refused.stderr, refused.stderr
    assert "--to" in refused.stderr and [site.current(h) for h in site.hosts] == [v2, v1, v1]
    # The dry run makes the same choice, and plans each host's part.
    dry = site.cli("rollback", "--env", ENV, "--dry-run")
    assert dry.returncode == ExitCode.ROLLBACK_FAILED and "disagree" in dry.stderr, dry.stdout + dry.stderr
    dry = site.cli("rollback", "--env", ENV, "--to", v1, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith(f"rollback {v1} (dry run"), dry.stdout + dry.stderr
    assert all(f"\n{h}:\n" in dry.stdout for h in site.hosts)

    back = site.cli("rollback", "--env", ENV, "--to", v1, "--json")
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr
    assert [(h["host"], h["outcome"]) for h in json_lines(back.stdout)[-1]["hosts"]] == \
        [(first, "succeeded"), (second, "already live"), (third, "already live")]
    assert [site.current(h) for h in site.hosts] == [v1] * 3 and not any(site.locked(h) for h in site.hosts)
