"""The steps `deploy --dry-run` and `rollback --dry-run` print: per host, each step and the
exact docker argv the real run uses (built by the same functions), changing nothing."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..config.models import Config, Environment
from . import docker_commands as dc
from .containers import release_containers
from .images import PROXY
from .names import Names, StateLayout
from .upstream import UPSTREAM_MOUNT, render_upstream


@dataclass(frozen=True)
class PlannedStep:
    step: str
    detail: str = ""
    argv: tuple[str, ...] | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["argv"] = list(self.argv) if self.argv else None
        return data


def _argv(step: str, argv: list[str], detail: str = "") -> PlannedStep:
    return PlannedStep(step, detail, tuple(argv))


def deploy_steps(config: Config, environment: Environment, env_name: str, layout: StateLayout, release: str,
                 revision: str | None, images: dict[str, str], *, migrate: bool, proxy_port: int,
                 registry_login: tuple[str, str] | None = None) -> list[PlannedStep]:
    names = Names(config.app, env_name)
    specs = release_containers(config, environment, env_name, release, revision, images, layout)
    steps = [_argv("preflight", dc.docker_version(), "connect; docker present")]
    if registry_login:
        steps.append(_argv("preflight", dc.login(*registry_login), "password on stdin"))
    if environment.target == "local":
        steps += [_argv("preflight", dc.image_present(image), "image in the engine") for image in images.values()]
    steps.append(PlannedStep("lock", f"mkdir {layout.lock_dir} (atomic); exit 8 if held"))
    if environment.target == "ssh":
        steps += [_argv("pull", dc.pull(image)) for image in images.values()]
    steps.append(_argv("network", dc.network_create(names), "only if missing"))
    for spec in specs:
        for host_file, _ in spec.secret_mounts():
            steps.append(PlannedStep("secrets", f"write {host_file} (mode 0600)"))
        if spec.secrets:
            steps.append(PlannedStep("secrets", f"hand {spec.secrets_dir} to the image's user when not root",
                                     tuple(dc.chown_secrets(spec.image, "<USER>", spec.secrets_dir))))
    if migrate:
        for spec in specs:
            command = config.services[spec.service].migrate
            if command:
                steps.append(_argv("migrate", dc.run_migration(
                    spec, names.network, names.migration(release), command,
                    names.labels("migrate", release, spec.service))))
    steps += [_argv("start", dc.run_service(spec, names.network)) for spec in specs]
    for spec in specs:
        steps.append(PlannedStep("health", f"GET http://<{spec.name} ip>:{spec.port}{spec.health_path} until 200 "
                                           f"(every {config.services[spec.service].healthcheck.interval:g}s, "
                                           f"up to {config.services[spec.service].healthcheck.timeout:g}s)"))
    routed = next(s for s in specs if s.routed)
    upstream = render_upstream(release, routed.name, routed.port).strip().replace("\n", " ")
    steps.append(PlannedStep("switch", f"write {layout.upstream_file}: {upstream}"))
    steps.append(_argv("switch", dc.run_proxy(names, images[PROXY], proxy_port, layout.proxy_dir, UPSTREAM_MOUNT,
                                              names.labels("proxy")), "only if the proxy is missing"))
    steps.append(_argv("switch", dc.nginx_test_and_reload(names), "only when the proxy was already running"))
    steps.append(PlannedStep("verify", f"GET http://127.0.0.1:<proxy port>/version names {release}"))
    steps.append(PlannedStep("drain", f"wait {environment.rollout.drain:g}s"))
    steps.append(_argv("stop", dc.stop(["<the previous release's containers>"]), "kept for rollback"))
    steps.append(PlannedStep("record", f"append to {layout.history}; write {layout.current}"))
    steps.append(PlannedStep("prune", f"keep {environment.rollout.keep} releases (never the live or previous good)"))
    steps.append(PlannedStep("unlock", f"rm -r {layout.lock_dir}"))
    return steps


def rollback_steps(config: Config, environment: Environment, env_name: str, layout: StateLayout, target: str,
                   current: str | None, containers: list[str], current_containers: list[str]) -> list[PlannedStep]:
    names = Names(config.app, env_name)
    routed = names.container(config.routed_service, target)
    port = config.services[config.routed_service].port
    upstream = render_upstream(target, routed, port).strip().replace("\n", " ")
    return [
        PlannedStep("lock", f"mkdir {layout.lock_dir} (atomic); exit 8 if held"),
        _argv("start", dc.start(containers)),
        PlannedStep("health", "GET each container's health path until 200"),
        PlannedStep("switch", f"write {layout.upstream_file}: {upstream}"),
        _argv("switch", dc.nginx_test_and_reload(names)),
        PlannedStep("verify", f"GET http://127.0.0.1:<proxy port>/version names {target}"),
        PlannedStep("drain", f"wait {environment.rollout.drain:g}s"),
        _argv("stop", dc.stop(current_containers or [f"<{current}'s containers>"])),
        PlannedStep("record", f"append to {layout.history}; write {layout.current} = {target}"),
        PlannedStep("unlock", f"rm -r {layout.lock_dir}"),
    ]
