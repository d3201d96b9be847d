"""Just enough of a Dockerfile to name a base image when a build fails at its FROM line. Pure.

The classic builder prints a FROM step as written (`FROM ${BASE_IMAGE} AS runtime`) and, when
the image is missing and cannot be pulled, says only why the registry was unreachable; the
user needs the image's name. It is the FROM text with the global ARGs (those before the first
FROM) expanded: their defaults, overridden by the build's build args.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

VAR_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
INSTRUCTION_RE = re.compile(r"^\s*([A-Za-z]+)\s+(.*)\Z")


@dataclass(frozen=True)
class BaseImage:
    reference: str  # the image name with variables expanded, e.g. "python:3.12-slim"
    variables: tuple[str, ...]  # the ARGs the FROM line used, e.g. ("BASE_IMAGE",)
    stage: bool  # it names an earlier stage of the same Dockerfile, not an image


def logical_lines(text: str) -> list[str]:
    """A Dockerfile's instructions, one string each: continuations joined, comments and
    blank lines dropped, each line stripped."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def global_args(text: str, build_args: Mapping[str, str]) -> dict[str, str]:
    """The ARGs declared before the first FROM, with their values for this build."""
    values: dict[str, str] = {}
    for line in logical_lines(text):
        match = INSTRUCTION_RE.match(line)
        if not match:
            continue
        instruction, rest = match.group(1).upper(), match.group(2)
        if instruction == "FROM":
            break
        if instruction != "ARG":
            continue
        for word in rest.split():
            name, has_default, default = word.partition("=")
            if name in build_args:
                values[name] = build_args[name]
            elif has_default:
                values[name] = _unquote(default)
    return values


def expand(text: str, values: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """`text` with $NAME, ${NAME}, ${NAME:-word} and ${NAME:+word} expanded; and the names used."""
    used: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        used.append(name)
        value = values.get(name)
        operator, word = match.group(2), match.group(3) or ""
        if operator in (":-", "-"):
            return value if value or (operator == "-" and value is not None) else word
        if operator in (":+", "+"):
            return word if value or (operator == "+" and value is not None) else ""
        return value or ""

    return VAR_RE.sub(replace, text), tuple(dict.fromkeys(used))


def from_step_image(step: str, dockerfile: str, build_args: Mapping[str, str]) -> BaseImage | None:
    """The image a failed step names, when the step is a FROM (the builder's step text, e.g.
    "Step 2/7 : FROM ${BASE_IMAGE} AS runtime"); None for any other step."""
    _, sep, instruction = step.partition(" : ")
    words = instruction.split() if sep else step.split()
    if not words or words[0].upper() != "FROM":
        return None
    words = [w for w in words[1:] if not w.startswith("--")]  # --platform=...
    if not words:
        return None
    reference, used = expand(words[0], global_args(dockerfile, build_args))
    return BaseImage(reference, used, reference.lower() in _stage_names(dockerfile))


def _stage_names(text: str) -> set[str]:
    names = set()
    for line in logical_lines(text):
        words = line.split()
        if len(words) >= 4 and words[0].upper() == "FROM" and words[-2].upper() == "AS":
            names.add(words[-1].lower())
    return names
