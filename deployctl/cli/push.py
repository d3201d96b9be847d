"""`deployctl push`: push the built images and record their digests in the artifacts file."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import ArtifactsOption, ServiceOption, artifacts_path, finish, table
from .context import AppContext


def push(
    ctx: typer.Context,
    service: ServiceOption = None,
    env: Annotated[Optional[str], typer.Option(
        "--env", "-e", help="Take the registry password from this environment's secret source "
                            "[default: the process environment].")] = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Push the images of the last build to the registry in deploy.toml and record their digests."""
    from ..adapters.docker_engine import DockerEngine
    from ..services.pipeline.push import push_images

    app: AppContext = ctx.obj
    loaded = app.loaded
    environment = loaded.environment(env) if env else None
    path = artifacts_path(app, artifacts)
    engine = DockerEngine.connect()
    result = push_images(loaded, path, engine=engine, emit=app.emit, images=service or (), environment=environment)
    if app.mode == "json":
        finish(app, "push", {"artifacts": str(path), "pushed": [
            {"image": p.name, "pinned": p.pinned, "layers_pushed": p.transferred, "layers_existing": p.existing}
            for p in result.pushed]})
        return
    app.emit.close()
    rows = [[p.name, p.pinned, str(p.transferred), str(p.existing)] for p in result.pushed]
    table(app, "Pushed", ["image", "pinned reference", "layers pushed", "already there"], rows)
    app.out(f"artifacts: {path}")
