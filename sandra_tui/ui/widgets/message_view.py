"""One message of the transcript; re-renders only when its text changed."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from sandra_tui.call.history import Message

WHO = {"user": "You", "assistant": "Sandra", "tool": "Tool", "summary": "Call"}


class MessageView(Static):
    def __init__(self, message: Message) -> None:
        super().__init__(classes=f"-{message.role}")
        self.message = message  # the history's own object: streaming deltas grow it in place
        self._shown: tuple | None = None
        self.interrupted = False  # set by the transcript when a stop left this reply unfinished

    def on_mount(self) -> None:
        self.sync()

    def sync(self) -> None:
        m = self.message
        status = "interrupted" if self.interrupted and m.status in ("", "interrupted") else m.status
        if self._shown == (m.content, m.final, status):
            return
        self._shown = (m.content, m.final, status)
        if m.role == "summary":
            self.update(Content.styled(m.content, "italic $text-muted"))
            return
        streaming = not m.final and not status
        tail = (f" ({status})" if status else " ▍" if streaming else "", "$text-muted")
        self.update(Content.assemble((f"{WHO.get(m.role, m.role)}  ", "bold"), m.content, tail))
