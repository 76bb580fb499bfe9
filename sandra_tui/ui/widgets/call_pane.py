"""Call state, timer, reconnect countdown, mute, levels and quality in a few lines."""

from __future__ import annotations

import time

from textual.reactive import reactive
from textual.widgets import Static

from sandra_tui.call.events import CallState

COLORS = {
    CallState.IDLE: "grey70", CallState.ACQUIRING_TOKEN: "yellow", CallState.CONNECTING: "yellow",
    CallState.CONNECTED: "green", CallState.RECONNECTING: "dark_orange", CallState.FAILED: "red",
    CallState.ENDED: "grey70",
}


class CallPane(Static):
    DEFAULT_CSS = """
    CallPane { height: auto; padding: 0 1; border: round $primary; }
    """
    state: reactive[CallState] = reactive(CallState.IDLE)

    def __init__(self, clock=time.monotonic, **kwargs) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.reason: str | None = None
        self.attempt = None
        self.retry_at: float | None = None
        self.connected_since: float | None = None
        self.muted = False
        self.push_to_talk = False
        self.levels = (-120.0, -120.0)
        self.quality = ""
        self.audio_description = ""
        self.retryable = True

    def on_mount(self) -> None:
        self.set_interval(0.2, self.refresh_text)
        self.refresh_text()

    def set_state(self, event) -> None:
        self.state = event.state
        self.reason = event.reason
        self.retryable = event.retryable
        if event.state == CallState.CONNECTED:
            self.connected_since = self.connected_since or self.clock()
        elif event.state in (CallState.ENDED, CallState.FAILED, CallState.IDLE):
            self.connected_since = None
        if event.state == CallState.RECONNECTING and event.delay_ms is not None:
            self.attempt = (event.attempt, event.max_attempts)
            self.retry_at = self.clock() + event.delay_ms / 1000
        else:
            self.retry_at = None
        self.refresh_text()

    def refresh_text(self) -> None:
        color = COLORS.get(self.state, "white")
        line = f"[b {color}]{self.state.value.replace('_', ' ')}[/]"
        if self.state == CallState.RECONNECTING and self.attempt and self.retry_at is not None:
            left = max(0.0, self.retry_at - self.clock())
            line += f"  attempt {self.attempt[0]}/{self.attempt[1]} in {left:.1f} s ({self.reason})"
        elif self.state == CallState.FAILED:
            hint = "press F2 to try again" if self.retryable else "check the backend credentials"
            line += f"  {self.reason}: {hint}"
        if self.connected_since is not None:
            secs = int(self.clock() - self.connected_since)
            line += f"  {secs // 60:02d}:{secs % 60:02d}"
        mic = "[red]muted[/]" if self.muted else ("push-to-talk" if self.push_to_talk else "mic on")
        meters = f"in {self._bar(self.levels[0])} out {self._bar(self.levels[1])}"
        self.update(f"{line}\n{mic}  {meters}  {self.quality}\n[dim]{self.audio_description}[/]")

    @staticmethod
    def _bar(dbfs: float, width: int = 10) -> str:
        filled = int(max(0.0, min(1.0, (dbfs + 60) / 60)) * width)
        return "[green]" + "█" * filled + "[/]" + "·" * (width - filled)
