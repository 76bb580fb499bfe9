"""The Textual app: observes the call controller's events and calls its methods."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Input

from sandra_tui.call.events import (
    AudioLevels,
    CallState,
    ErrorEvent,
    HistoryChanged,
    LatencySample,
    MuteChanged,
    Notice,
    Quality,
    StateChanged,
    Transcript as TranscriptEvent,
)
from sandra_tui.ui.widgets.call_pane import CallPane
from sandra_tui.ui.widgets.latency_spark import LatencySpark
from sandra_tui.ui.widgets.transcript import Transcript

HELP = ("F2 call / hang up · F3 mute · F4 push-to-talk mode · F5 talk (push-to-talk) · "
        "Esc stop Sandra · F7 clear transcript · Ctrl+Q quit")


class SandraApp(App):
    TITLE = "sandra-tui"
    SUB_TITLE = "voice client for Sandra"
    BINDINGS = [
        Binding("f2", "toggle_call", "Call/Hang up", priority=True),
        Binding("f3", "toggle_mute", "Mute", priority=True),
        Binding("f4", "toggle_ptt", "PTT mode", priority=True),
        Binding("f5", "talk", "Talk", priority=True),
        Binding("f7", "clear", "Clear", priority=True),
        Binding("escape", "cancel_reply", "Stop Sandra", priority=True),
        Binding("f1", "help", "Help", priority=True),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, controller, warnings: list[str] | None = None, autostart: bool = True,
                 telemetry_factory=None) -> None:
        super().__init__()
        self.controller = controller
        self.telemetry_factory = telemetry_factory
        self.telemetry = None
        self.warnings = list(warnings or [])
        self.autostart = autostart

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield CallPane(id="call")
        yield Transcript(self.controller.history, id="transcript")
        yield LatencySpark(id="latency")
        yield Input(placeholder="Type to Sandra and press Enter", id="message")
        yield Footer()

    async def on_mount(self) -> None:
        pane = self.query_one(CallPane)
        pane.audio_description = self.controller.audio.description
        pane.push_to_talk = self.controller.audio.push_to_talk
        self._unsubscribe = self.controller.subscribe(self.on_controller_event)
        if self.telemetry_factory is not None:
            self.telemetry = self.telemetry_factory(self.controller)
        for warning in self.warnings:
            self.notify(warning, title="Configuration", severity="warning", timeout=15)
        self.query_one(Input).focus()
        if self.autostart:
            await self.controller.start()

    def on_controller_event(self, event) -> None:
        pane = self.query_one(CallPane)
        if isinstance(event, StateChanged):
            pane.set_state(event)
        elif isinstance(event, (TranscriptEvent, HistoryChanged)):
            pass  # the transcript polls the history's revision at ~5 Hz
        elif isinstance(event, LatencySample):
            self.query_one(LatencySpark).add(event.name, event.ms, event.cls)
        elif isinstance(event, AudioLevels):
            pane.levels = (event.input_dbfs, event.output_dbfs)
        elif isinstance(event, Quality):
            rtt = "-" if event.rtt_ms is None else f"{event.rtt_ms:.0f}"
            jitter = "-" if event.jitter_ms is None else f"{event.jitter_ms:.0f}"
            pane.quality = f"RTT {rtt} ms  jitter {jitter} ms  loss {event.loss_pct:.1f}%  MOS {event.mos or '-'}"
        elif isinstance(event, MuteChanged):
            pane.muted, pane.push_to_talk = event.muted, event.push_to_talk
            pane.refresh_text()
        elif isinstance(event, ErrorEvent):
            self.notify(event.message, title="Error" if event.fatal else "Sandra", severity="error", timeout=10)
        elif isinstance(event, Notice):
            self.notify(event.message, timeout=8)

    async def on_input_submitted(self, message: Input.Submitted) -> None:
        text = message.value.strip()
        message.input.value = ""
        if text:
            await self.controller.send_text(text)
            self.query_one(Transcript).sync()

    async def action_toggle_call(self) -> None:
        if self.controller.state in (CallState.IDLE, CallState.ENDED, CallState.FAILED):
            await self.controller.retry()
        else:
            await self.controller.hangup()

    def action_toggle_mute(self) -> None:
        self.controller.toggle_mute()

    def action_toggle_ptt(self) -> None:
        self.controller.set_push_to_talk(not self.controller.audio.push_to_talk)

    def action_talk(self) -> None:
        talking = not self.controller.audio.talking
        self.controller.talk(talking)
        self.notify("talking" if talking else "stopped talking", timeout=1.5)

    async def action_cancel_reply(self) -> None:
        await self.controller.cancel_response()

    def action_clear(self) -> None:
        self.controller.clear_history()
        self.query_one(Transcript).sync(force=True)

    def action_help(self) -> None:
        self.notify(HELP, title="Keys", timeout=12)

    async def action_quit(self) -> None:
        await self.controller.hangup()
        if self.telemetry is not None:
            await self.telemetry.close(deadline_s=2.0)  # the backend is still up: flush, spool the rest
        await self.controller.close()
        self.exit()
