"""A one-row Static that repaints only when its text or styles changed, and asks for a layout
only when its width may have changed (an auto-width widget whose text got longer or shorter).

Static.update lays out the screen every time; the call pane's lines are updated several times
a second (the timer, the meters' neighbours), and that layout was most of the TUI's own CPU
(py-spy: 106 of 233 main-thread samples in Screen._refresh_layout, BENCHMARKS.md).
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static


class Line(Static):
    _shown: tuple | None = None
    _cells = 0

    def update(self, content: Content | str = "", *, layout: bool | None = None) -> None:
        content = Content(content) if isinstance(content, str) else content
        key = (content.plain, tuple(content.spans))
        if key == self._shown:
            return
        first, self._shown = self._shown is None, key
        cells, self._cells = self._cells, content.cell_length
        if layout is None:
            width = self.styles.width
            auto = width is None or width.is_auto
            layout = first or (auto and cells != self._cells)
        super().update(content, layout=layout)
