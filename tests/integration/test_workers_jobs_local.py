"""Workers and jobs on this machine's engine (docs/jobs.md), one app walked through phases:

1. a stop_first worker consumes a MariaDB queue across a deploy and a rollback: every item is
   processed exactly once, and the releases' rows never interleave (two consumers never ran
   at once: the old one finished its item and stopped before the new one started);
2. `deployctl jobs run` runs a job now in the live release's image, env and secrets; a second
   one while it runs is refused (75) by the job's lock; `deployctl jobs --json` lists the runs.

The worker is a naive consumer on purpose (read the lowest unprocessed id, work, insert):
two of them at once process items twice, which is what stop_first is for.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from deployctl.config import load_config
from deployctl.events import Recorder
from deployctl.secrets import Secret
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.lifecycle.release_images import ReleaseImages
from deployctl.services.lifecycle.rollback import rollback
from deployctl.services.env import Env
from tests.integration.deploy_fixtures import DEPLOYCTL, build_image, docker, free_port, probe_config, remove_app, unique_app

pytestmark = pytest.mark.integration

CONSUMER = r"""
printf '[client]\nhost=%s\nport=%s\nuser=%s\npassword=%s\ndatabase=%s\n' "$DB_HOST" "$DB_PORT" "$DB_USER" \
    "$(cat "$QUEUE_PASSWORD_FILE")" "$DB_NAME" >/tmp/my.cnf
q() { mariadb --defaults-extra-file=/tmp/my.cnf -N -e "$1"; }
stop=
trap 'stop=1' TERM INT
while [ -z "$stop" ]; do
    id=$(q "SELECT MIN(id) FROM q WHERE id NOT IN (SELECT item FROM processed)")
    if [ -z "$id" ] || [ "$id" = NULL ]; then sleep 0.2; continue; fi
    q "INSERT INTO processed (item, rel) VALUES ($id, '$DEPLOYCTL_RELEASE')"
done
"""
STAMP = r"""
printf '[client]\nhost=%s\nport=%s\nuser=%s\npassword=%s\ndatabase=%s\n' "$DB_HOST" "$DB_PORT" "$DB_USER" \
    "$(cat "$QUEUE_PASSWORD_FILE")" "$DB_NAME" >/tmp/my.cnf
mariadb --defaults-extra-file=/tmp/my.cnf -e "INSERT INTO stamps (rel) VALUES ('$DEPLOYCTL_RELEASE')"
echo stamped "$DEPLOYCTL_RELEASE"; sleep "${1:-0}"; exit 3
"""


@pytest.fixture(scope="module")
def worker_image(standin_images, tmp_path_factory):
    context = tmp_path_factory.mktemp("worker-image")
    (context / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nENTRYPOINT []\nCMD [\"sh\"]\n")
    return build_image(context, "deployctl-test/queue-worker:latest", standin_images["mariadb"])


def test_a_stop_first_worker_never_runs_twice_and_a_job_runs_now(tmp_path, probe_images, worker_image,
                                                                    scheduler_image, mariadb):
    database = mariadb.create_database("workers")
    with mariadb.connect(database) as db, db.cursor() as cursor:
        cursor.execute("CREATE TABLE q (id INT PRIMARY KEY)")
        cursor.execute("CREATE TABLE processed (n INT AUTO_INCREMENT PRIMARY KEY, item INT, rel VARCHAR(64))")
        cursor.execute("CREATE TABLE stamps (rel VARCHAR(64))")
    app = unique_app()
    config = probe_config(tmp_path, app, port=free_port())
    env = {"DB_HOST": mariadb.container_host, "DB_PORT": mariadb.port, "DB_USER": mariadb.user, "DB_NAME": database}
    env_lines = "".join(f'{k} = "{v}"\n' for k, v in env.items())
    config.write_text(config.read_text() + f"""
