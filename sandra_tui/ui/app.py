"""The Textual app: observes a CallPort's events and gives it commands, nothing more.

The port (sandra_tui/call/port.py) is all the app holds of the call: events and snapshots come
out frozen, commands go in; nothing here reads or writes an object of the call's thread
(tests/ui/test_port_boundary.py). The main screen paints the events (heavy streams on a timer).
Every command the operator gives is guarded: a failure becomes a notification with the reason,
never a traceback on screen.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App
from textual.binding import Binding

from sandra_tui.call.events import (
    CallState,
    CallSummary,
    DevicesChanged,
    ErrorEvent,
    Event,
    MuteChanged,
    Notice,
    RecordingChanged,
    StateChanged,
)
from sandra_tui.call.port import CallPort
from sandra_tui.heap import freeze_long_lived
from sandra_tui.ui.commands import SandraCommands
from sandra_tui.ui.keys import APP_KEYS
from sandra_tui.ui.loop_lag import LoopLagMonitor
from sandra_tui.ui.screens.confirm import Confirm
from sandra_tui.ui.screens.error import ErrorScreen
from sandra_tui.ui.screens.help import HelpScreen
from sandra_tui.ui.screens.main import MainScreen
from sandra_tui.ui.toasts import Toasts, clean

if TYPE_CHECKING:
    from sandra_tui.config.model import IceConfig

# The dialogs that need the config model, numpy or the ICE probe are imported when opened
# (below): the first paint goes without them (issue #23, tests/ui/test_first_paint.py).

log = logging.getLogger(__name__)
IDLE_STATES = (CallState.IDLE, CallState.ENDED, CallState.FAILED)
redact = clean  # every text shown: registered secrets and ICE URL credentials masked


class SandraApp(App):
    TITLE = "sandra-tui"
    SUB_TITLE = "voice client for Sandra"
    CSS_PATH = ["styles/main.tcss", "styles/dialogs.tcss"]
    BINDINGS = [Binding(k.key, k.action, k.label, key_display=k.display, priority=True)
                for k in APP_KEYS if k.action != "command_palette"]
    # Ours only: Textual's built-ins ("Quit" beside "Hang up and quit", themes) would mix in.
    COMMANDS = {SandraCommands}

    def __init__(self, port: CallPort, warnings: list[str] | None = None, autostart: bool = True,
                 telemetry_factory=None, config_path: str | Path | None = None, clock=time.monotonic,
                 monitor_loop_lag: bool = True, freeze_heap: bool = False, call_store=None,
                 launch=None) -> None:
        super().__init__()
        self.toasts = Toasts(self)
        self.call_store = call_store  # a CallStore (call history), or None: not kept
        self.port = port
        self.telemetry_factory = telemetry_factory
        self.warnings = list(warnings or [])
        self.autostart = autostart
        self.config_path = config_path  # None: save_config's default ($SANDRA_CONFIG or the user dir)
        self.clock = clock
        self.lag = LoopLagMonitor() if monitor_loop_lag else None
        self.freeze_heap = freeze_heap  # the real app, not tests: see sandra_tui/heap.py
        self.main = MainScreen(port, clock)
        # The real app's (ui/run.py): awaited after the first paint, it brings the call and the
        # settings the config decides (warnings, autostart, call_store, config_path).
        self.launch = launch
        self._unsubscribe = None
        self._call_log_opened = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def get_default_screen(self) -> MainScreen:
        return self.main

    async def on_mount(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.lag is not None:
            self.lag.start()
        self._show_warnings(self.warnings)

    def _show_warnings(self, warnings: list[str]) -> None:
        for warning in warnings:
            self.notify(redact(warning), title="Configuration", severity="warning", timeout=15)

    @property
    def listening(self) -> bool:
        """Subscribed to the port (the main screen is up)."""
        return self._unsubscribe is not None

    async def on_main_screen_ready(self) -> None:
        if self.launch is None:
            await self._listen_and_call()
        else:  # a worker: the app's own queue (the paint's callbacks, keys) runs on meanwhile
            self.run_worker(self._launch_then_ready(), name="launch", exit_on_error=True)

    async def _launch_then_ready(self) -> None:
        await self._launched()
        await self._listen_and_call()

    async def _listen_and_call(self) -> None:
        if self.freeze_heap:
            freeze_long_lived()  # the screen is built and the call not started: a pause costs nothing now
        self._unsubscribe = self.port.subscribe(self.on_port_event)
        self._call_log_opened = True
        try:  # the logger runs where the call runs: it reads the history when the call ends
            await self.port.open_call_log(self.call_store)
        except Exception:  # noqa: BLE001 - no history is no reason to have no call
            log.exception("starting the call history failed")
        if self.telemetry_factory is not None:  # the port keeps the uploader: the UI never holds it
            await self._guard("Starting telemetry", self.port.start_telemetry, self.telemetry_factory)
        if self.autostart:
            await self._guard("Starting the call", self.port.start)

    async def on_unmount(self) -> None:
        try:
            if self._call_log_opened:  # not when the app ended before its launch brought the call
                await self.port.close_call_log()
        except Exception:  # noqa: BLE001 - closing: the rest must still run
            log.exception("closing the call history failed")
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.lag is not None:
            await self.lag.stop()
            log.info("event loop lag: %s", self.lag.stats())

    async def _launched(self) -> None:
        painted = asyncio.get_running_loop().create_future()
        self.call_after_refresh(lambda: painted.done() or painted.set_result(None))
        await painted  # the screen is up: now the call's libraries may load
        found = await self.launch()
        self.warnings += found["warnings"]
        self.autostart = self.autostart and found["autostart"]
        self.call_store, self.config_path = found["call_store"], found["config_path"]
        self._show_warnings(found["warnings"])
        self.main.show_audio()

    def loop_lag_stats(self) -> dict[str, float]:
        """p50_ms / p99_ms / max_ms of how late the event loop wakes up (for benchmarks)."""
        return self.lag.stats() if self.lag is not None else {}

    # -- events in ---------------------------------------------------------------------------
    def on_port_event(self, event: Event) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._loop is not None and running is not self._loop:
            try:
                self._loop.call_soon_threadsafe(self._handle_event, event)  # from another thread: hop over
            except RuntimeError:  # the app's loop has closed: the call is being shut down
                pass
            return
        self._handle_event(event)

    def _handle_event(self, event: Event) -> None:
        try:  # this may run inside the controller's publish: a display bug must not break the call
            if isinstance(event, ErrorEvent):
                self.show_error(event)
            elif isinstance(event, Notice):
                self.toasts.show(event.message, title="Sandra", timeout=8)
            elif isinstance(event, DevicesChanged) and event.reason:
                self.toasts.show(event.reason, title="Audio devices", severity="warning", timeout=10)
            elif isinstance(event, CallSummary) and event.call_id is not None:
                self.toasts.show(f"Saved as call {event.call_id} (F9: history)", title="Call history", timeout=6)
            if (isinstance(event, StateChanged) and event.state == CallState.CONNECTED
                    and self.port.can_record and not self.port.recording and self.port.settings().call.record):
                self.call_later(self._guard, "Recording", self.port.set_recording, True)  # [call] record
            if isinstance(event, (StateChanged, MuteChanged, RecordingChanged)):
                self.refresh_bindings()  # the footer names what F2, F5, Esc do now
            if self.main.is_mounted:
                self.main.take(event)
        except Exception:  # noqa: BLE001
            log.exception("showing %s failed", type(event).__name__)

    def show_error(self, event: ErrorEvent) -> None:
        message = redact(event.message)
        if event.fatal and not isinstance(self.screen, ErrorScreen):
            self.push_screen(ErrorScreen(message, event.code))
        else:
            self.toasts.show(message, title="Error" if event.fatal else "Sandra", severity="error", timeout=10)

    async def _guard(self, what: str, command, *args, **kwargs) -> bool:
        """Run a port command; a failure is a notification with the reason."""
        try:
            result = command(*args, **kwargs)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # noqa: BLE001 - the operator gets the reason, the log the traceback
            log.exception("%s failed", what)
            self.notify(redact(f"{what} failed: {exc}"), title="Error", severity="error", timeout=10)
            return False
        return True

    # -- actions (keys, command palette) -----------------------------------------------------
    def applies(self, action: str) -> bool:
        """Whether `action` makes sense now (the footer and the command palette offer only those)."""
        state = self.port.state
        in_call = state not in IDLE_STATES
        if action == "call":
            return not in_call
        if action == "hang_up":
            return in_call
        if action == "talk":
            return self.port.audio_status().push_to_talk
        if action == "cancel_reply":
            return state == CallState.CONNECTED
        if action == "record":
            return state == CallState.CONNECTED and self.port.can_record
        return True

    def check_action(self, action: str, parameters) -> bool | None:
        if action in ("call", "hang_up", "talk", "cancel_reply", "record"):
            return self.applies(action)
        return True

    async def action_call(self) -> None:
        if self.port.state in IDLE_STATES:
            await self._guard("Calling", self.port.retry)

    async def action_hang_up(self) -> None:
        if self.port.state not in IDLE_STATES:
            await self._guard("Hanging up", self.port.hangup)

    async def send_text(self, text: str) -> bool:
        return await self._guard("Sending the message", self.port.send_text, text)

    async def action_toggle_call(self) -> None:
        if self.port.state in IDLE_STATES:
            await self._guard("Calling", self.port.retry)
        else:
            await self._guard("Hanging up", self.port.hangup)

    async def action_toggle_mute(self) -> None:
        await self._guard("Muting", self.port.toggle_mute)

    async def action_toggle_ptt(self) -> None:
        await self._guard("Push-to-talk", self.port.set_push_to_talk, not self.port.audio_status().push_to_talk)

    async def action_talk(self) -> None:
        await self._guard("Talking", self.port.talk, not self.port.audio_status().talking)
        self.main.show_mic()  # the fake port sends no status after talk(); the real one does

    async def action_cancel_reply(self) -> None:
        await self._guard("Stopping Sandra", self.port.cancel_response)

    def action_clear(self) -> None:
        """Asks first: the transcript of the call so far is not kept anywhere else until it ends."""
        if any(isinstance(s, Confirm) for s in self.screen_stack):
            return
        count = len(self.port.history_snapshot().messages)
        if not count:
            self.toasts.show("The transcript is empty.", title="Transcript", timeout=4)
            return
        self.push_screen(Confirm(f"Clear the transcript ({count} message{'s' * (count != 1)})?",
                                 "Clear", id="confirm-clear"), self._clear_confirmed)

    async def _clear_confirmed(self, yes: bool | None) -> None:
        if yes and await self._guard("Clearing the transcript", self.port.clear_history):
            self.main.repaint()

    def action_history(self) -> None:
        from sandra_tui.ui.screens.history import HistoryScreen

        if not any(isinstance(s, HistoryScreen) for s in self.screen_stack):
            self.push_screen(HistoryScreen(self.call_store))

    def action_session_settings(self) -> None:
        from sandra_tui.ui.screens.settings import SessionSettings

        if not any(isinstance(s, SessionSettings) for s in self.screen_stack):
            self.push_screen(SessionSettings(self.port, self.save_session))

    async def action_record(self) -> None:
        if not self.port.can_record:
            return
        await self._guard("Recording", self.port.set_recording, not self.port.recording)

    async def save_session(self, session) -> str:
        """Save [session] in the file, then apply it to the running call. Returns what was applied."""
        from sandra_tui.config.load import save_config

        candidate = self.port.settings().model_copy(update={"session": session})
        await asyncio.to_thread(save_config, candidate, self.config_path)
        connected = self.port.state == CallState.CONNECTED
        applied = await self.port.update_session(session)  # not connected: kept for the next call
        return applied if connected else ""

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
        else:
            self.push_screen(HelpScreen())

    def action_ice_editor(self) -> None:
        from sandra_tui.ui.screens.ice_editor import IceEditor

        if not any(isinstance(s, IceEditor) for s in self.screen_stack):
            self.push_screen(IceEditor(self.port.settings().ice, self.save_ice))

    def action_devices(self) -> None:
        from sandra_tui.ui.screens.devices import DevicePicker

        if not any(isinstance(s, DevicePicker) for s in self.screen_stack):
            self.push_screen(DevicePicker(self.port, self.save_config_file), self._devices_chosen)

    async def action_quit(self) -> None:
        await self._guard("Hanging up", self.port.hangup)
        # The backend is still up: flush, spool the rest.
        await self._guard("Sending telemetry", self.port.close_telemetry, 2.0)
        await self._guard("Closing", self.port.close)
        self.exit()

    # -- saving ------------------------------------------------------------------------------
    async def save_config_file(self) -> Path:
        from sandra_tui.config.load import save_config

        # A thread: fsync can take a while, and the audio shares this event loop.
        return await asyncio.to_thread(save_config, self.port.settings(), self.config_path)

    async def save_ice(self, ice: IceConfig) -> None:
        """Write the file with `ice`, then hand it to the call for the next (re)connect.
        Raises (and changes nothing) when the file cannot be written."""
        from sandra_tui.config.load import save_config

        candidate = self.port.settings().model_copy(update={"ice": ice})
        path = await asyncio.to_thread(save_config, candidate, self.config_path)
        await self.port.set_ice(ice)  # the call rebuilds its ICE planner on its own thread
        log.info("ICE servers saved to %s: %d STUN, %d TURN", path, len(ice.stun), len(ice.turn))
        self.notify(f"Saved to {path}. Used from the next connect.", title="ICE servers", timeout=8)

    def _devices_chosen(self, changed: bool | None) -> None:
        if changed:
            self.notify(redact(self.port.audio_status().description or "devices switched"),
                        title="Audio devices", timeout=6)
