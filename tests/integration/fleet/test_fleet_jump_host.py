"""ssh.proxy_jump on real hosts: a fleet host whose sshd only the jump host may reach (a
firewall rule on it, as a security group that lets SSH in from the bastion alone) gets
deployed, shown by `status`, exec'd into (plain and on a pty) and rolled back, every
connection through another fleet host as the jump host; a jump host that does not answer
fails the deploy with exit 4 naming that hop, before anything changed."""

from __future__ import annotations

import pytest

from deployctl.errors import ExitCode
from tests.integration.deploy_fixtures import DEPLOYCTL
from tests.integration.fleet.site import ENV, SECRET_ENV, json_lines
from tests.integration.fleet.test_fleet_rollout import deployed
from tests.support.terminal import through_pty
from tests.support.net import ssh_banner

pytestmark = pytest.mark.integration


def test_a_host_only_the_jump_host_reaches_is_deployed_exec_d_and_rolled_back_through_it(site, monkeypatch):
    bastion, target = site.hosts[0], site.hosts[1]
    rule = ["INPUT", "-p", "tcp", "--dport", "22", "!", "-s", bastion, "-j", "REJECT"]
    site.host(target).exec("iptables", "-w", "-I", *rule)
    try:
        assert ssh_banner(target, 22) is None  # the premise: this machine cannot reach it directly
        site.hosts = [target]
        site.write_config(proxy_jump=f"root@{bastion}")
        v1 = deployed(site.deploy("1a1a1a1aaaa", "--json"))
        v2 = deployed(site.deploy("2b2b2b2bbbb", "--json"))
        assert site.current(target) == v2

        status = site.cli("status", "--env", ENV, "--json")
        assert status.returncode == 0, status.stderr
        [host] = json_lines(status.stdout)[-1]["hosts"]
        assert (host["host"], host["reachable"], host["live"]) == (target, True, v2), host

        plain = site.cli("exec", "--env", ENV, "--", "sh", "-c", "echo through-$((40+2)); hostname")
        assert plain.returncode == 0 and "through-42" in plain.stdout, plain.stdout + plain.stderr
        for name, value in SECRET_ENV.items():
            monkeypatch.setenv(name, value)
        code, seen = through_pty([DEPLOYCTL, "--config", str(site.config), "exec", "--env", ENV, "-i", "--", "sh"],
                                  b"stty size; echo j''ump; exit 7\n")
        assert code == 7 and b"\r\njump\r\n" in seen and b"33 111" in seen, seen

        back = site.cli("rollback", "--env", ENV)
        assert back.returncode == 0, back.stdout[-3000:] + back.stderr
        assert site.current(target) == v1

        records = len(site.history(target).records)
        site.write_config(proxy_jump=f"root@{bastion}:2")  # nothing listens there
        down = site.deploy("3c3c3c3cccc")
        assert down.returncode == ExitCode.CONNECT, down.stdout[-2000:] + down.stderr
        assert f"{target}: through jump host {bastion}:2: cannot connect over SSH" in down.stderr, down.stderr
        assert "Traceback" not in down.stderr
        assert site.current(target) == v1 and len(site.history(target).records) == records
    finally:
        site.host(target).exec("iptables", "-w", "-D", *rule, check=False)
