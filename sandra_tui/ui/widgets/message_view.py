"""One message of the transcript; re-renders only when its text changed."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from sandra_tui.call.history import Message

WHO = {"user": "You", "assistant": "Sandra"}


class MessageView(Static):
    def __init__(self, message: Message) -> None:
        super().__init__(classes=f"-{message.role}")
        self.message = message  # the history's own object: streaming deltas grow it in place
        self._shown: tuple[str, bool, str] | None = None

    def on_mount(self) -> None:
        self.sync()

    def sync(self) -> None:
        m = self.message
        if self._shown == (m.content, m.final, m.status):
            return
        self._shown = (m.content, m.final, m.status)
        tail = (f" ({m.status})" if m.status else "" if m.final else " ▍", "$text-muted")
        self.update(Content.assemble((f"{WHO.get(m.role, m.role)}  ", "bold"), m.content, tail))
