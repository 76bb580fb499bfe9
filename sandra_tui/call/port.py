"""`CallPort`: all the UI knows of a call. Commands in, immutable events and snapshots out.

The call lives on its own thread and loop (call/call_thread.py); the UI on Textual's. Nothing
the UI holds may be an object the call thread changes, so what the UI reads crosses over as
copies: frozen events (call/events.py), frozen snapshots of the history and the audio state,
a copy of the config, frozen device rows. What the UI wants changed goes in as a command, run
on the call thread. Two implementations: `ControllerPort` (call/thread_port.py) over the real
controller, and the UI tests' fake (tests/ui/fake_controller.py); tests/contract holds them to
the same behaviour.

Events cross coalesced: state-like ones at once, in order; the streams (levels, playout and
quality stats, history changes) at most STREAM_HZ, latest value wins (`Coalescer`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, ClassVar, Protocol, runtime_checkable

# A light module (no PortAudio until a list is asked for): its frozen Device is the UI's row.
from sandra_tui.audio.devices import Device as DeviceInfo
from sandra_tui.call.events import (
    AudioLevels,
    CallState,
    Event,
    HistoryChanged,
    PlayoutStats,
    Quality,
    StateChanged,
    Transcript,
)

STREAM_HZ = 10
# Latest value wins for these: a meter shows now, not the backlog. A final transcript is not a
# stream (it is a message); its deltas are, and the history snapshot carries their text anyway.
STREAMS = (AudioLevels, PlayoutStats, Quality, HistoryChanged)


def is_stream(event: Event) -> bool:
    return isinstance(event, STREAMS) or (isinstance(event, Transcript) and not event.final)


@dataclass(frozen=True)
class AudioStatus(Event):
    """The microphone's state as the UI shows it; sent again whenever it changes."""

    kind: ClassVar[str] = "audio_status"
    muted: bool = False
    push_to_talk: bool = False
    talking: bool = False
    text_only: bool = False  # no audio devices: calls are text only
    description: str = ""  # "in <mic> · out <speaker>"


@dataclass(frozen=True)
class Flags(Event):
    kind: ClassVar[str] = "flags"
    recording: bool = False
    voice_locked: bool = False  # Sandra has replied: the API takes no new voice in this session


@dataclass(frozen=True)
class MessageSnapshot:
    role: str
    content: str
    item_id: str = ""
    ts: float = 0.0
    final: bool = True
    status: str = ""
    key: int = 0  # the same message keeps its key while it streams (its view is updated, not rebuilt)


@dataclass(frozen=True)
class HistorySnapshot(Event):
    """The conversation as it is now (at most max_messages); `revision` bumps on every change."""

    kind: ClassVar[str] = "history_snapshot"
    revision: int = -1
    messages: tuple[MessageSnapshot, ...] = ()
    max_messages: int = 50
    max_bytes: int = 100 * 1024 * 1024
    memory_mb: float = 0.0

    def to_dict(self) -> dict:  # the text stays out of JSON event logs
        return {"event": self.kind, "revision": self.revision, "count": len(self.messages)}


def audio_status(audio) -> AudioStatus:
    """The status of an audio engine (read on the thread that owns it)."""
    return AudioStatus(bool(audio.muted), bool(audio.push_to_talk), bool(getattr(audio, "talking", False)),
                       getattr(audio, "devices", None) is None, getattr(audio, "description", "") or "")


def device_infos(devices) -> tuple[DeviceInfo, ...]:
    return tuple(devices)  # frozen rows: safe to hand across threads as they are


class HistorySnapshots:
    """Snapshots of one ConversationHistory, taken on the thread that owns it. Unchanged
    messages keep their snapshot object, so a snapshot of 50 messages while one streams
    builds one new object, and a view can tell by identity what changed."""

    def __init__(self, history) -> None:
        self.history = history
        self._cache: dict[int, tuple[object, MessageSnapshot]] = {}  # id(message) -> (message, snapshot)
        self._last: HistorySnapshot | None = None
        self.sent = self.take()  # the last snapshot `unsent` gave (the first: the state at start)

    def unsent(self) -> tuple[HistorySnapshot, ...]:
        """The snapshot, as a batch of one, when it is not the one this last gave; else ()."""
        snapshot = self.take()
        if snapshot is self.sent:
            return ()
        self.sent = snapshot
        return (snapshot,)

    def take(self) -> HistorySnapshot:
        h = self.history
        if self._last is not None and self._last.revision == h.revision:
            return self._last
        cache: dict[int, tuple[object, MessageSnapshot]] = {}
        out = []
        for m in h.messages():
            held = self._cache.get(id(m))
            snap = held[1] if held is not None and held[0] is m else None
            if snap is None or (snap.content, snap.final, snap.status) != (m.content, m.final, m.status):
                snap = MessageSnapshot(m.role, m.content, m.item_id, m.ts, m.final, m.status, key=id(m))
            cache[id(m)] = (m, snap)  # the message itself is held so its id cannot be reused meanwhile
            out.append(snap)
        self._cache = cache
        self._last = HistorySnapshot(h.revision, tuple(out), h.max_messages, h.max_bytes,
                                     h.memory_usage_mb())
        return self._last


