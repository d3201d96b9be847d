"""Turns pydantic's validation errors into one line per problem that names the key path.

`environments.production.hosts[1]: 'ex ample' is not a valid host` reads better than
pydantic's three-line blocks, and the path is what a user searches deploy.toml for.
"""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from typing import Any, Iterable, Sequence

from pydantic import BaseModel

VALIDATOR_LOC = re.compile(r"^function-(after|before|wrap|plain)\[")

TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "tuple_type": "a list",
}


def key_path(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part)
            # A key with a newline or other invisible character is shown quoted, as TOML
            # spells it (`services."web\n"`): printed raw it would split the error line.
            if not text.isprintable():
                text = json.dumps(text)
            out += ("." if out else "") + text
    return out


def show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unwrap(tp: Any) -> Any:
    """Strip Annotated/Optional so we can see the model or container underneath."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else tp
            if len(args) != 1:
                return tp
        else:
            return tp


def model_at(root: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model class whose keys live at `loc` (for did-you-mean), or None."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
        elif typing.get_origin(tp) in (dict, list):
            tp = typing.get_args(tp)[-1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def suggest(word: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close and len(word) >= 3:
        # Abbreviations ("prod" for "production") are the commonest slip and score low on ratio.
        close = [c for c in choices if c.startswith(word)][:1]
    return f" (did you mean '{close[0]}'?)" if close else ""


def describe(root: type[BaseModel], error: dict[str, Any]) -> tuple[str, str]:
    """(key path, message) for one pydantic error dict."""
    kind, value, msg = error["type"], error.get("input"), error["msg"]
    loc = [p for p in error["loc"] if not (isinstance(p, str) and VALIDATOR_LOC.match(p))]
    # pydantic marks a bad dict *key* with a trailing '[key]'; a user's own key may be
    # spelled '[key]' too, which only ever shows up as an unknown key.
    if len(loc) > 1 and loc[-1] == "[key]" and kind != "extra_forbidden":
        loc.pop()
    path = key_path(loc)
    if kind == "extra_forbidden":
        parent = model_at(root, loc[:-1])
        hint = suggest(str(loc[-1]), parent.model_fields) if parent else ""
        return path, f"unknown key{hint}"
    if kind == "missing":
        return path, "required key is missing"
    if kind in TYPE_NAMES:
        return path, f"expected {TYPE_NAMES[kind]}, got {show(value)}"
    if kind == "literal_error":
        expected = msg.split("Input should be ", 1)[-1]
        return path, f"{show(value)} is not allowed: expected {expected}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = msg.split("Input should be ", 1)[-1]
        return path, f"{show(value)} is out of range: must be {bound}"
    if kind in ("too_short", "too_long"):
        return path, msg.replace("Dictionary", "table").replace("List", "list").lower()
    if kind == "value_error":
        return path, msg.removeprefix("Value error, ")
    return path, f"{msg} (got {show(value)})"


def format_errors(root: type[BaseModel], errors: Iterable[dict[str, Any]], *, skip: set[str] = frozenset(),
                  source: str = "deploy.toml") -> list[str]:
    lines: list[str] = []
    for error in errors:
        path, message = describe(root, error)
        if path in skip:
            continue
        line = f"{source}: {path}: {message}" if path else f"{source}: {message}"
        if line not in lines:
            lines.append(line)
    return lines
