"""Private Docker registries (the Debian ``docker-registry`` package, distribution 2.8)."""
from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.net import free_port, http_status, wait_until
from tests.support.processes import Daemon


@dataclass
class Registry:
    """A running registry. ``address`` is what image names start with (127.0.0.1 is an
    insecure registry for every Docker engine by default, so plain HTTP works); it listens
    on all addresses, so engines inside containers can reach it at the bridge gateway on
    ``port``."""

    address: str
    url: str
    port: int
    root: Path
    username: str | None = None
    password: str | None = None
    daemon: Daemon | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()


def _require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise FileNotFoundError(f"{binary} is not installed")
    return path


def start_registry(workdir: Path, username: str | None = None, password: str | None = None,
                   timeout: float = 30.0) -> Registry:
    """Start ``docker-registry serve`` with its own config and storage under ``workdir``;
    with ``username``/``password`` it requires basic auth (bcrypt htpasswd file)."""
    binary = _require("docker-registry")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config: dict = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "data")},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"0.0.0.0:{port}", "secret": secrets.token_hex(16)},
    }
    if username is not None:
        htpasswd = subprocess.run([_require("htpasswd"), "-Bbn", username, password or ""],
                                  check=True, capture_output=True, text=True).stdout
        (workdir / "htpasswd").write_text(htpasswd)
        config["auth"] = {"htpasswd": {"realm": "deployctl-test", "path": str(workdir / "htpasswd")}}
    # JSON is YAML, and needs no YAML library.
    config_file = workdir / "config.yml"
    config_file.write_text(json.dumps(config, indent=2))

    daemon = Daemon([binary, "serve", str(config_file)], workdir / "registry.log")
    url = f"http://127.0.0.1:{port}"
    expected = 401 if username is not None else 200
    try:
        wait_until(lambda: http_status(f"{url}/v2/") == expected, timeout,
                   f"docker-registry on port {port} (log {daemon.log_file})", alive=daemon.exit_reason)
    except BaseException:
        daemon.stop()
        raise
    return Registry(address=f"127.0.0.1:{port}", url=url, port=port, root=workdir,
                    username=username, password=password, daemon=daemon)
