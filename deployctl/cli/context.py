"""The application object every command gets: config location, output mode, renderers."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .render import JsonRenderer, PlainRenderer, RichRenderer, plain_text

if TYPE_CHECKING:  # pydantic is only imported when a command reads the config
    from ..config import LoadedConfig
    from ..services.env import Env


def detect_mode(json_output: bool) -> str:
    if json_output:
        return "json"
    if sys.stdout.isatty() and os.environ.get("TERM") != "dumb":
        return "rich"
    return "plain"


@dataclass
class AppContext:
    config_path: str = "deploy.toml"
    json_output: bool = False
    debug: bool = False
    mode: str = field(default="")
    _renderer: Any = None
    _envs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mode = self.mode or detect_mode(self.json_output)

    @cached_property
    def loaded(self) -> "LoadedConfig":
        from ..config import load_config

        return load_config(self.config_path)

    def env(self, name: str) -> "Env":
        """Environment `name` of the config, resolved once for this command (services/env.py):
        the services take it instead of working names, layout and ports out again."""
        from ..services.env import Env

        if name not in self._envs:
            self._envs[name] = Env.resolve(self.loaded, name)
        return self._envs[name]

    @cached_property
    def console(self) -> Any:
        from rich.console import Console

        # Rich honours NO_COLOR itself; highlight=False keeps numbers in log lines uncoloured.
        return Console(highlight=False)

    @property
    def emit(self) -> Any:
        """The Emit for services: created on first use, closed by `close()`."""
        if self._renderer is None:
            if self.mode == "json":
                self._renderer = JsonRenderer()
            elif self.mode == "rich":
                self._renderer = RichRenderer(self.console)
            else:
                self._renderer = PlainRenderer()
        return self._renderer

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()

    def print_json(self, data: Any) -> None:
        from .render import redact_strings

        # Values masked before serialising (as JsonRenderer does): never digits out of numbers.
        print(json.dumps(redact_strings(data), indent=2, default=str))

    def out(self, text: str) -> None:
        """A line of human output: Rich markup on a TTY, plain text otherwise (secret
        values masked, as in every renderer)."""
        from ..secrets import redactor

        text = redactor(text)
        if self.mode == "rich":
            self.console.print(text)
        else:
            print(plain_text(text))
