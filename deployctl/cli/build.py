"""`deployctl build`: build every image (or some) and write the artifacts file."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import (ArtifactsOption, NoHooksOption, ServiceOption, artifacts_path, finish, hooks_skipped_warning,
                     short_id, table)
from .context import AppContext


def build(
    ctx: typer.Context,
    service: ServiceOption = None,
    tag: Annotated[Optional[str], typer.Option(
        "--tag", metavar="TAG", help="Tag to build [default: the git revision, plus -dirty-HASH for uncommitted changes].")] = None,
    build_arg: Annotated[Optional[list[str]], typer.Option(
        "--build-arg", metavar="[IMAGE:]KEY=VALUE",
        help="A build arg for every image, or for one image with IMAGE: in front; repeatable.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Build every layer afresh.")] = False,
    jobs: Annotated[Optional[int], typer.Option(
        "--jobs", "-j", min=1, metavar="N", help="Images built at once [default: all of them].")] = None,
    test_images: Annotated[bool, typer.Option(
        "--test-images/--no-test-images", help="Also build each service's test stage (for `deployctl test`).")] = True,
    artifacts: ArtifactsOption = None,
    no_hooks: NoHooksOption = False,
) -> None:
    """Build the images deploy.toml names, tagged with the git revision, and record them."""
    from ..adapters.docker_engine import DockerEngine
    from ..plan.pipeline.build import parse_build_arg
    from ..services.pipeline.build import BuildRequest, build_images

    app: AppContext = ctx.obj
    loaded = app.loaded
    path = artifacts_path(app, artifacts)
    request = BuildRequest(
        artifacts_path=path,
        images=service or (),
        tag=tag,
        build_args=[parse_build_arg(arg) for arg in build_arg or ()],
        no_cache=no_cache,
        jobs=jobs,
        test_images=test_images,
        # deployctl's own outputs, in case the project does not git-ignore them.
        exclude_from_git=[path, loaded.root / "reports"],
        hooks=not no_hooks,
    )
    hooks_skipped_warning(app, no_hooks)
    engine = DockerEngine.connect(pool_size=len(loaded.config.services) + 2)
    result = build_images(loaded, request, engine=engine, emit=app.emit)
    images = result.artifacts.images
    if app.mode == "json":
        finish(app, "build", {"artifacts": str(path), **result.artifacts.to_dict()})
        return
    app.emit.close()
    rows = [[name, images[name].reference, short_id(images[name].image_id),
             f"{result.cached[name][0]}/{result.cached[name][1]}"] for name in result.cached]
    table(app, f"Built {result.artifacts.tag}", ["image", "reference", "id", "cached steps"], rows)
    app.out(f"artifacts: {path}")
