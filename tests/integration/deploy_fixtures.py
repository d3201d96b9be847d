"""Helpers for the deploy tests: probe images (built once per session from the stand-in
python image), a deploy.toml and an artifacts file per test, the CLI run in-process."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from deployctl.artifacts import Artifacts, ImageArtifact, write_artifacts
from tests.support.net import free_port  # noqa: F401 - the deploy tests import it from here

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).resolve().parent / "probe_app"
DEPLOYCTL = str(Path(sys.executable).parent / "deployctl")  # the console script of this venv


def docker(*args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


def build_image(context: Path, tag: str, base: str, *build_args: str) -> str:
    args = ["build", "-q", "-t", tag, "--build-arg", f"BASE_IMAGE={base}"]
    for arg in build_args:
        args += ["--build-arg", arg]
    docker(*args, str(context))
    return docker("image", "inspect", "--format", "{{.Id}}", tag)


@dataclass(frozen=True)
class ProbeImages:
    good: str  # image id
    broken: str  # health check never passes
    proxy: str
    # The same two with the image's own HEALTHCHECK (probe_app/checked.Dockerfile), for the
    # tests of healthcheck.type = "docker": good and broken run none, as most apps' checks are
    # deployctl's own (http, tcp, command) and a Docker check costs CPU every second.
    good_checked: str
    broken_checked: str


def _content_tag(folder: Path) -> str:
    """A tag per content: worktrees and branches sharing one engine build different probes,
    and a fixed tag moved by one left another's image untagged (then pruned mid-session)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def build_probe_images(standin_images: dict) -> ProbeImages:
    probe, proxy = _content_tag(PROBE), _content_tag(ROOT / "nginx")
    good = build_image(PROBE, f"deployctl-test/probe:good-{probe}", standin_images["python"])
    broken = build_image(PROBE, f"deployctl-test/probe:broken-{probe}", standin_images["python"], "HEALTHY=0")
    return ProbeImages(
        good=good, broken=broken,
        proxy=build_image(ROOT / "nginx", f"deployctl-test/proxy:{proxy}", standin_images["nginx"]),
        good_checked=_checked(f"deployctl-test/probe:good-{probe}", f"deployctl-test/probe:good-checked-{probe}"),
        broken_checked=_checked(f"deployctl-test/probe:broken-{probe}", f"deployctl-test/probe:broken-checked-{probe}"),
    )


def _checked(image: str, tag: str) -> str:
    """`image` with the probe's own HEALTHCHECK on top (probe_app/checked.Dockerfile)."""
    docker("build", "-q", "-t", tag, "-f", str(PROBE / "checked.Dockerfile"), "--build-arg", f"PROBE_IMAGE={image}",
           str(PROBE))
    return docker("image", "inspect", "--format", "{{.Id}}", tag)


def unique_app() -> str:
    return "t" + uuid.uuid4().hex[:8]


PROXY_STANDIN = "deployctl-standin/nginx:bookworm"  # deployctl's built-in proxy, with the stand-in nginx


def probe_config(tmp: Path, app: str, *, port: int, env_name: str = "local", target: str = "local",
                 extra_env: str = "", registry: str = "", health_timeout: float = 5, drain: float = 0.3,
                 proxy_image: str = PROXY_STANDIN, verify_path: str = "/version", rollout: dict | None = None,
                 state_dir: str | None = None, frontend_env: dict | None = None, name: str = "deploy.toml",
                 bare: bool = False) -> Path:
    """Two probe services (backend with a migration and a secret, routed frontend) behind
    deployctl's built-in proxy. The error-rate guard is off (`guard_window = 0`) unless a
    test sets it: 30 s after every switch would add hours to the suite. `frontend_env`: the
    probe's failure knobs (PROBE_FAIL_SHARE, PROBE_FAIL_AFTER), per deploy. `bare`: the
    backend without its migration and secret (what a bare `docker-compose up -d` releases)."""
    path = tmp / name
    settings = {"drain": drain, "keep": 3, "guard_window": 0, **(rollout or {})}
    frontend_lines = "".join(f"{k} = {json.dumps(str(v))}\n" for k, v in (frontend_env or {}).items())
    rollout_lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
    path.write_text(f"""
app = "{app}"
{registry}
[services.backend]
context = "{PROBE}"
{'' if bare else 'migrate = ["python", "/probe/server.py", "migrate"]'}
{'' if bare else 'secrets = ["PROBE_DB_PASSWORD"]'}
[services.backend.healthcheck]
timeout = {health_timeout}
[services.frontend]
context = "{PROBE}"
routed = true
{f'verify_path = "{verify_path}"' if verify_path else ''}
[services.frontend.healthcheck]
timeout = {health_timeout}
[services.frontend.env]
BACKEND_URL = "{{{{ backend.url }}}}"
{frontend_lines}[proxy]
image = "{proxy_image}"
[environments.{env_name}]
target = "{target}"
proxy_port = {port}
state_dir = "{state_dir or tmp / 'state'}"
{extra_env}
[environments.{env_name}.rollout]
{rollout_lines}""")
    return path


def write_probe_artifacts(config: Path, app: str, revision: str, backend: str, frontend: str, proxy: str,
                          digests: dict | None = None, repositories: dict | None = None) -> Path:
    digests, repositories = digests or {}, repositories or {}
    images = {name: ImageArtifact(repositories.get(name, f"{app}/{name}"), revision[:12], image_id,
                                  digest=digests.get(name))
              for name, image_id in (("backend", backend), ("frontend", frontend), ("proxy", proxy))
              if name in digests or not digests}
    path = config.parent / ".deployctl" / "build.json"
    write_artifacts(path, Artifacts(app, revision, False, revision[:12], "2026-11-27T00:00:00Z", images))
    return path


def remove_app(app: str) -> None:
    """Every container and network the app left behind (tests share one engine)."""
    names = docker("ps", "-aq", "--filter", f"label=io.deployctl.app={app}", check=False).split()
    if names:
        docker("rm", "-f", *names, check=False)
    for network in docker("network", "ls", "-q", "--filter", f"name={app}-", check=False).split():
        docker("network", "rm", network, check=False)


def remove_app_with_data(app: str) -> None:
    """remove_app, then the app's volumes (its accessories' data) and the images built for it."""
    remove_app(app)
    volumes = docker("volume", "ls", "-q", "--filter", f"name={app}-", check=False).split()
    if volumes:
        docker("volume", "rm", "-f", *volumes, check=False)
    images = docker("images", "-q", "--filter", f"label=io.deployctl.app={app}", check=False).split()
    if images:
        docker("rmi", "-f", *set(images), check=False)


def build_scheduler_image(standin_images: dict, workdir: Path) -> str:
    """A stand-in for `docker:27-cli` (what [scheduler] image defaults to, which cannot be
    pulled here): the stand-in nginx's Debian (sh, date, flock) with this machine's docker CLI."""
    import shutil

    context = workdir / "scheduler-image"
    context.mkdir(exist_ok=True)
    shutil.copy2(shutil.which("docker") or "/usr/local/bin/docker", context / "docker")
    (context / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY docker /usr/local/bin/docker\n")
    return build_image(context, "deployctl-test/scheduler:latest", standin_images["nginx"])
