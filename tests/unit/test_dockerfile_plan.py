"""plan/pipeline/dockerfile.py: naming the base image of a failed FROM step."""

from __future__ import annotations

import pytest

from deployctl.plan.pipeline.dockerfile import BaseImage, expand, from_step_image, global_args

DOCKERFILE = """\
# syntax=docker/dockerfile:1
ARG BASE_IMAGE=python:3.12-slim \\
    OTHER="quoted"
ARG REGISTRY
FROM ${BASE_IMAGE} AS runtime
ARG LATE=ignored
RUN true

FROM runtime AS test
FROM --platform=linux/amd64 $REGISTRY/tools:1 AS tools
"""


def test_global_args_are_defaults_overridden_by_build_args():
    assert global_args(DOCKERFILE, {}) == {"BASE_IMAGE": "python:3.12-slim", "OTHER": "quoted"}
    assert global_args(DOCKERFILE, {"BASE_IMAGE": "standin/python", "REGISTRY": "r:5000", "LATE": "x"}) == {
        "BASE_IMAGE": "standin/python", "OTHER": "quoted", "REGISTRY": "r:5000"}


@pytest.mark.parametrize("text, values, expanded", [
    ("${A}", {"A": "x"}, "x"),
    ("$A:1", {"A": "x"}, "x:1"),
    ("${A:-d}", {}, "d"),
    ("${A:-d}", {"A": "x"}, "x"),
    ("${A:+set}", {"A": "x"}, "set"),
    ("${A:+set}", {}, ""),
    ("plain:tag", {}, "plain:tag"),
])
def test_expand(text, values, expanded):
    assert expand(text, values)[0] == expanded


@pytest.mark.parametrize("step, build_args, image", [
    ("Step 2/7 : FROM ${BASE_IMAGE} AS runtime", {}, BaseImage("python:3.12-slim", ("BASE_IMAGE",), False)),
    ("Step 2/7 : FROM ${BASE_IMAGE} AS runtime", {"BASE_IMAGE": "nope:1"}, BaseImage("nope:1", ("BASE_IMAGE",), False)),
    ("Step 5/7 : FROM runtime AS test", {}, BaseImage("runtime", (), True)),
    ("Step 6/7 : FROM --platform=linux/amd64 $REGISTRY/tools:1 AS tools", {"REGISTRY": "r:5000"},
     BaseImage("r:5000/tools:1", ("REGISTRY",), False)),
])
def test_from_step_image(step, build_args, image):
    assert from_step_image(step, DOCKERFILE, build_args) == image


def test_other_steps_name_no_image():
    assert from_step_image("Step 3/7 : RUN true", DOCKERFILE, {}) is None
