"""The speaker path's health from PlayoutStats: buffer depth against its target, underruns."""

from __future__ import annotations

from textual.content import Content

from sandra_tui.call.events import PlayoutStats
from sandra_tui.ui.widgets.line import Line


class PlayoutLine(Line):
    def on_mount(self) -> None:
        self.show(None)

    def show(self, p: PlayoutStats | None) -> None:
        if p is None:
            self.update(Content.styled("playout: -", "$text-muted"))
            return
        underruns = f"{p.underruns} underrun" + ("" if p.underruns == 1 else "s")
        self.update(Content.assemble(f"playout {p.depth_ms:.0f}/{p.target_ms:.0f} ms, ",
                                     (underruns, "$warning" if p.underruns else "")))
