"""Names and paths a release lives under, on every host. One place decides them so deploy,
rollback, status and prune always agree.

Container names are `<app>-<env>-<service>-<release>`: release-scoped, so the new release
starts beside the old one, and a service reaches another service *of the same release* by
that name on the app's network (Docker's embedded DNS).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

LABEL_APP = "io.deployctl.app"
LABEL_ENV = "io.deployctl.env"
LABEL_RELEASE = "io.deployctl.release"
LABEL_SERVICE = "io.deployctl.service"
LABEL_ROLE = "io.deployctl.role"  # service | proxy | migrate

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
        return f"{self.prefix}-proxy"

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
    def lock_dir(self) -> str:
        return posixpath.join(self.root, "lock")

    @property
    def lock_info(self) -> str:
        return posixpath.join(self.lock_dir, "info.json")

    @property
    def proxy_dir(self) -> str:
        """Bind-mounted (as a directory, so an atomic rename of the file is seen) into the proxy."""
        return posixpath.join(self.root, "proxy")

    @property
    def upstream_file(self) -> str:
        return posixpath.join(self.proxy_dir, UPSTREAM_FILE)

    def release_secrets(self, release: str) -> str:
        return posixpath.join(self.root, "secrets", release)

    def service_secrets(self, release: str, service: str) -> str:
        return posixpath.join(self.release_secrets(release), service)

    def secret_file(self, release: str, service: str, name: str) -> str:
        return posixpath.join(self.service_secrets(release, service), name)


UPSTREAM_FILE = "frontend.conf"  # the name nginx/nginx.conf includes