[services.consumer]
context = "."
worker = true
stop_first = true
command = ["sh", "-c", {json.dumps(CONSUMER)}]
secrets = ["QUEUE_PASSWORD"]
[services.consumer.healthcheck]
grace = 1
[services.consumer.env]
{env_lines}
[jobs.stamp]
service = "consumer"
command = ["sh", "-c", {json.dumps(STAMP)}, "stamp", "4"]
schedule = "0 0 1 1 *"
[scheduler]
image = "{scheduler_image}"
""")
    loaded = load_config(config)
    secrets = {"PROBE_DB_PASSWORD": Secret("x"), "QUEUE_PASSWORD": Secret(mariadb.password)}

    def images(revision: str) -> ReleaseImages:
        return ReleaseImages({"backend": probe_images.good, "frontend": probe_images.good, "consumer": worker_image,
                              "proxy": probe_images.proxy}, revision)

    def enqueue(first: int, count: int) -> None:
        with mariadb.connect(database) as db, db.cursor() as cursor:
            cursor.executemany("INSERT INTO q VALUES (%s)", [(i,) for i in range(first, first + count)])

    def rows() -> list[tuple[int, str]]:
        with mariadb.connect(database) as db, db.cursor() as cursor:
            cursor.execute("SELECT item, rel FROM processed ORDER BY n")
            return list(cursor.fetchall())

    def drained(total: int, timeout: float = 60) -> list[tuple[int, str]]:
        deadline = time.monotonic() + timeout
        while len(done := rows()) < total and time.monotonic() < deadline:
            time.sleep(0.2)
        return done

    try:
        enqueue(0, 40)
        r1 = deploy(Env.resolve(loaded, "local"), images("1111111aaaa"), secrets, Recorder()).release
        # The next deploy starts while R1's worker is busy with the queue.
        r2 = deploy(Env.resolve(loaded, "local"), images("2222222bbbb"), secrets, Recorder()).release
        enqueue(40, 15)
        # The rollback must find R2's worker busy: on a loaded machine R2's consumer may not have
        # taken an item yet when a rollback starts right after the enqueue, and R1 then processes
        # them all (a CI run saw it: runs == [R1]). Wait for R2's first row.
        deadline = time.monotonic() + 60
        while r2 not in {rel for _, rel in rows()} and time.monotonic() < deadline:
            time.sleep(0.1)
        rollback(Env.resolve(loaded, "local"), Recorder())  # back to R1: R2's worker stops first, R1's starts again
        enqueue(55, 15)
        done = drained(70)
        items = [item for item, _ in done]
        assert sorted(items) == list(range(70)), ("an item was processed twice or lost", done[-5:], docker(
            "ps", "-a", "--format", "{{.Names}} {{.Status}}", "--filter", f"label=io.deployctl.app={app}"),
            docker("logs", "--tail", "5", f"{app}-local-consumer-{r1}", check=False))
        # Never at once: the releases' rows form runs R1..., R2..., R1... with no interleaving.
        runs = [rel for i, (_, rel) in enumerate(done) if i == 0 or done[i - 1][1] != rel]
        assert runs == [r1, r2, r1], runs
        running = docker("ps", "--format", "{{.Names}}", "--filter", f"label=io.deployctl.app={app}",
                         "--filter", "label=io.deployctl.service=consumer").split()
        assert running == [f"{app}-local-consumer-{r1}"]

        # -- a job now, in the live release (R1), under its lock --------------------------------
        def cli(*args: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
            return subprocess.run([DEPLOYCTL, "--config", str(config), *args], capture_output=True, text=True,
                                  timeout=120)

        first = subprocess.Popen([DEPLOYCTL, "--config", str(config), "jobs", "run", "stamp", "--env", "local"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with mariadb.connect(database) as db, db.cursor() as cursor:
                cursor.execute("SELECT rel FROM stamps")
                if cursor.fetchall():
                    break
            time.sleep(0.1)
        busy = cli("jobs", "run", "stamp", "--env", "local")
        out, err = first.communicate(timeout=60)
        assert (first.returncode, out) == (3, f"stamped {r1}\n"), err
        assert busy.returncode == 75 and "still running" in busy.stderr
        listed = json.loads(cli("--json", "jobs", "--env", "local").stdout.splitlines()[-1])
        runs_seen = listed["jobs"][0]["runs"]
        assert [(r["outcome"], r.get("exit_code"), r["trigger"]) for r in runs_seen] == [
            ("exited", 3, "manual"), ("skipped", None, "manual")]
        assert runs_seen[0]["release"] == r1 and runs_seen[0]["seconds"] >= 4
        assert mariadb.password not in json.dumps(listed)
        scheduler = docker("inspect", "--format", "{{.State.Status}} {{.HostConfig.RestartPolicy.Name}}",
                           f"{app}-local-scheduler")
        assert scheduler == "running unless-stopped"
    finally:
        remove_app(app)
