"""Configuration: TOML file, typed model, ICE server URLs, env overrides, ICE probe.

The names below load on first use (PEP 562): a light submodule (paths, urls) must not pull
in pydantic through this package, the TUI's first paint goes without it (issue #23).
"""

import importlib

_WHERE = {
    "ConfigError": "load", "ConfigIssue": "load", "LoadedConfig": "load", "config_path": "paths",
    "load_config": "load", "parse_config": "load", "save_config": "load",
    "DEFAULT_STUN": "model", "Config": "model", "IceConfig": "model", "TurnServer": "model",
    "IceUrl": "urls", "IceUrlError": "urls", "parse_ice_url": "urls",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
