"""Where the config file is: light (no pydantic), for the TUI's first moments (call/early_agent.py)."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "sandra-tui"


def config_path(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("SANDRA_CONFIG")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"
