"""Names and paths a release lives under, on every host. One place decides them so deploy,
rollback, status and prune always agree.

Container names are `<app>-<env>-<service>-<release>`: release-scoped, so the new release
starts beside the old one, and a service reaches another service *of the same release* by
that name on the app's network (Docker's embedded DNS).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from ...release_ids import check_release_id

LABEL_APP = "io.deployctl.app"
LABEL_ENV = "io.deployctl.env"
LABEL_RELEASE = "io.deployctl.release"
LABEL_SERVICE = "io.deployctl.service"
LABEL_ROLE = "io.deployctl.role"  # service | proxy | proxy-nginx | migrate | network | scheduler | job
LABEL_WORKER = "io.deployctl.worker"  # "true" on a worker's containers (no port, never routed)

SECRETS_MOUNT = "/run/secrets"


@dataclass(frozen=True)
class Names:
    app: str
    env: str

    @property
    def prefix(self) -> str:
        return f"{self.app}-{self.env}"

    @property
    def network(self) -> str:
        return self.prefix

    @property
    def proxy(self) -> str:
        """The proxy's anchor: it holds the published port and the network namespace that
        the nginx container(s) join, so nginx can be replaced without closing the port."""
        return f"{self.prefix}-proxy"

    def proxy_nginx(self, tag: str) -> str:
        return f"{self.prefix}-proxy-nginx-{tag}"

    @property
    def canary_watchdog(self) -> str:
        """Restores the live-only proxy at a canary's deadline unless the deploy removed it
        (plan/judging/canary.py): a killed deployctl never leaves the traffic split."""
        return f"{self.prefix}-canary-watchdog"

    def release_network(self, release: str) -> str:
        """A release's own network, where its services carry their deploy.toml names as
        aliases: `http://backend:8000` from the frontend reaches the backend of the same
        release and no other."""
        return f"{self.prefix}-{release}"

    def container(self, service: str, release: str) -> str:
        return f"{self.prefix}-{service}-{release}"

    def migration(self, release: str) -> str:
        return f"{self.prefix}-migrate-{release}"

    def labels(self, role: str, release: str | None = None, service: str | None = None) -> dict[str, str]:
        labels = {LABEL_APP: self.app, LABEL_ENV: self.env, LABEL_ROLE: role}
        if release:
            labels[LABEL_RELEASE] = release
        if service:
            labels[LABEL_SERVICE] = service
        return labels


@dataclass(frozen=True)
class StateLayout:
    """`<state_dir>/<app>/<env>/` on a host: history, current, lock, secrets, proxy files."""

    state_dir: str
    app: str
    env: str

    @property
    def root(self) -> str:
        return posixpath.join(self.state_dir, self.app, self.env)

    @property
    def history(self) -> str:
        return posixpath.join(self.root, "releases.jsonl")

    @property
    def current(self) -> str:
        return posixpath.join(self.root, "current")

    @property
    def warm(self) -> str:
        """Which release is kept running after a switch, since when and until when (plan/lifecycle/warm.py)."""
        return posixpath.join(self.root, "warm.json")

    @property
    def canary(self) -> str:
        """The canary running now (plan/judging/canary.CanaryRecord); gone once it is decided."""
        return posixpath.join(self.root, "canary.json")

    @property
    def canary_decision(self) -> str:
        """`deploy --promote` / `--abort` from another shell: read by the watching deploy each tick."""
        return posixpath.join(self.root, "canary-decision")

    @property
    def canary_fired(self) -> str:
        """Written by the canary's watchdog when it restored the live-only proxy (its time);
        in the proxy directory, the only one the watchdog mounts."""
        return posixpath.join(self.proxy_dir, "canary-fired")

    @property
    def lock_dir(self) -> str:
        return posixpath.join(self.root, "lock")

    @property
    def lock_info(self) -> str:
        return posixpath.join(self.lock_dir, "info.json")

    @property
    def proxy_dir(self) -> str:
        """Bind-mounted (as a directory, so an atomic rename of nginx.conf is seen) into the proxy."""
        return posixpath.join(self.root, "proxy")

    def image_owner(self, service: str) -> str:
        """The owner the service's last image (by content address) hands its secret files
        to, remembered (plan/pipeline/image_user.owner_record)."""
        return posixpath.join(self.root, "image-owners", service)

    def release_secrets(self, release: str) -> str:
        # The one path built from a release id, and prune and a failed deploy `rm -rf` it:
        # an id like `x/../..` would aim that at the state root. The ids were checked where
        # they were read; this is the last guard.
        return posixpath.join(self.root, "secrets", check_release_id(release, "release"))

    def service_secrets(self, release: str, service: str) -> str:
        return posixpath.join(self.release_secrets(release), service)

    def env_file(self, release: str, service: str) -> str:
        """Beside (not inside) the mounted secrets folder: the container never sees it."""
        return posixpath.join(self.release_secrets(release), f"{service}.env")

    def secret_file(self, release: str, service: str, name: str) -> str:
        return posixpath.join(self.service_secrets(release, service), name)

