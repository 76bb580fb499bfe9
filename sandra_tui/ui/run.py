"""`sandra-tui`: load the config, log to a file (stderr would garble the screen), run the app.

Every way out closes the call (and so stops the embedded agent): quit, SIGTERM/SIGHUP/SIGINT
(the first quits as Ctrl+Q does, a second stops waiting), an exception in start-up or in the
app. Exit status: the app's (0 after a quit, 1 after a crash), 128 + the signal's number when a
signal ended it. Even a SIGKILL leaves no agent: see call/embedded.py.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from pathlib import Path

import platformdirs
from pydantic import ValidationError


def run_tui(args: argparse.Namespace) -> int:
    from sandra_tui.logs import RedactingFilter

    log = logging.getLogger("sandra_tui.ui")
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

    # C libraries (ALSA, PortAudio) write to fd 2 on their own: into the log, never over the TUI.
    # Python's stderr (Textual draws there, tracebacks go there) keeps a copy of the terminal.
    from sandra_tui.audio.quiet import stderr_to_log

    with stderr_to_log(log_dir / "sandra-tui.log"):
        return _run(args, log)


def _run(args: argparse.Namespace, log: logging.Logger) -> int:
    from sandra_tui.audio.engine import build_engine
    from sandra_tui.call.call_thread import CallThread
    from sandra_tui.call.controller import CallController
    from sandra_tui.call.probe_adapter import make_probe
    from sandra_tui.call.telemetry_link import attach_telemetry
    from sandra_tui.call.thread_port import ControllerPort
    from sandra_tui.config.load import load_config
    from sandra_tui.config.model import BackendConfig
    from sandra_tui.ui.app import SandraApp

    loaded = load_config(args.config)
    backend_url = None
    if args.backend:
        try:
            backend_url = BackendConfig(url=args.backend).url  # the config's own check of the URL
        except ValidationError as exc:
            print(f"sandra-tui: --backend: {exc.errors()[0]['msg'].removeprefix('Value error, ')}", file=sys.stderr)
            return 2
    # The configured microphone and speaker, or text only with one message saying why.
    audio, problem = build_engine(loaded.config.audio, use_devices=not getattr(args, "text_only", False))
    warnings = loaded.warnings + ([problem] if problem else [])
    # The call (packets, decoding, the playout feed, telemetry) runs on its own thread and event
    # loop, so a slow repaint never starves the speaker; the app holds only a port to it.
    call = CallThread()
    controller = None
    app = None
    signalled: list[int] = []

    def on_signal(signum, _frame) -> None:
        loop = getattr(app, "_loop", None)  # set once the app is mounted
        if signalled or loop is None or loop.is_closed():
            signalled.append(signum)
            raise SystemExit(128 + signum)  # not (or no longer) running: unwind through the finally below
        signalled.append(signum)
        log.warning("%s: quitting", signal.Signals(signum).name)
        # A signal handler runs between two bytecodes of the main thread, maybe inside the loop:
        # call_soon_threadsafe is the safe way in; the quit then runs as Ctrl+Q's does.
        loop.call_soon_threadsafe(lambda: app.call_later(app.action_quit))

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    try:
        # --backend goes to the controller, not into the config: the ICE editor and the device
        # picker save the config, and a one-off flag must not end up in the file.
        controller = call.run(CallController, loaded.config, audio=audio, probe=make_probe(),
                              backend_url=backend_url)

        def telemetry(_proxy):
            uploader = call.run(attach_telemetry, controller)
            return call.bind(uploader) if uploader is not None else None

        from sandra_tui.call.call_log import CallStore, db_path

        store = None
        if loaded.config.history.save_calls:
            try:
                store = CallStore(db_path(loaded.config.history))
            except Exception as exc:  # noqa: BLE001 - no history is no reason to have no call
                log.warning("call history unavailable: %s", exc)
                warnings.append(f"call history unavailable: {exc}")
        autostart = loaded.config.call.autostart and not getattr(args, "no_autostart", False)
        app = SandraApp(ControllerPort(controller, call), warnings=warnings, telemetry_factory=telemetry,
                        config_path=loaded.path, freeze_heap=True, autostart=autostart, call_store=store)
        app.run()
    finally:
        # Quitting closed the call already; closing again is harmless, and covers any other exit.
        try:
            call.stop(cleanup=controller.close if controller is not None else None)
        finally:
            if controller is not None and controller.embedded is not None:
                controller.embedded.kill()  # the close failed or timed out: do not leave the agent
            for sig, handler in previous.items():
                with contextlib.suppress(ValueError, TypeError):
                    signal.signal(sig, handler)
    if signalled:
        return 128 + signalled[0]
    return app.return_code or 0
