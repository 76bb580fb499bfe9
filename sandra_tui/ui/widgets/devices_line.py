"""The audio devices in use, and why they changed when it was a fallback."""

from __future__ import annotations

from textual.content import Content

from sandra_tui.call.events import DevicesChanged
from sandra_tui.ui.widgets.line import Line


class DevicesLine(Line):
    def show_description(self, description: str) -> None:
        self.update(Content.styled(description or "no audio device", "$text-muted"))

    def show(self, event: DevicesChanged) -> None:
        parts: list = [("in ", "$text-muted"), event.input or "none", ("  out ", "$text-muted"), event.output or "none"]
        if event.reason:
            parts.append((f"  ({event.reason})", "$warning"))
        self.update(Content.assemble(*parts))
