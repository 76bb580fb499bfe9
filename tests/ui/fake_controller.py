"""A CallPort (sandra_tui/call/port.py) for the UI tests, driven by scripted events.

Pilot tests with the real controller wait on a live media loop; this one answers at once and
lets a test `emit()` exactly the events it needs. The history is the real ConversationHistory.
Its state rules are the controller's: tests/contract/test_call_port.py runs the same tests on
this and on ControllerPort over a real CallController. Events reach subscribers as the real
port sends them, through its Coalescer: state-like events at once, levels, stats, transcript
deltas and history snapshots at most 10 times a second (latest wins), so a test that emits a
stream waits for it as the UI must.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sandra_tui.audio.devices import AudioUnavailable, Device
from sandra_tui.call.events import (
    CallState,
    DevicesChanged,
    Event,
    EventBus,
    HistoryChanged,
    MediaPath,
    MuteChanged,
    RecordingChanged,
    Speech,
    StateChanged,
    ToolCall,
    Transcript,
)
from sandra_tui.call.history import ConversationHistory
from sandra_tui.call.ice import IcePlanner
from sandra_tui.call.port import (
    AudioStatus,
    Coalescer,
    HistorySnapshot,
    HistorySnapshots,
    audio_status,
    device_infos,
)
from sandra_tui.config.model import Config

FAKE_DEVICES = [
    Device(0, "Built-in Microphone", "ALSA", 2, 0, 48000.0, default_input=True),
    Device(1, "Built-in Speakers", "ALSA", 0, 2, 48000.0, default_output=True),
    Device(2, "USB Headset", "ALSA", 1, 2, 48000.0),
    Device(3, "HDMI Output", "ALSA", 0, 8, 48000.0),
]


@dataclass
class FakeAudio:
    description: str = "in Built-in Microphone · out Built-in Speakers"
    muted: bool = False
    push_to_talk: bool = False
    talking: bool = False
    devices: object = "devices"  # as AudioEngine.devices: None in text-only mode


@dataclass
class FakeController:
    config: Config = field(default_factory=lambda: Config(ice={"stun": ["stun:stun.example.org:3478"]},
                                                          telemetry={"enabled": False}))
    devices: list[Device] | None = field(default_factory=lambda: list(FAKE_DEVICES))
    audio_error: str = ""  # list_devices raises AudioUnavailable with this
    switch_error: str = ""  # set_devices raises AudioUnavailable with this
    send_error: str = ""  # send_text raises RuntimeError with this
    connect_on_start: bool = True

    def __post_init__(self) -> None:
        h = self.config.history
        self.history = ConversationHistory(h.max_messages, h.max_memory_mb, h.trim_to)
        self.audio = FakeAudio(push_to_talk=self.config.audio.push_to_talk)
        self.planner = IcePlanner(self.config.ice, probe=None)
        self.state = CallState.IDLE
        self.bus = EventBus()
        self.commands: list[str] = []  # every command the UI gave, in order
        self.closed = False
        self._ids = 0
        self._outbox: list[tuple[str, str]] = []
        self.voice_locked = False  # as CallController.voice_locked: True after Sandra's first reply
        self.recording = False
        self.recording_path = "/tmp/sandra-test-call.wav"
        self.media: MediaPath | None = None  # what media_path() answers
        self.rescans = 0
        self.rescanned: list[Device] | None = None  # the list a rescan finds (None: the same)
        self.session_updates: list = []
        self._snapshots = HistorySnapshots(self.history)
        self.coalescer = Coalescer(self._send, self._later, extra=self._snapshots.unsent)
        self.call_logger = None
        self.telemetry = None  # what start_telemetry's factory built
        self.can_record = True
        self.mic_error = ""  # mic_test raises AudioUnavailable with this
        self.mic_peak_dbfs = -12.0  # the level mic_test reports
        self.mic_gate = None

    # -- reads, as CallPort ----------------------------------------------------------------------
    def audio_status(self) -> AudioStatus:
        return audio_status(self.audio)

    def history_snapshot(self) -> HistorySnapshot:
        return self._snapshots.take()

    def settings(self) -> Config:
        return self.config.model_copy(deep=True)

    # -- events --------------------------------------------------------------------------------
    def subscribe(self, callback):
        return self.bus.subscribe(callback)

    def emit(self, event: Event) -> None:
        if isinstance(event, StateChanged):
            self.state = event.state
        self.coalescer.push(event)

    def _send(self, batch: tuple[Event, ...]) -> None:
        for event in batch:
            self.bus.publish(event)

    @staticmethod
    def _later(delay: float, function):
        try:
            return asyncio.get_running_loop().call_later(delay, function)
        except RuntimeError:  # emitted outside any loop: nothing to wait on
            function()
            return None

    # -- commands --------------------------------------------------------------------------------
    async def start(self) -> None:
        self.commands.append("start")
        if self.closed or self.state not in (CallState.IDLE, CallState.FAILED, CallState.ENDED):
            return  # as CallController.start: no-op while a call runs
        if self.connect_on_start:
            self.emit(StateChanged(CallState.ACQUIRING_TOKEN))
            self.emit(StateChanged(CallState.CONNECTING))
            self.emit(StateChanged(CallState.CONNECTED))
            self._pump()

    async def retry(self) -> None:
        self.commands.append("retry")
        if self.state in (CallState.FAILED, CallState.ENDED, CallState.IDLE):
            await self.start()

    async def hangup(self) -> None:
        self.commands.append("hangup")
        if self.state not in (CallState.IDLE, CallState.FAILED, CallState.ENDED):
            self.emit(StateChanged(CallState.ENDED))

    async def close(self) -> None:
        self.commands.append("close")
        if self.state not in (CallState.IDLE, CallState.FAILED, CallState.ENDED):
            self.emit(StateChanged(CallState.ENDED))
        self.closed = True
        self.coalescer.cancel()  # as the real port's detach: held streams go nowhere now

    async def set_muted(self, muted: bool) -> None:
        self.commands.append(f"muted={muted}")
        self.audio.muted = muted
        self.emit(MuteChanged(muted, self.audio.push_to_talk))

    async def toggle_mute(self) -> bool:
        await self.set_muted(not self.audio.muted)
        return self.audio.muted

    async def set_push_to_talk(self, enabled: bool) -> None:
        self.commands.append(f"push_to_talk={enabled}")
        self.audio.push_to_talk = enabled
        self.emit(MuteChanged(self.audio.muted, enabled))

    async def talk(self, pressed: bool) -> None:
        self.commands.append(f"talk={pressed}")
        self.audio.talking = pressed

    async def send_text(self, text: str) -> None:
        """As CallController.send_text: shown at once as queued, sent once a call is up."""
        if self.send_error:
            raise RuntimeError(self.send_error)
        text = text.strip()
        if not text:
            return
        self.commands.append(f"send:{text}")
        item_id = self.next_id()
        self.history.add("user", text, item_id=item_id, status="queued")
        self._outbox.append((item_id, text))
        self.emit(Transcript("user", text, True, item_id, status="queued"))
        self._history_changed()
        self._pump()

    def _pump(self) -> None:
        if self.state != CallState.CONNECTED:
            return
        while self._outbox:
            item_id, text = self._outbox.pop(0)
            self.history.mark(item_id, "")
            self.emit(Transcript("user", text, True, item_id, status="sent"))

    async def cancel_response(self) -> None:
        # As the real one: a reply being played is cut (reply_cancelled); the server may not say
        # which item it cut, so the history entry can stay unfinished.
        self.commands.append("cancel_response")
        self.emit(Speech("reply_cancelled"))

    # -- operator workflow, as CallController ----------------------------------------------------
    async def media_path(self):
        if self.state != CallState.CONNECTED:
            return None
        if self.media is not None:
            self.emit(self.media)
        return self.media

    async def update_session(self, settings) -> str:
        self.commands.append("update_session")
        self.config.session = settings
        self.session_updates.append((settings, not self.voice_locked))
        return ("Applied now; the voice from the next call (locked after the first reply)." if self.voice_locked
                else "Applied now.")

    async def rescan_devices(self):
        self.commands.append("rescan_devices")
        self.rescans += 1
        if self.rescanned is not None:
            self.devices = list(self.rescanned)
        return await self.list_devices()

    async def set_ice(self, ice) -> None:
        """As CallController.set_ice: the next connect uses `ice`, with a new planner."""
        self.commands.append("set_ice")
        self.config.ice = ice
        self.planner = IcePlanner(ice, self.planner.probe)

    async def open_call_log(self, store) -> None:
        from sandra_tui.call.call_log import CallLogger

        h = self.config.history
        self.call_logger = CallLogger(self, store if h.save_calls else None,
                                      keep_days=h.keep_days, keep_calls=h.keep_calls)

    async def start_telemetry(self, factory) -> None:
        self.commands.append("start_telemetry")
        self.telemetry = factory(self)

    async def close_telemetry(self, deadline_s: float = 2.0) -> None:
        uploader, self.telemetry = self.telemetry, None
        if uploader is not None:
            self.commands.append("close_telemetry")
            await uploader.close(deadline_s)

    async def close_call_log(self) -> None:
        logger, self.call_logger = self.call_logger, None
        if logger is not None:
            logger.close()

    async def set_recording(self, on: bool, directory=None) -> str:
        self.commands.append(f"recording={on}")
        if on != self.recording:
            self.recording = on
            self.emit(RecordingChanged(on, self.recording_path))
        return self.recording_path

    def tool_call(self, call_id: str, name: str, arguments: str, result: str, duration_ms: float) -> None:
        """A finished function call, as RealtimeSession records and publishes it."""
        text = f"{name}({arguments}) -> {result}  [{duration_ms:.0f} ms]"
        self.history.add("tool", text, item_id=f"tool_{call_id}")
        self.emit(ToolCall(call_id, name, arguments, result, "done", duration_ms))
        self._history_changed()

    async def clear_history(self) -> None:
        self.commands.append("clear_history")
        self.history.clear()
        self._outbox.clear()
        self._history_changed()

    async def list_devices(self):
        if self.audio_error:
            raise AudioUnavailable(self.audio_error)
        return device_infos(self.devices or [])

    async def set_devices(self, input_device: str | None = None, output_device: str | None = None) -> None:
        self.commands.append(f"set_devices:{input_device!r},{output_device!r}")
        if self.switch_error:
            raise AudioUnavailable(self.switch_error)
        if input_device is not None:
            self.config.audio.input_device = input_device
        if output_device is not None:
            self.config.audio.output_device = output_device
        names = (self.config.audio.input_device or "default", self.config.audio.output_device or "default")
        self.audio.description = f"in {names[0]} · out {names[1]}"
        self.emit(DevicesChanged(*names))

    # -- audio levels and the microphone test, as CallController --------------------------------
    async def set_audio_levels(self, output_volume: float | None = None, mic_gain: float | None = None) -> None:
        self.commands.append(f"levels:{output_volume},{mic_gain}")
        if output_volume is not None:
            self.config.audio.output_volume = output_volume
        if mic_gain is not None:
            self.config.audio.mic_gain = mic_gain

    async def mic_test(self, seconds: float = 3.0, on_phase=None):
        """Answers at once with a fixed result (or raises `mic_error`); `mic_gate`, when set, is
        an asyncio.Event the test waits on while "recording" (for a picture of that phase)."""
        import numpy as np

        from sandra_tui.audio.mic_test import MicTestResult, verdict

        self.commands.append(f"mic_test:{seconds}")
        if self.mic_error:
            raise AudioUnavailable(self.mic_error)
        if on_phase is not None:
            on_phase("recording")
        if self.mic_gate is not None:
            await self.mic_gate.wait()
        if on_phase is not None:
            on_phase("playing")
        peak = self.mic_peak_dbfs
        return MicTestResult(seconds, peak, peak - 9, int(seconds * 50), seconds, seconds + 0.04, verdict(peak),
                             np.zeros(int(seconds * 48000), dtype=np.int16))

    # -- scripting helpers -----------------------------------------------------------------------
    def drop(self) -> None:
        """The network drops and comes back, as the supervisor reports a reconnect."""
        self.emit(StateChanged(CallState.RECONNECTING, reason="ice_failed", attempt=1, max_attempts=5,
                               delay_ms=0))
        self.emit(StateChanged(CallState.CONNECTED))
        self._pump()

    def next_id(self) -> str:
        self._ids += 1
        return f"item_{self._ids:04d}"

    def say(self, role: str, text: str) -> str:
        """A whole message, as the controller records a finished turn."""
        item_id = self.next_id()
        self.history.add(role, text, item_id=item_id)
        self.emit(Transcript(role, text, True, item_id))
        self._history_changed()
        return item_id

    def stream(self, role: str, item_id: str, delta: str) -> None:
        self.history.append_delta(role, item_id, delta)
        self.emit(Transcript(role, delta, False, item_id))
        self._history_changed()

    def finish(self, role: str, item_id: str, text: str) -> None:
        self.history.finish(role, item_id, text)
        self.emit(Transcript(role, text, True, item_id))
        self._history_changed()

    def _history_changed(self) -> None:
        self.emit(HistoryChanged(len(self.history), round(self.history.memory_usage_mb(), 4)))
