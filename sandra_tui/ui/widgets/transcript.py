"""The conversation, rendered from the controller's history (at most its 50 messages)."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

ROLE_STYLE = {"user": ("You", "bold cyan"), "assistant": ("Sandra", "bold magenta")}


class Transcript(VerticalScroll):
    DEFAULT_CSS = """
    Transcript { border: round $secondary; height: 1fr; }
    Transcript > Static { margin: 0 1; }
    """

    def __init__(self, history, **kwargs) -> None:
        super().__init__(**kwargs)
        self.history = history
        self._revision = -1
        self.border_title = "Transcript"

    def on_mount(self) -> None:
        self.set_interval(0.2, self.sync)  # coalesce streaming deltas into ~5 repaints a second

    def sync(self, force: bool = False) -> None:
        if not force and self.history.revision == self._revision:
            return
        self._revision = self.history.revision
        follow = self.scroll_y >= self.max_scroll_y - 1  # stay put if the operator scrolled up
        messages = self.history.messages()
        widgets = list(self.query(Static))
        for widget in widgets[len(messages):]:
            widget.remove()
        for i, message in enumerate(messages):
            who, style = ROLE_STYLE.get(message.role, (message.role, "bold"))
            text = Text.assemble((f"{who}: ", style), message.content + ("" if message.final else " …"))
            if i < len(widgets):
                widgets[i].update(text)
            else:
                self.mount(Static(text))
        self.border_subtitle = f"{len(messages)} messages, {self.history.memory_usage_mb():.2f} MB"
        if follow:
            self.call_after_refresh(self.scroll_end, animate=False)

    def message_count(self) -> int:
        return len(self.query(Static))
