"""A scheduled job on SSH hosts (docs/jobs.md), one test walking the phases a schedule must
survive: deployed with R1, R2 deployed over it (the scheduler is not recreated: it follows
`current`), the first host rebooted (its dockerd brings the scheduler back), and then the
every-minute job runs in R2's image with its secrets, on the first host only, logged where
`deployctl jobs` reads it. One minute of waiting at most is the price of a real schedule."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.fleet.site import ENV, new_site

pytestmark = pytest.mark.integration

JOB = 'test -s "$PROBE_DB_PASSWORD_FILE" && echo "tick $DEPLOYCTL_RELEASE"'


@pytest.fixture(scope="module")
def scheduler_ref(fleet, scheduler_image):
    return fleet.publish(scheduler_image, "fleet/scheduler", "standin")


def test_an_every_minute_job_follows_deploys_and_a_reboot_on_the_first_host(fleet, fleet_images, scheduler_ref,
                                                                               tmp_path):
    site = new_site(fleet, fleet_images, tmp_path, fleet.proxy_port(), count=2)
    try:
        site.config.write_text(site.config.read_text() + f"""
[jobs.tick]
service = "backend"
command = ["sh", "-c", {json.dumps(JOB)}]
schedule = "* * * * *"
[scheduler]
image = "{scheduler_ref}"
""")
        first, second = site.hosts
        scheduler = f"{site.app}-{ENV}-scheduler"
        deployed = site.deploy("1111111aaaa")
        assert deployed.returncode == 0, deployed.stderr
        started_as = site.host(first).exec("docker", "inspect", "--format", "{{.Id}}", scheduler)
        deployed = site.deploy("2222222bbbb")
        assert deployed.returncode == 0, deployed.stderr
        r2 = site.current(first)
        assert site.host(first).exec("docker", "inspect", "--format", "{{.Id}}", scheduler) == started_as
        assert site.host(second).exec("docker", "ps", "-aq", "--filter", f"name={scheduler}") == ""

        fleet.stop_host(site.host(first))  # a reboot: dockerd restores the unless-stopped scheduler
        rebooted = time.time()  # any run that starts from here on ran after the reboot
        fleet.start_host(site.host(first))

        # The next whole minute, plus the run itself (tens of seconds on a loaded 2-core machine).
        # Waited for on the host's runs.jsonl (a `docker exec cat`): asking `deployctl jobs`
        # every 2 s started a CLI and an SSH session each time, on a CPU the suite saturates.
        # Then `deployctl jobs` is asked, and must show that run.
        def ended_after_reboot(text: str) -> bool:
            lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
            return any(r.get("start", 0) >= rebooted and r.get("outcome") == "exited" for r in lines)

        deadline = time.monotonic() + 150
        while not ended_after_reboot(site.state_file(first, "jobs/runs.jsonl")) and time.monotonic() < deadline:
            time.sleep(1)
        run, runs = None, []
        while run is None and time.monotonic() < deadline:
            listed = site.cli("--json", "jobs", "--env", ENV)
            if listed.returncode == 4:  # the rebooted host's sshd still settling: "No existing session"
                time.sleep(2)
                continue
            assert listed.returncode == 0, listed.stderr
            runs = json.loads(listed.stdout.splitlines()[-1])["jobs"][0]["runs"]
            run = next((r for r in runs if r["start"] >= rebooted and r["outcome"] == "exited"), None)
            if run is None:
                time.sleep(2)
        assert run is not None, f"no scheduled run within 150 s of the reboot: {runs}"
        assert (run["release"], run["exit_code"], run["trigger"]) == (r2, 0, "schedule")
        log = site.state_file(first, "jobs/logs/tick.log")
        assert log == f"tick {r2}"  # (state_file strips the trailing newline)
        assert site.state_file(second, "jobs/runs.jsonl") == ""
    finally:
        fleet.remove_app(site.app)
