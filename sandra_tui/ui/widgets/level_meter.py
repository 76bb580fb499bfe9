"""One audio level as a dBFS bar that fills the widget's width."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

FLOOR_DBFS = -60.0  # the bar's empty end; quieter than this is silence for a meter
SILENT_DBFS = -100.0


class LevelMeter(Static):
    def __init__(self, label: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.label = label
        self.dbfs = -120.0
        self.peak_dbfs = -120.0

    def show(self, dbfs: float, peak_dbfs: float = -120.0) -> None:
        if (dbfs, peak_dbfs) != (self.dbfs, self.peak_dbfs):
            self.dbfs, self.peak_dbfs = dbfs, peak_dbfs
            self.refresh()

    def on_resize(self) -> None:
        self.refresh()

    def render(self) -> Content:
        value = "   - dBFS" if self.dbfs <= SILENT_DBFS else f"{self.dbfs:4.0f} dBFS"
        width = max(4, self.size.width - len(self.label) - len(value) - 3)
        fill = max(0.0, min(1.0, (self.dbfs - FLOOR_DBFS) / -FLOOR_DBFS))
        filled = round(fill * width)
        peak = round(max(0.0, min(1.0, (self.peak_dbfs - FLOOR_DBFS) / -FLOOR_DBFS)) * width)
        style = "$error" if self.dbfs > -3 else "$warning" if self.dbfs > -12 else "$success"
        empty = ["·"] * (width - filled)
        if peak > filled and peak - filled <= len(empty):
            empty[peak - filled - 1] = "|"  # the recent peak, so a short burst stays visible
        return Content.assemble(f"{self.label} ", ("█" * filled, style), ("".join(empty), "$text-muted"),
                                f" {value}")
