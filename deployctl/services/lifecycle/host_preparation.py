"""A host's deploy before its switch (docs/transaction.md, `prepare`): the pulls before the
lock, then, under it, what changes nothing the host serves: its state read, a canary or
shadow window a killed deployctl left recovered, expired warm releases stopped, the live
release named as the standby, the networks, the secrets, HTTPS's files, the scheduled jobs.

Each is a Step with the rows `--dry-run` prints for it (plan/lifecycle/steps.py): the
deploy (services/lifecycle/deploy.HostDeploy) walks these very lists, in this order, and
says what a failure among them means; this module only says what each step is.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from ...events import Emit, Message, Timer
from ...errors import DeployError
from ...plan.data.backup_schedule import scheduled as scheduled_backups
from ...plan.lifecycle import docker_commands as dc
from ...plan.lifecycle.containers import ContainerSpec
from ...plan.lifecycle.env_values import SecretValueError, env_file
from ...plan.lifecycle.release_spec import ReleaseSpec
from ...plan.lifecycle.steps import PlannedStep, Step
from ...plan.lifecycle.subnets import APP_SUBNET_PREFIX, SUBNET_PREFIX
from ...plan.lifecycle.switch_plan import SwitchPlan, proxy_config_for
from ...plan.pipeline import image_user as iu
from ...plan.pipeline.images import scheduler_image
from ...secrets import Secret
from ..edge import tls
from ..env import Env
from ..judging.host_judges import HostJudges
from ..operate.jobs import HostJobs, backup_jobs
from . import preflight
from .host_state import HostState
from .release_images import ReleaseImages
from .retire import stop_expired_warm
from .secret_owner import hand_to_image_user
from .switch import HostSwitch


class PreparedDeploy(Protocol):
    """What the preparation uses of the host's deploy: it sets `previous` (the live release,
    read under the lock) and replaces `plan` when that release stays warm as the standby."""

    env: Env
    conn: Any
    emit: Emit
    release: str
    images: ReleaseImages
    secrets: dict[str, Secret]
    first: bool  # the rollout's first host: it runs the scheduled jobs (services/operate/jobs.py)
    containers: list[ContainerSpec]
    spec: ReleaseSpec
    state: HostState
    switch: HostSwitch
    judges: HostJudges
    previous: str | None
    plan: SwitchPlan
    fetch_error: BaseException | None  # the pull before the lock failed (HostDeploy.fetch)

    def recorded_spec(self, release: str) -> ReleaseSpec | None:
        ...


class HostPreparation:
    """The Steps of one host's deploy before its switch: `fetching()` before the lock,
    `steps()` under it."""

    def __init__(self, deploy: PreparedDeploy) -> None:
        self.deploy = deploy

    def fetching(self) -> list[Step]:
        """What runs before the lock, each with the rows the dry run prints for it: an ssh
        host pulls every image it lacks (a local engine has them: the preflight says so)."""
        d = self.deploy
        if d.env.settings.target != "ssh":
            return []
        images = list(dict.fromkeys([*d.images.images.values(), d.spec.proxy.image,
                                     *([scheduler_image(d.env.config)] if self.jobs() else [])]))
        config_dir = preflight.registry_config(d.conn)  # this command's login, if it made one
        rows = [PlannedStep("pull", "unless the host has it (before the lock)", tuple(dc.pull(image, config_dir)))
                for image in images]
        if config_dir:
            rows.append(PlannedStep("pull", "the login leaves the host (also when anything failed)",
                                    tuple(dc.remove_registry_config(config_dir))))
        return [Step("pull", tuple(rows), lambda: preflight.pull(d.conn, d.emit, images))]

    def steps(self) -> list[Step]:
        """What runs under the lock before the migrations, in order, each with the rows the
        dry run prints for it."""
        d = self.deploy
        env, config = d.env, d.env.config
        layout, names, release = env.layout, env.names, d.release
        pool = env.settings.release_subnet_pool
        steps = [
            Step("prepare", (PlannedStep("state", f"read {layout.current}; make {layout.root}'s directories"),),
                 self._read_state),
            Step("prepare", (PlannedStep("recover", "a canary or a shadow window a killed deployctl left here: the "
                                                    "live-only proxy back, its release's containers removed, "
                                                    "recorded `aborted`"),),
                 d.judges.recover),
            Step("prepare", (PlannedStep("warm", "stop warm releases past their window (rollout.warm_window), "
                                                 "never the live one"),),
                 lambda: stop_expired_warm(d.switch, keep={r for r in (d.previous,) if r})),
        ]
        if env.settings.rollout.warm_window > 0:
            steps.append(Step("prepare", (PlannedStep("standby", "the live release stays warm after the switch: the "
                                                                 "new configuration names it as its standby"),),
                              self._standby))
        if d.fetch_error is not None:
            # The pull before the lock failed: the host's preparation fails with it, recorded
            # in its history and counted against max_failures, as when it pulled under the lock.
            steps.append(Step("pull", (), self._raise_fetch_error))
        steps.append(Step("networks", (
            PlannedStep("network", "only if missing" + (f"; a free /{APP_SUBNET_PREFIX} of release_subnet_pool {pool}"
                                                        if pool else ""),
                        tuple(dc.network_create(names, f"<free /{APP_SUBNET_PREFIX} of {pool}>" if pool else None))),
            PlannedStep("network", "the release's own: its services find each other by name there"
                        + (f"; a free /{SUBNET_PREFIX} of release_subnet_pool {pool}" if pool else ""),
                        tuple(dc.release_network_create(names, release, f"<free /{SUBNET_PREFIX} of {pool}>"
                                                        if pool else None)))), self._networks))
        steps.append(Step("secrets", tuple(self._secret_rows()), self._upload_secrets))
        host_tls = tls.HostTls(d.conn, names, layout, d.emit)
        if config.tls_for(env.name) == "acme":
            steps.append(Step("tls", (PlannedStep("tls", f"write {layout.proxy_dir}/tls/acme-challenge.conf: HTTP-01 "
                                                         "answers, loaded by the switch below"),),
                              host_tls.enable_challenges))
        elif config.tls_for(env.name) == "off":
            steps.append(Step("tls", (PlannedStep("tls", f"remove {layout.proxy_dir}/tls (HTTPS is off here; a "
                                                         "certificate left from before goes with the switch's "
                                                         "reload)"),),
                              host_tls.remove_all))
        jobs = self.jobs()
        if jobs is not None:  # after the secrets: the job files live in the release's directory
            steps += jobs.steps()
        return steps

    def jobs(self) -> HostJobs | None:
        """The release's scheduled jobs and the scheduler, on the first host only."""
        d = self.deploy
        config = d.env.config
        if not d.first or not (config.jobs or scheduled_backups(config, d.env.name)):
            return None
        return HostJobs(d.conn, config, d.env.names, d.env.layout, d.release, d.spec.network,
                        d.containers, backups=backup_jobs(d.env, d.conn.host))

    def _raise_fetch_error(self) -> None:
        assert self.deploy.fetch_error is not None
        raise self.deploy.fetch_error

    def _read_state(self) -> None:
        d = self.deploy
        d.previous = d.state.current()
        d.state.prepare()

    def _standby(self) -> None:
        """The release this switch replaces stays warm (rollout.warm_window): the new
        configuration names it as its standby, so a rollback inside the window is a flag
        file, with no reload (plan/edge/proxy_config.Standby)."""
        d = self.deploy
        if d.previous is None:
            return
        standby = d.switch.standby(d.recorded_spec(d.previous), d.release)
        if standby is not None:
            d.plan = replace(d.plan, proxy_config=proxy_config_for(d.spec, standby), standby=standby.release)

    def _networks(self) -> None:
        d = self.deploy
        if d.switch.ensure_network(d.release, d.env.settings.release_subnet_pool):
            d.emit(Message(f"created network {d.env.names.network}", host=d.conn.host))

    def _secret_rows(self):  # type: ignore[no-untyped-def]
        """What `_upload_secrets` writes, said without a value."""
        for spec in self.deploy.containers:
            if spec.env_file:
                yield PlannedStep("secrets", f"write {spec.env_file} (mode 0600): "
                                             f"{', '.join(sorted(spec.secret_env))} (values from the secret source)")
            for host_file, _ in spec.secret_mounts():
                yield PlannedStep("secrets", f"write {host_file} (mode 0600)")
            if spec.secrets:
                yield PlannedStep("secrets", f"hand {spec.secrets_dir} to the image's user when not root: its "
                                             "uid as remembered for this image (by content) in "
                                             f"{self.deploy.env.layout.image_owner(spec.service)}, else read from "
                                             "the image's account files (never started)",
                                  tuple(iu.read_accounts(spec.image)))
                yield PlannedStep("secrets", "then chowned on the host", tuple(iu.host_chown("<UID>", spec.secrets_dir)))
                yield PlannedStep("secrets", "or, where the host user may not chown, in a container",
                                  tuple(dc.chown_secrets(spec.image, "<USER>", spec.secrets_dir)))

    def _upload_secrets(self) -> None:
        d = self.deploy
        conn, secrets = d.conn, d.secrets
        timer = Timer(d.emit, "secrets", host=conn.host)
        conn.mkdir(d.env.layout.release_secrets(d.release), mode=0o700)
        count = 0
        for spec in d.containers:
            if spec.env_file:
                try:
                    body = env_file(spec.secret_env, secrets)
                except SecretValueError as exc:
                    raise DeployError(f"services.{spec.service}.env.{exc}") from None
                conn.put_file(spec.env_file, body, 0o600)  # read by the docker CLI as root
                count += 1
            if not spec.secrets:
                continue
            conn.mkdir(spec.secrets_dir, mode=0o700)
            for name in spec.secrets:
                conn.put_file(f"{spec.secrets_dir}/{name}", secrets[name].reveal().encode(), 0o600)
                count += 1
            hand_to_image_user(conn, spec.image, spec.secrets_dir, d.env.layout.image_owner(spec.service))
        timer.done(f"{count} file{'s' if count != 1 else ''}, mode 0600")
