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


class _Launch:
    """The call's side, built on the call thread once the screen is up (issue #23): the config
    model, the audio engine and the call stack (aiortc, av, numpy) load off the first paint."""

    def __init__(self, args: argparse.Namespace, backend_url: str | None, call, port, log: logging.Logger) -> None:
        self.args, self.backend_url, self.call, self.port, self.log = args, backend_url, call, port, log
        self.early = getattr(args, "early_agent", None)  # spawned in main() (call/early_agent.py)
        self.controller = None

    def _build(self):
        """On the call thread: the controller, and what the app needs of the config."""
        from sandra_tui.audio.engine import build_engine
        from sandra_tui.call.controller import CallController
        from sandra_tui.call.probe_adapter import make_probe
        from sandra_tui.config.load import load_config

        loaded = load_config(self.args.config)
        # The configured microphone and speaker, or text only with one message saying why.
        audio, problem = build_engine(loaded.config.audio, use_devices=not getattr(self.args, "text_only", False))
        # --backend goes to the controller, not into the config: the ICE editor and the device
        # picker save the config, and a one-off flag must not end up in the file.
        self.controller = CallController(loaded.config, audio=audio, probe=make_probe(),
                                         backend_url=self.backend_url, embedded=self.early)
        return self.controller, (loaded, [problem] if problem else [])

    async def __call__(self) -> dict:
        """For SandraApp(launch=...): attach the controller to the port; the app's settings."""
        loaded, problems = await self.port.attach(self._build)
        warnings = loaded.warnings + problems
        from sandra_tui.call.call_log import CallStore, db_path

        store = None
        if loaded.config.history.save_calls:
            try:
                store = CallStore(db_path(loaded.config.history))
            except Exception as exc:  # noqa: BLE001 - no history is no reason to have no call
                self.log.warning("call history unavailable: %s", exc)
                warnings.append(f"call history unavailable: {exc}")
        autostart = loaded.config.call.autostart and not getattr(self.args, "no_autostart", False)
        return {"warnings": warnings, "autostart": autostart, "call_store": store, "config_path": loaded.path}

    def telemetry(self, _port):
        from sandra_tui.call.telemetry_link import attach_telemetry

        uploader = self.call.run(attach_telemetry, self.controller)
        return self.call.bind(uploader) if uploader is not None else None

    async def close(self) -> None:
        """On the call thread, after a build still running there: close what it made."""
        if self.controller is not None:
            await self.controller.close()

    def kill_agents(self) -> None:
        """The close failed or timed out, or never ran: do not leave an agent."""
        if self.controller is not None and self.controller.embedded is not None:
            self.controller.embedded.kill()
        if self.early is not None:
            self.early.kill()


def _backend_flag(args: argparse.Namespace) -> str | None:
    """--backend checked by the config's own rule; raises ValueError with the reason."""
    if not args.backend:
        return None
    from pydantic import ValidationError

    from sandra_tui.config.model import BackendConfig

    try:
        return BackendConfig(url=args.backend).url
    except ValidationError as exc:
        raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


def _run(args: argparse.Namespace, log: logging.Logger) -> int:
    from sandra_tui.call.call_thread import CallThread
    from sandra_tui.call.thread_port import ControllerPort
    from sandra_tui.ui.app import SandraApp

    early = getattr(args, "early_agent", None)
    try:
        backend_url = _backend_flag(args)
    except ValueError as exc:
        if early is not None:
            early.kill()
        print(f"sandra-tui: --backend: {exc}", file=sys.stderr)
        return 2
    # The call (packets, decoding, the playout feed, telemetry) runs on its own thread and event
    # loop, so a slow repaint never starves the speaker; the app holds only a port to it.
    call = CallThread()
    port = ControllerPort(None, call)
    launch = _Launch(args, backend_url, call, port, log)
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
        app = SandraApp(port, telemetry_factory=launch.telemetry, freeze_heap=True, launch=launch)
        app.run()
    finally:
        # Quitting closed the call already; closing again is harmless, and covers any other exit.
        try:
            call.stop(cleanup=launch.close)
        finally:
            launch.kill_agents()
            for sig, handler in previous.items():
                with contextlib.suppress(ValueError, TypeError):
                    signal.signal(sig, handler)
    if signalled:
        return 128 + signalled[0]
    return app.return_code or 0