class Coalescer:
    """Orders what goes to the UI: `push(event)` hands a state-like event to `send` at once
    (with nothing held back in front of it), and holds streams until `flush`, due at most
    STREAM_HZ times a second. A call state change first sends what is held: those figures
    belong to the state it ends. `schedule(delay, fn)` is the owner's timer (loop.call_later)."""

    def __init__(self, send: Callable[[tuple[Event, ...]], None], schedule, clock=time.monotonic,
                 hz: float = STREAM_HZ, extra: Callable[[], tuple[Event, ...]] = lambda: ()) -> None:
        self.send = send
        self.schedule = schedule
        self.clock = clock
        self.period = 1.0 / hz
        self.extra = extra  # what the flush adds (the history snapshot, if it changed)
        self._held: dict[object, Event] = {}
        self._timer = None
        self._last_flush = -1e9
        self.sent_streams = 0  # events sent by flushes (for tests and benchmarks)
        self.flushes = 0

    def push(self, event: Event) -> None:
        if is_stream(event):
            key = (type(event), getattr(event, "item_id", None))
            self._held.pop(key, None)  # re-inserted last: the held order is the order of the newest
            self._held[key] = event
            self.poke()
            return
        if isinstance(event, StateChanged) and self._held:
            # What is held belongs to the state that ends here: it goes first, as it happened
            # (a Quality held past RECONNECTING would put an old path's figures back up).
            if self._timer is not None:
                self._timer.cancel()
            self.flush()
        self.send((event,))

    def poke(self) -> None:
        """A flush is due (something `extra` reports changed): at the next slot."""
        if self._timer is None:
            delay = max(0.0, self._last_flush + self.period - self.clock())
            self._timer = self.schedule(delay, self.flush)

    def flush(self) -> None:
        self._timer = None
        self._last_flush = self.clock()
        held, self._held = tuple(self._held.values()), {}
        batch = held + tuple(self.extra())
        if batch:
            self.flushes += 1
            self.sent_streams += len(held)
            self.send(batch)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._held.clear()


@runtime_checkable
class CallPort(Protocol):
    """What the UI calls. Reads are cheap and never block (they return the latest snapshot
    the port has); commands are coroutines run where the call lives."""

    # -- reads: immutable snapshots ------------------------------------------------------------
    @property
    def state(self) -> CallState: ...

    @property
    def recording(self) -> bool: ...

    @property
    def voice_locked(self) -> bool: ...

    @property
    def can_record(self) -> bool: ...

    def audio_status(self) -> AudioStatus: ...

    def history_snapshot(self) -> HistorySnapshot: ...

    def settings(self):
        """A copy of the config in effect (a pydantic Config); changing it changes nothing."""

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """`callback(event)` on the subscriber's event loop; returns an unsubscribe function."""

    # -- commands ------------------------------------------------------------------------------
    async def start(self) -> None: ...
    async def retry(self) -> None: ...
    async def hangup(self) -> None: ...
    async def close(self) -> None: ...
    async def set_muted(self, muted: bool) -> None: ...
    async def toggle_mute(self) -> bool: ...
    async def set_push_to_talk(self, enabled: bool) -> None: ...
    async def talk(self, pressed: bool) -> None: ...
    async def send_text(self, text: str) -> None: ...
    async def cancel_response(self) -> None: ...
    async def clear_history(self) -> None: ...
    async def list_devices(self) -> tuple[DeviceInfo, ...]: ...
    async def rescan_devices(self) -> tuple[DeviceInfo, ...]: ...
    async def set_devices(self, input_device: str | None = None, output_device: str | None = None) -> None: ...
    async def set_audio_levels(self, output_volume: float | None = None, mic_gain: float | None = None) -> None:
        """Output volume (0-2) and mic gain (0-4), applied at once; `settings()` has them after."""
    async def mic_test(self, seconds: float = 3.0, on_phase=None):
        """Record then play back (an audio.mic_test.MicTestResult); `on_phase(name)` may be called
        on another thread; raises AudioUnavailable with a plain reason."""
    async def set_recording(self, on: bool) -> str: ...
    async def update_session(self, session) -> str: ...
    async def set_ice(self, ice) -> None: ...
    async def media_path(self): ...
    async def open_call_log(self, store) -> None: ...
    async def close_call_log(self) -> None: ...
    async def start_telemetry(self, factory) -> None:
        """`factory(port)` builds the call's telemetry uploader (or None); the port keeps it."""
    async def close_telemetry(self, deadline_s: float = 2.0) -> None:
        """Send what can go within `deadline_s` (the rest stays spooled); then there is none."""
