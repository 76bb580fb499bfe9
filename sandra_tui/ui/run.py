"""`sandra-tui`: load the config, log to a file (stderr would garble the screen), run the app."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import platformdirs


def run_tui(args: argparse.Namespace) -> int:
    from sandra_tui.audio.engine import AudioEngine
    from sandra_tui.call.controller import CallController
    from sandra_tui.call.probe_adapter import make_probe
    from sandra_tui.call.telemetry_link import attach_telemetry
    from sandra_tui.config.load import load_config
    from sandra_tui.logs import RedactingFilter
    from sandra_tui.ui.app import SandraApp

    log_dir = Path(platformdirs.user_log_dir("sandra-tui"))
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "sandra-tui.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO if args.log_level.upper() in ("WARNING", "INFO") else args.log_level.upper())

    loaded = load_config(args.config)
    if args.backend:
        loaded.config.backend.url = args.backend
    audio = AudioEngine(push_to_talk=loaded.config.audio.push_to_talk, description="no audio device (text only)")
    controller = CallController(loaded.config, audio=audio, probe=make_probe())
    app = SandraApp(controller, warnings=loaded.warnings, telemetry_factory=attach_telemetry)
    app.run()
    return 0
