"""Configuration: TOML file, typed model, ICE server URLs, env overrides, ICE probe."""

from sandra_tui.config.load import (
    ConfigError,
    ConfigIssue,
    LoadedConfig,
    config_path,
    load_config,
    parse_config,
    save_config,
)
from sandra_tui.config.model import DEFAULT_STUN, Config, IceConfig, TurnServer
from sandra_tui.config.urls import IceUrl, IceUrlError, parse_ice_url

__all__ = [
    "DEFAULT_STUN",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "IceConfig",
    "IceUrl",
    "IceUrlError",
    "LoadedConfig",
    "TurnServer",
    "config_path",
    "load_config",
    "parse_config",
    "save_config",
    "parse_ice_url",
]
