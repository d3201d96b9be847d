"""deploy.toml: loading, validation and the resolved view of one environment."""

from .load import DEFAULT_FILE, LoadedConfig, load_config, parse_config

__all__ = ["DEFAULT_FILE", "LoadedConfig", "load_config", "parse_config"]
