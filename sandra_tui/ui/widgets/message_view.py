"""One message of the transcript; re-renders only when its snapshot changed, and asks for a
layout only when its height did (a streaming reply grows mostly within its last line)."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from sandra_tui.call.port import MessageSnapshot

WHO = {"user": "You", "assistant": "Sandra", "tool": "Tool", "summary": "Call"}


class MessageView(Static):
    def __init__(self, message: MessageSnapshot) -> None:
        super().__init__(classes=f"-{message.role}")
        self.message = message  # a frozen snapshot: a new one arrives when the text grows
        self._shown: tuple | None = None
        self.interrupted = False  # set by the transcript when a stop left this reply unfinished
        self._laid_out: tuple[int, int] | None = None  # (width, height) of the last layout asked for
        self.layouts = 0  # updates that needed a layout (for tests and benchmarks)

    def on_mount(self) -> None:
        self.sync()

    def show(self, message: MessageSnapshot) -> None:
        self.message = message
        self.sync()

    def sync(self) -> None:
        m = self.message
        status = "interrupted" if self.interrupted and m.status in ("", "interrupted") else m.status
        if self._shown == (m.content, m.final, status):
            return
        first = self._shown is None
        self._shown = (m.content, m.final, status)
        if m.role == "summary":
            content = Content.styled(m.content, "italic $text-muted")
        else:
            streaming = not m.final and not status
            tail = (f" ({status})" if status else " ▍" if streaming else "", "$text-muted")
            content = Content.assemble((f"{WHO.get(m.role, m.role)}  ", "bold"), m.content, tail)
        # The same size as at the last layout: a repaint of this widget only, no layout of the
        # transcript around it. Compared with what was last computed, not with content_size: that
        # changes only once the layout ran, and several updates may come before it does.
        width = self.content_size.width
        size = (width, content.get_height(self.styles, width)) if width else None
        layout = first or size is None or size != self._laid_out
        self._laid_out = size
        self.layouts += layout
        self.update(content, layout=layout)
