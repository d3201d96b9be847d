"""An accessory pinned to a node on the three-node Swarm: a deploy boots it as a Swarm
service whose one task runs on the named node (its volume there), reachable from the
release's tasks by its alias on the app's network, its secret a Docker secret, its file a
Docker config (readable by the image's own user, on whichever node runs it); a second
deploy leaves it running; `accessory exec|stop|boot|status|remove --volumes` work on it; an
accessory with data and no placement is refused by the config (exit 3, naming the key)."""

from __future__ import annotations

import pytest

from deployctl.errors import ExitCode
from tests.integration.swarm.site import ENV, json_lines
from tests.support.swarm import wait_for

pytestmark = pytest.mark.integration

ACCESSORY = """
[accessories.cache]
image = "{image}"
port = 8000
volumes = ["data:/data"]
secrets = ["PROBE_DB_PASSWORD"]
files = ["cache.conf:/etc/cache/cache.conf"]
command = ["python", "/probe/server.py"]
{placement}
[accessories.cache.healthcheck]
command = ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
timeout = 60
"""


def ok(done) -> list[dict]:  # type: ignore[no-untyped-def]
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    return json_lines(done.stdout)


def test_an_accessory_pinned_to_a_node_runs_there_and_the_release_reaches_it(swarm, swarm_http_site):
    site = swarm_http_site
    pinned = swarm.workers[0]
    hostname = pinned.exec("hostname").strip()
    text = site.config.read_text().replace(f"[environments.{ENV}]\n",
                                           f"[environments.{ENV}]\naccessories = [\"cache\"]\n")
    base = text + ACCESSORY.replace("{image}", site.images.probe)  # (str.format would eat the config's {{ }})

    # Data and no placement: refused before anything is touched, naming the key.
    site.config.write_text(base.replace("{placement}", ""))
    refused = site.cli("deploy", "--env", ENV, "--dry-run")
    assert refused.returncode == ExitCode.CONFIG, refused.stdout + refused.stderr
    assert "accessories.cache.placement" in refused.stdout + refused.stderr and "Traceback" not in refused.stderr

    (site.config.parent / "cache.conf").write_text("maxmemory 64mb\n")
    site.config.write_text(base.replace("{placement}", f'placement = ["node.hostname=={hostname}"]'))
    planned = site.deploy("1111111aaaa", "--dry-run")
    assert planned.returncode == 0 and "docker config" in planned.stdout, planned.stdout + planned.stderr
    v1 = ok(site.deploy("1111111aaaa", "--json"))[-1]["release"]
    service = f"{site.app}-{ENV}-cache"
    assert swarm.running_tasks(service) == {hostname: 1}
    volume = f"{site.app}-{ENV}-cache-data"
    assert volume in pinned.exec("docker", "volume", "ls", "--format", "{{.Name}}")
    # The release's tasks reach it by its alias; its secret is a file in its task.
    frontend = site.service("frontend", v1)
    reached = [host.exec("sh", "-c", f"docker ps -q --filter label=com.docker.swarm.service.name={frontend} | head -1 "
                         "| xargs -r -I{} docker exec {} python -c \"import urllib.request as u; "
                         "print(u.urlopen('http://cache:8000/healthz', timeout=3).status)\"", check=False).strip()
               for host in swarm.nodes]
    assert "200" in reached, reached
    secret = pinned.exec("sh", "-c", f"docker ps -q --filter label=com.docker.swarm.service.name={service} | head -1 "
                         "| xargs -r -I{} docker exec {} cat /run/secrets/PROBE_DB_PASSWORD", check=False)
    assert secret == "swarm-secret-value"
    conf = pinned.exec("sh", "-c", f"docker ps -q --filter label=com.docker.swarm.service.name={service} | head -1 "
                       "| xargs -r -I{} docker exec {} cat /etc/cache/cache.conf", check=False)
    assert conf == "maxmemory 64mb"
    configs = swarm.manager.exec("docker", "config", "ls", "--format", "{{.Name}}").split()
    assert [c for c in configs if c.startswith(f"{site.app}-{ENV}-cache-file0-")], configs
    assert "swarm-secret-value" not in swarm.manager.exec("docker", "service", "inspect", service)

    # A second deploy leaves it as it is (never recreated: its data lives in its volume).
    task_before = swarm.manager.exec("docker", "service", "ps", "-q", "--filter", "desired-state=running", service)
    ok(site.deploy("2222222bbbb", "--json"))
    assert swarm.manager.exec("docker", "service", "ps", "-q", "--filter", "desired-state=running",
                              service) == task_before

    status = ok(site.cli("--json", "accessory", "status", "--env", ENV))[-1]
    [row] = status["accessories"]
    assert (row["accessory"], row["status"], row["nodes"]) == ("cache", "running", [hostname]), row

    # `accessory exec` (issue 25, item 1): in its one task's container on the pinned node, the
    # command's code and streams passed through, its line in the manager's history.
    done = site.cli("accessory", "exec", "cache", "--env", ENV, "--", "sh", "-c",
                    "cat /run/secrets/PROBE_DB_PASSWORD; echo; echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, "swarm-secret-value\n", "err\n"), done.stderr
    line = site.history().records[-1]
    assert (line.action, line.extra["accessory"], line.extra["exit_code"]) == ("exec", "cache", 3)
    assert "swarm-secret-value" not in site.state_file("releases.jsonl")

    ok(site.cli("accessory", "stop", "cache", "--env", ENV))
    wait_for(lambda: swarm.running_tasks(service) == {}, 60, "the accessory stopped")
    ok(site.cli("accessory", "boot", "cache", "--env", ENV))
    assert swarm.running_tasks(service) == {hostname: 1}

    ok(site.cli("accessory", "remove", "cache", "--env", ENV, "--volumes"))
    assert service not in swarm.manager.exec("docker", "service", "ls", "--format", "{{.Name}}")
    assert f"{site.app}-{ENV}-cache-" not in swarm.manager.exec("docker", "config", "ls", "--format", "{{.Name}}")
    assert volume not in pinned.exec("docker", "volume", "ls", "--format", "{{.Name}}")

    # `deployctl remove`: the whole environment off the Swarm. The accessory booted again
    # (its volume on the pinned node) goes with its data only because of --volumes.
    ok(site.cli("accessory", "boot", "cache", "--env", ENV))
    assert volume in pinned.exec("docker", "volume", "ls", "--format", "{{.Name}}")
    planned = ok(site.cli("--json", "remove", "--env", ENV, "--volumes", "--dry-run"))[-1]
    [found] = planned["hosts"]
    assert service in found["removed"]["services"] and found["removed"]["secrets"], found
    assert found["removed"]["nodes"][pinned.address]["volumes"] == [volume], found
    done = site.cli("--json", "remove", "--env", ENV, "--volumes", "--yes")
    removed = ok(done)[-1]
    assert removed["hosts"][0]["nothing_to_remove"] is False
    label = f"label=io.deployctl.app={site.app}"
    for kind in ("service", "secret", "config", "network"):
        left = swarm.manager.exec("docker", kind, "ls", "--filter", label, "--format", "{{.Name}}")
        assert left == "", (kind, left, removed, done.stderr[-2000:])
    assert volume not in pinned.exec("docker", "volume", "ls", "--format", "{{.Name}}")
    for node in swarm.nodes:  # the proxy's directory on every node, the state (and lock) on the manager
        assert node.exec("sh", "-c", f"test -e /var/lib/deployctl/{site.app}/{ENV} && echo left", check=False) == ""
    again = site.cli("remove", "--env", ENV, "--yes")
    assert again.returncode == 0 and "nothing to remove" in again.stdout + again.stderr, again.stdout + again.stderr
