"""The main screen: call pane, transcript, latency sparkline, message input.

Port events arrive here through the app. Rare ones (state, mute) repaint at once; the heavy
streams (levels, quality, playout, latency; the port already sends them at most 10 Hz) only
store their latest value, and one timer repaints at REPAINT_HZ what changed since the last
frame. The transcript reads the port's latest history snapshot on the same timer.
"""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input

from sandra_tui.call.events import (
    AudioLevels,
    DevicesChanged,
    Event,
    CallState,
    LatencySample,
    MediaPath,
    MuteChanged,
    PlayoutStats,
    Quality,
    RateLimits,
    RecordingChanged,
    Speech,
    StateChanged,
)
from sandra_tui.call.port import AudioStatus, CallPort
from sandra_tui.ui.keys import MAIN_KEYS
from sandra_tui.ui.widgets.call_pane import CallPane
from sandra_tui.ui.widgets.call_status import CallStatus
from sandra_tui.ui.widgets.devices_line import DevicesLine
from sandra_tui.ui.widgets.latency_spark import LatencySpark
from sandra_tui.ui.widgets.level_meter import LevelMeter
from sandra_tui.ui.widgets.limits_line import LimitsLine
from sandra_tui.ui.widgets.media_line import MediaLine
from sandra_tui.ui.widgets.mic_status import MicStatus
from sandra_tui.ui.widgets.playout_line import PlayoutLine
from sandra_tui.ui.widgets.quality_line import QualityLine
from sandra_tui.ui.widgets.transcript import Transcript

REPAINT_HZ = 8
MEDIA_POLL_S = 2.0  # the media path (candidate pair, codec, bitrate) is read this often in a call


class MainScreen(Screen):
    BINDINGS = [Binding(k.key, f"app.{k.action}", k.label, key_display=k.display, priority=True) for k in MAIN_KEYS]

    class Ready(Message):
        """Mounted: the app may subscribe to the port now (events before this would be lost)."""

    def __init__(self, port: CallPort, clock=time.monotonic) -> None:
        super().__init__(id="main")
        self.port = port
        self.clock = clock
        self._levels: AudioLevels | None = None
        self._quality: Quality | None = None
        self._playout: PlayoutStats | None = None
        self._dirty = False
        self.state = CallState.IDLE
        self.recording = False

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield CallPane(self.clock, id="call")
        yield Transcript(self.port.history_snapshot, id="transcript")
        yield LatencySpark(id="latency")
        yield Input(placeholder="Type to Sandra and press Enter", id="message")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.show_audio()
        # Looked up once: the repaint runs REPAINT_HZ times a second for the whole call.
        self._frame = (self.query_one(CallStatus), self.query_one(Transcript), self.query_one(LatencySpark))
        self._meters = (self.query_one("#level-in", LevelMeter), self.query_one("#level-out", LevelMeter))
        self._lines = (self.query_one(QualityLine), self.query_one(PlayoutLine))
        self.show_mic()
        self.query_one(Input).focus()
        self.set_interval(1 / REPAINT_HZ, self.repaint)
        self.set_interval(MEDIA_POLL_S, self.poll_media)
        self.post_message(self.Ready())

    async def poll_media(self) -> None:
        """Ask the port which path the media takes (the call reads the connection's stats)."""
        if self.state != CallState.CONNECTED:
            return
        try:
            path = await self.port.media_path()
        except Exception:  # noqa: BLE001 - a closing connection: nothing to show this time
            return
        if path is not None and self.state == CallState.CONNECTED:
            self.query_one(MediaLine).show(path)

    # -- events in -------------------------------------------------------------------------
    def take(self, event: Event) -> None:
        if isinstance(event, AudioLevels):
            self._levels, self._dirty = event, True
        elif isinstance(event, Quality):
            self._quality, self._dirty = event, True
        elif isinstance(event, PlayoutStats):
            self._playout, self._dirty = event, True
        elif isinstance(event, LatencySample):
            self.query_one(LatencySpark).add(event.name, event.ms, event.cls)
        elif isinstance(event, StateChanged):
            self.state = event.state
            self.query_one(CallStatus).show(event)
            if event.state != CallState.CONNECTED:
                # Figures of a path that no longer carries anything would mislead.
                self._quality = self._playout = None
                self._levels = None
                self.query_one(QualityLine).show(None, event.state)
                self.query_one(PlayoutLine).show(None)
                self.query_one(MediaLine).show(None)
                self.query_one(LimitsLine).show(None)
                if event.state in (CallState.ENDED, CallState.FAILED, CallState.IDLE):
                    self.recording = False
            self.show_mic()
        elif isinstance(event, MediaPath):
            self.query_one(MediaLine).show(event)
        elif isinstance(event, RateLimits):
            self.query_one(LimitsLine).show(event)
        elif isinstance(event, RecordingChanged):
            self.recording = event.active
            self.show_mic()
        elif isinstance(event, Speech):
            self.query_one(CallStatus).show_speech(event.what)
            if event.what == "reply_cancelled":
                self.query_one(Transcript).mark_interrupted()
        elif isinstance(event, (MuteChanged, AudioStatus)):
            self.show_mic()
        elif isinstance(event, DevicesChanged):
            self.query_one(DevicesLine).show(event)

    def show_audio(self) -> None:
        """The devices line from the port's audio status (at mount, and once the call is built)."""
        self.query_one(DevicesLine).show_description(self.port.audio_status().description)

    def show_mic(self) -> None:
        audio = self.port.audio_status()
        self.query_one(MicStatus).show(audio.muted, audio.push_to_talk, audio.talking,
                                       in_call=self.state == CallState.CONNECTED,
                                       text_only=audio.text_only, recording=self.recording)

    def repaint(self) -> None:
        """Paint what the event streams left since the last frame (also callable from tests)."""
        status, transcript, spark = self._frame
        status.tick()
        transcript.sync()
        spark.flush()
        if not self._dirty:
            return
        self._dirty = False
        if self._levels is not None:
            self._meters[0].show(self._levels.input_dbfs, self._levels.input_peak_dbfs)
            self._meters[1].show(self._levels.output_dbfs, self._levels.output_peak_dbfs)
        if self.state == CallState.CONNECTED:
            self._lines[0].show(self._quality, self.state)
            self._lines[1].show(self._playout)

    # -- typing ------------------------------------------------------------------------------
    async def on_input_submitted(self, message: Input.Submitted) -> None:
        if message.input.id != "message":
            return
        text = message.value.strip()
        if text and await self.app.send_text(text):
            message.input.value = ""  # cleared only once sent: a failed send keeps what was typed
            self.query_one(Transcript).sync()
