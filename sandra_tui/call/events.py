"""Typed events the call controller publishes. The UI and `call --headless` only render these."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import ClassVar

log = logging.getLogger(__name__)


class CallState(str, Enum):
    IDLE = "idle"
    ACQUIRING_TOKEN = "acquiring_token"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    ENDED = "ended"


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, Enum):
                data[key] = value.value
        return {"event": self.kind, **data}


@dataclass(frozen=True)
class StateChanged(Event):
    kind: ClassVar[str] = "state"
    state: CallState
    reason: str | None = None
    attempt: int | None = None  # reconnecting: attempt n of max
    max_attempts: int | None = None
    delay_ms: int | None = None
    retryable: bool = True  # failed: whether a user retry makes sense (not for bad credentials)


@dataclass(frozen=True)
class ReconnectAttempt(Event):
    kind: ClassVar[str] = "reconnect_attempt"
    attempt: int
    max: int
    delay_ms: int
    reason: str


@dataclass(frozen=True)
class Reconnected(Event):
    kind: ClassVar[str] = "reconnected"
    attempts: int
    total_ms: float


@dataclass(frozen=True)
class Transcript(Event):
    """A piece of the conversation: deltas (final=False) then the whole text (final=True)."""

    kind: ClassVar[str] = "transcript"
    role: str  # user | assistant
    text: str
    final: bool
    item_id: str = ""
    status: str = ""  # a typed message: "queued" (waits for a call or for Sandra's reply), then "sent"


@dataclass(frozen=True)
class SessionRenewed(Event):
    """The session was replaced before the server's time cap (make-before-break): no gap."""

    kind: ClassVar[str] = "session_renewed"
    switch_ms: float  # from starting the new connection to hanging up the old one
    count: int  # renewals in this call so far


@dataclass(frozen=True)
class RateLimits(Event):
    """`rate_limits.updated`: (name, remaining, limit, reset_seconds) per limit."""

    kind: ClassVar[str] = "rate_limits"
    limits: tuple = ()


@dataclass(frozen=True)
class LatencySample(Event):
    kind: ClassVar[str] = "latency"
    name: str
    ms: float
    cls: str  # GOOD | MEDIUM | HIGH

    def to_dict(self) -> dict:
        return {"event": self.kind, "name": self.name, "ms": round(self.ms, 1), "class": self.cls}


@dataclass(frozen=True)
class Quality(Event):
    kind: ClassVar[str] = "quality"
    rtt_ms: float | None
    jitter_ms: float | None
    packets_lost: int
    packets_received: int
    loss_pct: float
    mos: float | None


@dataclass(frozen=True)
class HistoryChanged(Event):
    kind: ClassVar[str] = "history"
    count: int
    memory_mb: float


@dataclass(frozen=True)
class Speech(Event):
    """Server VAD and reply playback milestones, for the UI's activity indicator."""

    kind: ClassVar[str] = "speech"
    what: str  # user_started | user_stopped | reply_started | reply_stopped | reply_cancelled


@dataclass(frozen=True)
class AudioLevels(Event):
    kind: ClassVar[str] = "levels"
    input_dbfs: float
    output_dbfs: float
    input_peak_dbfs: float = -120.0
    output_peak_dbfs: float = -120.0


@dataclass(frozen=True)
class Notice(Event):
    """Something the operator should know that is not an error (device fallback, config moved)."""

    kind: ClassVar[str] = "notice"
    message: str


@dataclass(frozen=True)
class ErrorEvent(Event):
    kind: ClassVar[str] = "error"
    message: str
    code: str = ""
    fatal: bool = False


@dataclass(frozen=True)
class MuteChanged(Event):
    kind: ClassVar[str] = "mute"
    muted: bool
    push_to_talk: bool = False


@dataclass(frozen=True)
class DevicesChanged(Event):
    """The audio devices in use changed (operator's choice, or a fallback after one vanished)."""

    kind: ClassVar[str] = "devices"
    input: str  # human-readable name, "" when none
    output: str
    reason: str = ""  # "" for a choice; why, for a fallback


@dataclass(frozen=True)
class PlayoutStats(Event):
    """The speaker path's health, about once a second during a call."""

    kind: ClassVar[str] = "playout"
    depth_ms: float
    target_ms: float
    underruns: int
    concealed: int


@dataclass(frozen=True)
class ToolCall(Event):
    """A function call Sandra made: arguments while they stream (status "arguments"), then the
    result (status "done" or "failed") with how long it took from the first argument byte."""

    kind: ClassVar[str] = "tool_call"
    call_id: str
    name: str
    arguments: str = ""
    result: str = ""
    status: str = "arguments"  # arguments | running | done | failed
    duration_ms: float | None = None


@dataclass(frozen=True)
class MediaPath(Event):
    """Which path the media takes: the selected ICE candidate pair, the server it goes through,
    the codec and the bitrate both ways."""

    kind: ClassVar[str] = "media_path"
    local_type: str  # host | srflx | prflx | relay
    remote_type: str
    server: str = ""  # the STUN/TURN URL in use ("" for host candidates)
    codec: str = ""  # e.g. "opus/48000/2"
    rx_kbps: float | None = None
    tx_kbps: float | None = None
    api: str = "realtime"  # the dialect on the data channel: realtime | live (GPT-Live)


@dataclass(frozen=True)
class RecordingChanged(Event):
    kind: ClassVar[str] = "recording"
    active: bool
    path: str = ""
    dropped_frames: int = 0


@dataclass(frozen=True)
class CallSummary(Event):
    """At hang-up: one line for the transcript, and the history row it was saved as."""

    kind: ClassVar[str] = "call_summary"
    text: str
    call_id: int | None = None


ALL_EVENTS = (StateChanged, ReconnectAttempt, Reconnected, Transcript, LatencySample, Quality,
              HistoryChanged, Speech, AudioLevels, Notice, ErrorEvent, MuteChanged, DevicesChanged,
              PlayoutStats, SessionRenewed, RateLimits, ToolCall, MediaPath, RecordingChanged, CallSummary)


@dataclass
class EventBus:
    """Fan-out of controller events to subscribers (callbacks run in the controller's loop)."""

    _subscribers: list = field(default_factory=list)

    def subscribe(self, callback) -> callable:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def publish(self, event: Event) -> None:
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:  # noqa: BLE001 - one broken subscriber must not starve the others
                log.exception("event subscriber %r failed on %s", callback, event.kind)
