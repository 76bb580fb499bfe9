"""Recent response latencies as a sparkline, the latest coloured by class, p95 beside it."""

from __future__ import annotations

from collections import deque

import numpy as np
from textual.containers import Horizontal
from textual.widgets import Label, Sparkline

CLASS_COLOR = {"GOOD": "green", "MEDIUM": "yellow", "HIGH": "red"}
TRACKED = ("response_latency", "text_response_latency")


class LatencySpark(Horizontal):
    DEFAULT_CSS = """
    LatencySpark { height: 3; border: round $accent; }
    LatencySpark Sparkline { width: 1fr; }
    LatencySpark Label { width: auto; padding: 0 1; }
    """

    def __init__(self, size: int = 40, **kwargs) -> None:
        super().__init__(**kwargs)
        self.samples: deque[float] = deque(maxlen=size)
        self.last = None
        self.dirty = False
        self.border_title = "Response latency"

    def compose(self):
        yield Sparkline([], summary_function=max)
        yield Label("no samples yet")

    def on_mount(self) -> None:
        self.set_interval(0.2, self.flush)  # at most ~5 repaints a second

    def add(self, name: str, ms: float, cls: str) -> None:
        if name in TRACKED:
            self.samples.append(ms)
            self.last = (ms, cls)
            self.dirty = True

    def flush(self) -> None:
        if not self.dirty:
            return
        self.dirty = False
        self.query_one(Sparkline).data = list(self.samples)  # a new list: in-place changes do not refresh
        ms, cls = self.last
        p95 = float(np.percentile(list(self.samples), 95))
        self.query_one(Label).update(f"[{CLASS_COLOR[cls]}]{ms:.0f} ms {cls}[/]  p95 {p95:.0f} ms")
