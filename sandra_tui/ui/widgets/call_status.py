"""The call's state in colour, the reconnect countdown or the failure reason, and the call timer."""

from __future__ import annotations

import time

from textual.content import Content

from sandra_tui.call.events import CallState, StateChanged
from sandra_tui.ui.widgets.line import Line

STYLES = {
    CallState.IDLE: "$text-muted", CallState.ACQUIRING_TOKEN: "$warning", CallState.CONNECTING: "$warning",
    CallState.CONNECTED: "$success", CallState.RECONNECTING: "$warning", CallState.FAILED: "$error",
    CallState.ENDED: "$text-muted",
}
LABELS = {CallState.ACQUIRING_TOKEN: "connecting (token)"}
SPEECH = {"user_started": "you are speaking", "reply_started": "Sandra is speaking"}


class CallStatus(Line):
    def __init__(self, clock=time.monotonic, **kwargs) -> None:
        super().__init__(**kwargs)
        self.clock = clock  # injectable so snapshots show a fixed timer and countdown
        self.state = CallState.IDLE
        self.reason: str | None = None
        self.retryable = True
        self.attempt: tuple[int, int] | None = None
        self.retry_at: float | None = None
        self.connected_since: float | None = None
        self.activity = ""
        self._key: tuple | None = None

    def on_mount(self) -> None:
        self.tick()

    def show(self, event: StateChanged) -> None:
        self.state, self.reason, self.retryable = event.state, event.reason, event.retryable
        if event.state == CallState.CONNECTED:
            self.connected_since = self.connected_since or self.clock()
        elif event.state in (CallState.ENDED, CallState.FAILED, CallState.IDLE):
            self.connected_since = None  # the timer runs through reconnects, stops when the call is over
        if event.state == CallState.RECONNECTING and event.attempt is not None:
            self.attempt = (event.attempt, event.max_attempts or event.attempt)
            self.retry_at = self.clock() + (event.delay_ms or 0) / 1000
        else:
            self.attempt = self.retry_at = None
        if event.state != CallState.CONNECTED:
            self.activity = ""
        self.tick()

    def show_speech(self, what: str) -> None:
        self.activity = SPEECH.get(what, "")
        self.tick()

    def tick(self) -> None:
        """Re-render; called a few times a second for the countdown and the timer. Builds the
        text only when what it shows changed (the timer: once a second)."""
        left = secs = None
        if self.state == CallState.RECONNECTING and self.attempt and self.retry_at is not None:
            left = round(max(0.0, self.retry_at - self.clock()), 1)
        if self.connected_since is not None:
            secs = max(0, int(self.clock() - self.connected_since))
        key = (self.state, self.reason, self.retryable, self.attempt, left, secs, self.activity)
        if key == self._key:
            return
        self._key = key
        parts: list = [("● ", STYLES[self.state]),
                       (LABELS.get(self.state, self.state.value), f"bold {STYLES[self.state]}")]
        if self.state == CallState.RECONNECTING and self.attempt and self.retry_at is not None:
            parts.append(f"  attempt {self.attempt[0]}/{self.attempt[1]} in {left:.1f} s")
            if self.reason:
                parts.append(f" ({self.reason})")
        elif self.state == CallState.FAILED:
            hint = "F2 to try again" if self.retryable else "check the backend's credentials, then F2"
            parts += [f": {self.reason or 'unknown'}", (f"  {hint}", "$text-muted")]
        elif self.state in (CallState.IDLE, CallState.ENDED):
            parts.append(("  F2 to call", "$text-muted"))
        if secs is not None:
            parts.append(f"  {secs // 3600:d}:{secs // 60 % 60:02d}:{secs % 60:02d}" if secs >= 3600
                         else f"  {secs // 60:02d}:{secs % 60:02d}")
        if self.activity:
            parts.append((f"  {self.activity}", "italic $accent"))
        self.update(Content.assemble(*parts))
