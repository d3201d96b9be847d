"""Building one image: the shipped target (the last stage when `target` is unset), then, only
when `test_target` is set, the test target on top of exactly its layers."""

from __future__ import annotations

import threading
from typing import Any, Sequence

from ...artifacts import ImageArtifact, TestImage
from ...errors import BuildError, DeployctlError
from ...events import Emit, Message, StepProgress, Timer
from ...plan.pipeline.build import ImageBuild
from ...plan.pipeline.dockerfile import from_step_image
from .build_log import BuildLog



class MissingBaseImage(BuildError):
    """A FROM image is not in the engine and the engine could not pull it: one line that
    names the image and what to do."""


def missing_base_image(plan: ImageBuild, step: str, engine_error: str, engine: Any) -> MissingBaseImage | None:
    """The error for a build that failed at a FROM step because its image is missing, or None
    when that is not why it failed (an earlier stage, an image the engine has)."""
    try:
        dockerfile = (plan.context / plan.dockerfile).read_text(errors="replace")
    except OSError:
        return None
    base = from_step_image(step, dockerfile, plan.build_args)
    if base is None or base.stage or not base.reference or engine.image_id(base.reference) is not None:
        return None
    if base.variables:
        remedy = f"pull it, or pass a stand-in with --build-arg {plan.name}:{base.variables[0]}=IMAGE"
    else:
        remedy = f"pull it, or tag a stand-in with its name (docker tag IMAGE {base.reference})"
    return MissingBaseImage(f"base image {base.reference} is not in the engine and cannot be pulled "
                            f"({engine_error}); {remedy}")


def build_image(engine: Any, plan: ImageBuild, no_cache: bool, emit: Emit,
                cancel: threading.Event) -> tuple[ImageArtifact, tuple[int, int]]:
    timer = Timer(emit, "build", service=plan.name, detail=plan.reference)
    image_id, log = run_build(engine, plan, plan.target, plan.reference, emit, timer, cancel, no_cache=no_cache)
    test_image = None
    if plan.test_target and plan.test_reference:
        test_image = TestImage(plan.test_reference, _build_test_image(engine, plan, image_id, no_cache, emit, timer, cancel))
    steps = (log.cached_steps, log.step_total or 0)
    timer.done(f"{plan.reference} {image_id.removeprefix('sha256:')[:12]}, {steps[0]}/{steps[1]} steps cached")
    return ImageArtifact(plan.repository, plan.tag, image_id, None, test_image), steps


def _build_test_image(engine: Any, plan: ImageBuild, runtime_id: str, no_cache: bool, emit: Emit,
                      timer: Timer, cancel: threading.Event) -> str:
    """The test stage must sit on the very layers that ship, so what is tested is what ships.

    From the cache that is the rule, but the classic builder picks the *newest* matching
    cache entry, and concurrent or --no-cache builds of images that share leading steps
    leave several; so the result is checked, and when it is not on the runtime image's
    layers, the test target is rebuilt with that image as its only cache source (which
    also rebuilds stages only the test stage uses). --no-cache goes there directly: it
    rebuilds everything anyway.
    """
    assert plan.test_target and plan.test_reference
    shipped = engine.layers(runtime_id)
    if not no_cache:
        test_id, _ = run_build(engine, plan, plan.test_target, plan.test_reference, emit, timer, cancel)
        if engine.layers(test_id)[:len(shipped)] == shipped:
            return test_id
        emit(Message("the test image was not built on the runtime image's layers; rebuilding it on them",
                     level="warning", service=plan.name))
    test_id, _ = run_build(engine, plan, plan.test_target, plan.test_reference, emit, timer, cancel,
                           cache_from=[runtime_id])
    if engine.layers(test_id)[:len(shipped)] != shipped:
        timer.failed(f"target {plan.test_target} is not built on target {plan.target}")
        shipped_stage = f"target {plan.target!r}" if plan.target else "the shipped (last) stage"
        raise BuildError(f"the test image is not built on the runtime image: target {plan.test_target!r} "
                         f"must start FROM {shipped_stage} (directly or through other stages)")
    return test_id


def run_build(engine: Any, plan: ImageBuild, target: str | None, reference: str, emit: Emit, timer: Timer,
              cancel: threading.Event, *, no_cache: bool = False, cache_from: Sequence[str] = ()) -> tuple[str, BuildLog]:
    log = BuildLog()
    what = f"target {target}" if target else "image"
    try:
        for chunk in engine.build(context=plan.context, dockerfile=plan.dockerfile, tag=reference, target=target,
                                  buildargs=plan.build_args, labels=plan.labels, nocache=no_cache,
                                  cache_from=cache_from):
            if cancel.is_set():
                raise BuildError("cancelled")
            for line in log.feed(chunk):
                emit(StepProgress("build", line.text, line.step, line.steps, service=plan.name))
        for line in log.flush():
            emit(StepProgress("build", line.text, line.step, line.steps, service=plan.name))
    except DeployctlError as exc:
        timer.failed(exc.message, log.failure_output())
        raise
    if log.error:
        where = log.step or "before the first step"
        # A FROM image missing from the engine: the classic builder pulls it (pull=False only
        # spares images it has), so this means the pull failed too.
        missing = missing_base_image(plan, log.step, log.error, engine) if log.step else None
        timer.failed(missing.message if missing else f"{what}: {where}: {log.error}", log.failure_output())
        raise missing or BuildError(f"{where}: {log.error}")
    image_id = engine.image_id(reference) or log.image_id
    if not image_id:
        timer.failed(f"{what}: the engine reported success but has no image {reference}")
        raise BuildError(f"the engine has no image {reference} after building it")
    return image_id, log
